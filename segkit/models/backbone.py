"""ResNet backbone with dilated stages, reusable on its own.

Parameter names follow torchvision (``conv1``, ``layer1.0.conv1``, ``layer1.0.downsample.0``...),
so ``torchvision.models.resnet50()`` weights load as they are, with only ``fc.*`` left over
(see ``weights.py``).

``forward`` returns an ordered dict ``stem, layer1..layer4``; ``feature_info`` gives each
feature's name, channels and true stride at any output stride (8, 16 or 32).

Bad arguments raise a plain ``ValueError`` that starts with the argument's name (``output_stride must be
8, 16 or 32``); ``build_backbone`` adds the config key (``model.backbone.output_stride``).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Type

import torch
import torch.nn as nn
from torchvision.ops import FrozenBatchNorm2d

FEATURE_NAMES = ("stem", "layer1", "layer2", "layer3", "layer4")
NORMS = ("bn", "syncbn", "gn", "frozen_bn")


@dataclass(frozen=True)
class FeatureSpec:
    name: str
    channels: int
    stride: int


def feature_spec(feature_info: Sequence[FeatureSpec], name: str) -> FeatureSpec:
    for spec in feature_info:
        if spec.name == name:
            return spec
    raise KeyError(f"no feature named '{name}'; the backbone gives {[s.name for s in feature_info]}")


def make_norm(kind: str, groups: int = 32) -> Callable[[int], nn.Module]:
    """A constructor ``norm(channels)`` for the named normalisation (``model.backbone.norm``)."""
    if kind == "bn":
        return nn.BatchNorm2d
    if kind == "syncbn":  # behaves as BatchNorm2d when not distributed or in eval mode
        return nn.SyncBatchNorm
    if kind == "frozen_bn":
        return FrozenBatchNorm2d
    if kind == "gn":
        if groups < 1:
            raise ValueError(f"norm_groups must be >= 1, got {groups}")

        def group_norm(channels: int) -> nn.Module:
            if channels % groups:  # no silent fallback: the user asked for this many groups
                divisors = [g for g in (32, 16, 8, 4, 2, 1) if g < groups and channels % g == 0]
                raise ValueError(
                    f"norm_groups={groups} does not divide a layer of {channels} channels (norm=gn); "
                    f"use a norm_groups that divides every layer's channels (e.g. {divisors[0]}), "
                    f"or change that layer's width"
                )
            return nn.GroupNorm(groups, channels)

        return group_norm
    raise ValueError(f"norm '{kind}' is not one of {', '.join(NORMS)}")


def _conv3x3(cin: int, cout: int, stride: int = 1, groups: int = 1, dilation: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride, padding=dilation, groups=groups, dilation=dilation, bias=False)


class BasicBlock(nn.Module):
    """torchvision's BasicBlock, able to dilate: conv1 (which may stride) uses ``first_dilation``,
    conv2 runs after the stride and uses ``dilation`` (as timm does), so a dilated stage sees
    the same receptive field as the strided one."""

    expansion = 1

    def __init__(
        self,
        inplanes,
        planes,
        stride=1,
        downsample=None,
        groups=1,
        base_width=64,
        dilation=1,
        first_dilation=1,
        norm=nn.BatchNorm2d,
    ):
        super().__init__()
        if groups != 1 or base_width != 64:
            raise ValueError("BasicBlock supports only groups=1 and base_width=64")
        self.conv1 = _conv3x3(inplanes, planes, stride, dilation=first_dilation)
        self.bn1 = norm(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = _conv3x3(planes, planes, dilation=dilation)
        self.bn2 = norm(planes)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += identity  # in place, as torchvision: no extra activation-sized tensor per block
        return self.relu(out)


class Bottleneck(nn.Module):
    """torchvision's Bottleneck (stride on the 3x3 conv, "ResNet v1.5"); grouped and widened
    variants through ``groups`` and ``base_width``. Its only 3x3 conv both strides and
    dilates, so it takes ``first_dilation`` (torchvision's rule)."""

    expansion = 4

    def __init__(
        self,
        inplanes,
        planes,
        stride=1,
        downsample=None,
        groups=1,
        base_width=64,
        dilation=1,
        first_dilation=1,
        norm=nn.BatchNorm2d,
    ):
        super().__init__()
        width = int(planes * (base_width / 64.0)) * groups
        self.conv1 = nn.Conv2d(inplanes, width, 1, bias=False)
        self.bn1 = norm(width)
        self.conv2 = _conv3x3(width, width, stride, groups, first_dilation)
        self.bn2 = norm(width)
        self.conv3 = nn.Conv2d(width, planes * self.expansion, 1, bias=False)
        self.bn3 = norm(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        out += identity  # in place, as torchvision: no extra activation-sized tensor per block
        return self.relu(out)


# name -> (block, blocks per stage, groups, width per group); the torchvision family
ARCHS: Dict[str, Tuple[Type[nn.Module], Tuple[int, int, int, int], int, int]] = {
    "resnet18": (BasicBlock, (2, 2, 2, 2), 1, 64),
    "resnet34": (BasicBlock, (3, 4, 6, 3), 1, 64),
    "resnet50": (Bottleneck, (3, 4, 6, 3), 1, 64),
    "resnet101": (Bottleneck, (3, 4, 23, 3), 1, 64),
    "resnet152": (Bottleneck, (3, 8, 36, 3), 1, 64),
    "resnext50_32x4d": (Bottleneck, (3, 4, 6, 3), 32, 4),
    "resnext101_32x8d": (Bottleneck, (3, 4, 23, 3), 32, 8),
    "resnext101_64x4d": (Bottleneck, (3, 4, 23, 3), 64, 4),
    "wide_resnet50_2": (Bottleneck, (3, 4, 6, 3), 1, 128),
    "wide_resnet101_2": (Bottleneck, (3, 4, 23, 3), 1, 128),
}


class ResNetBackbone(nn.Module):
    """A ResNet feature extractor.

    Args:
        name: one of ``ARCHS``.
        output_stride: 8, 16 or 32. At 16 layer4 is dilated (rate 2); at 8 layer3 (2) and layer4 (4).
            The first block of a dilated stage keeps the previous dilation, as in torchvision.
        deep_stem: three 3x3 convs (32, 32, 64 channels) instead of the 7x7 conv (ResNetV1c).
        multi_grid: unit rates for layer4's blocks (DeepLabV3): block i dilates by rate * multi_grid[i].
        norm: ``bn``, ``syncbn``, ``gn`` (``norm_groups`` groups) or ``frozen_bn``.
        frozen_stages: -1 freezes nothing, 0 the stem, k the stem and layer1..k (weights and norm statistics).
        in_channels: input channels (3 for RGB); pretrained RGB weights are adapted on loading.
    """

    def __init__(
        self,
        name: str = "resnet50",
        output_stride: int = 32,
        deep_stem: bool = False,
        multi_grid: Optional[Sequence[int]] = None,
        norm: str = "bn",
        norm_groups: int = 32,
        frozen_stages: int = -1,
        in_channels: int = 3,
        zero_init_residual: bool = False,
    ):
        super().__init__()
        if name not in ARCHS:
            raise ValueError(f"name '{name}' is not a known backbone; choose one of {', '.join(ARCHS)}")
        if output_stride not in (8, 16, 32):
            raise ValueError(f"output_stride must be 8, 16 or 32, got {output_stride}")
        if not -1 <= frozen_stages <= 4:
            raise ValueError(f"frozen_stages must be -1 (none), 0 (stem) or 1..4, got {frozen_stages}")
        if in_channels < 1:
            raise ValueError(f"in_channels must be >= 1, got {in_channels}")
        block, layers, groups, base_width = ARCHS[name]
        if multi_grid is not None:
            if len(multi_grid) != layers[3]:
                raise ValueError(
                    f"multi_grid {list(multi_grid)} gives {len(multi_grid)} rates but "
                    f"layer4 of {name} has {layers[3]} blocks; give exactly {layers[3]} (e.g. [1, 2, 4])"
                )
            if min(multi_grid) < 1:
                raise ValueError(f"multi_grid rates must be >= 1, got {list(multi_grid)}")
        self.name, self.output_stride, self.deep_stem = name, output_stride, deep_stem
        self.in_channels, self.frozen_stages = in_channels, frozen_stages
        self._norm = make_norm(norm, norm_groups)
        self._groups, self._base_width = groups, base_width

        if deep_stem:
            self.stem = nn.Sequential(
                _conv3x3(in_channels, 32, 2),
                self._norm(32),
                nn.ReLU(inplace=True),
                _conv3x3(32, 32),
                self._norm(32),
                nn.ReLU(inplace=True),
                _conv3x3(32, 64),
                self._norm(64),
                nn.ReLU(inplace=True),
            )
        else:
            self.conv1 = nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False)
            self.bn1 = self._norm(64)
            self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)

        self._inplanes, self._dilation = 64, 1
        dilate = {3: output_stride <= 8, 4: output_stride <= 16}
        self.layer1 = self._make_layer(block, 64, layers[0], 1)
        self.layer2 = self._make_layer(block, 128, layers[1], 2)
        self.layer3 = self._make_layer(block, 256, layers[2], 2, dilate[3])
        self.layer4 = self._make_layer(block, 512, layers[3], 2, dilate[4], multi_grid)

        exp = block.expansion
        self.feature_info: List[FeatureSpec] = [
            FeatureSpec("stem", 64, 2),
            FeatureSpec("layer1", 64 * exp, 4),
            FeatureSpec("layer2", 128 * exp, 8),
            FeatureSpec("layer3", 256 * exp, min(16, output_stride)),
            FeatureSpec("layer4", 512 * exp, min(32, output_stride)),
        ]
        self._init_weights(zero_init_residual)
        self.freeze()

    def _make_layer(self, block, planes, blocks, stride, dilate=False, multi_grid=None) -> nn.Sequential:
        previous_dilation = self._dilation
        if dilate:
            self._dilation *= stride
            stride = 1
        downsample = None
        if stride != 1 or self._inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                nn.Conv2d(self._inplanes, planes * block.expansion, 1, stride, bias=False),
                self._norm(planes * block.expansion),
            )
        rates = [self._dilation * g for g in multi_grid] if multi_grid else [self._dilation] * blocks
        # multi-grid sets every block's rate, the first included (DeepLabV3); otherwise torchvision's rule
        first = rates[0] if multi_grid else previous_dilation
        kw = dict(groups=self._groups, base_width=self._base_width, norm=self._norm)
        layers = [block(self._inplanes, planes, stride, downsample, dilation=rates[0], first_dilation=first, **kw)]
        self._inplanes = planes * block.expansion
        for i in range(1, blocks):
            layers.append(block(self._inplanes, planes, dilation=rates[i], first_dilation=rates[i], **kw))
        return nn.Sequential(*layers)

    def _init_weights(self, zero_init_residual: bool) -> None:
        if self.layer1[0].conv1.weight.is_meta:
            return  # built for shapes only (model_info, tests): random numbers would be thrown away
        for m in self.modules():  # torchvision's initialisation
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, (nn.BatchNorm2d, nn.SyncBatchNorm, nn.GroupNorm)):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if zero_init_residual:  # each residual branch starts as identity (Goyal et al.)
            for m in self.modules():
                last = getattr(m, "bn3", None) if isinstance(m, Bottleneck) else getattr(m, "bn2", None)
                if isinstance(m, (Bottleneck, BasicBlock)) and getattr(last, "weight", None) is not None:
                    nn.init.zeros_(last.weight)

    # ------------------------------------------------------------------ freezing
    def _frozen_modules(self) -> List[nn.Module]:
        if self.frozen_stages < 0:
            return []
        stem = [self.stem] if self.deep_stem else [self.conv1, self.bn1]
        return stem + [getattr(self, f"layer{i}") for i in range(1, self.frozen_stages + 1)]

    def freeze(self) -> None:
        """Stop gradients and norm-statistics updates in the stages ``frozen_stages`` names."""
        for m in self._frozen_modules():
            m.eval()
            for p in m.parameters():
                p.requires_grad_(False)

    def train(self, mode: bool = True) -> "ResNetBackbone":
        super().train(mode)
        self.freeze()  # frozen stages keep their norm statistics in training too
        return self

    # ------------------------------------------------------------------ forward
    def forward(self, x: torch.Tensor, last: str = "layer4") -> "OrderedDict[str, torch.Tensor]":
        """Features ``stem`` .. ``last`` (stages after ``last`` are not run)."""
        out: "OrderedDict[str, torch.Tensor]" = OrderedDict()
        x = self.stem(x) if self.deep_stem else self.relu(self.bn1(self.conv1(x)))
        out["stem"] = x
        if last != "stem":
            x = self.maxpool(x)
            for name in FEATURE_NAMES[1:]:
                x = getattr(self, name)(x)
                out[name] = x
                if name == last:
                    break
        return out

    def spec(self, name: str) -> FeatureSpec:
        return feature_spec(self.feature_info, name)

    @property
    def first_conv(self) -> str:
        """The name of the conv that reads the image (its weights adapt to ``in_channels``)."""
        return "stem.0" if self.deep_stem else "conv1"
