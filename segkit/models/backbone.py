"""ResNet backbone with dilated stages, reusable on its own.

Parameter names follow torchvision (``conv1``, ``layer1.0.conv1``, ``layer1.0.downsample.0``...),
so ``torchvision.models.resnet50()`` weights load as they are, with only ``fc.*`` left over.

``forward`` returns an ordered dict ``stem, layer1..layer4``; ``feature_info`` gives each
feature's name, channels and true stride at any output stride (8, 16 or 32).
"""
from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Type, Union

import torch
import torch.nn as nn
from torchvision.ops import FrozenBatchNorm2d

FEATURE_NAMES = ("stem", "layer1", "layer2", "layer3", "layer4")


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
    """A constructor ``norm(channels)`` for the named normalisation."""
    if kind == "bn":
        return nn.BatchNorm2d
    if kind == "syncbn":
        return nn.SyncBatchNorm
    if kind == "frozen_bn":
        return FrozenBatchNorm2d
    if kind == "gn":
        def group_norm(channels: int) -> nn.Module:
            if channels % groups:
                raise ValueError(f"norm=gn: {channels} channels do not split into norm_groups={groups}")
            return nn.GroupNorm(groups, channels)
        return group_norm
    raise ValueError(f"unknown norm '{kind}'; choose one of bn, syncbn, gn, frozen_bn")


def _conv3x3(cin: int, cout: int, stride: int = 1, groups: int = 1, dilation: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride, padding=dilation, groups=groups, dilation=dilation, bias=False)


class BasicBlock(nn.Module):
    """torchvision's BasicBlock, able to dilate: conv1 (which may stride) uses ``first_dilation``,
    conv2 runs after the stride and uses ``dilation`` (as timm does), so a dilated stage sees
    the same receptive field as the strided one."""

    expansion = 1

    def __init__(self, inplanes, planes, stride=1, downsample=None, groups=1, base_width=64,
                 dilation=1, first_dilation=1, norm=nn.BatchNorm2d):
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
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """torchvision's Bottleneck (stride on the 3x3 conv, "ResNet v1.5"); grouped and widened
    variants through ``groups`` and ``base_width``. Its only 3x3 conv both strides and
    dilates, so it takes ``first_dilation`` (torchvision's rule)."""

    expansion = 4

    def __init__(self, inplanes, planes, stride=1, downsample=None, groups=1, base_width=64,
                 dilation=1, first_dilation=1, norm=nn.BatchNorm2d):
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
        return self.relu(out + identity)


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
        norm: ``bn``, ``syncbn``, ``gn`` or ``frozen_bn``.
        frozen_stages: -1 freezes nothing, 0 the stem, k the stem and layer1..k (weights and norm statistics).
    """

    def __init__(self, name: str = "resnet50", output_stride: int = 32, deep_stem: bool = False,
                 multi_grid: Optional[Sequence[int]] = None, norm: str = "bn", norm_groups: int = 32,
                 frozen_stages: int = -1, in_channels: int = 3, zero_init_residual: bool = False):
        super().__init__()
        if name not in ARCHS:
            raise ValueError(f"unknown backbone '{name}'; choose one of {', '.join(ARCHS)}")
        if output_stride not in (8, 16, 32):
            raise ValueError(f"output_stride must be 8, 16 or 32, got {output_stride}")
        if not -1 <= frozen_stages <= 4:
            raise ValueError(f"frozen_stages must be -1..4, got {frozen_stages}")
        block, layers, groups, base_width = ARCHS[name]
        if multi_grid is not None and len(multi_grid) != layers[3]:
            raise ValueError(f"multi_grid {list(multi_grid)} gives {len(multi_grid)} rates but layer4 of "
                             f"{name} has {layers[3]} blocks; give exactly {layers[3]}")
        self.name, self.output_stride, self.deep_stem = name, output_stride, deep_stem
        self.frozen_stages = frozen_stages
        self._norm = make_norm(norm, norm_groups)
        self._groups, self._base_width = groups, base_width

        if deep_stem:
            self.stem = nn.Sequential(
                _conv3x3(in_channels, 32, 2), self._norm(32), nn.ReLU(inplace=True),
                _conv3x3(32, 32), self._norm(32), nn.ReLU(inplace=True),
                _conv3x3(32, 64), self._norm(64), nn.ReLU(inplace=True))
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
        self._freeze()

    def _make_layer(self, block, planes, blocks, stride, dilate=False, multi_grid=None) -> nn.Sequential:
        previous_dilation = self._dilation
        if dilate:
            self._dilation *= stride
            stride = 1
        downsample = None
        if stride != 1 or self._inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                nn.Conv2d(self._inplanes, planes * block.expansion, 1, stride, bias=False),
                self._norm(planes * block.expansion))
        rates = [self._dilation * g for g in multi_grid] if multi_grid else [self._dilation] * blocks
        first = rates[0] if multi_grid else previous_dilation
        kw = dict(groups=self._groups, base_width=self._base_width, norm=self._norm)
        layers = [block(self._inplanes, planes, stride, downsample, dilation=rates[0], first_dilation=first, **kw)]
        self._inplanes = planes * block.expansion
        for i in range(1, blocks):
            layers.append(block(self._inplanes, planes, dilation=rates[i], first_dilation=rates[i], **kw))
        return nn.Sequential(*layers)

    def _init_weights(self, zero_init_residual: bool) -> None:
        for m in self.modules():  # torchvision's initialisation
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, (nn.BatchNorm2d, nn.SyncBatchNorm, nn.GroupNorm)):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if zero_init_residual:
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

    def _freeze(self) -> None:
        for m in self._frozen_modules():
            m.eval()
            for p in m.parameters():
                p.requires_grad_(False)

    def train(self, mode: bool = True) -> "ResNetBackbone":
        super().train(mode)
        self._freeze()  # frozen stages keep their norm statistics in training too
        return self

    # ------------------------------------------------------------------ forward
    def forward(self, x: torch.Tensor) -> "OrderedDict[str, torch.Tensor]":
        out: "OrderedDict[str, torch.Tensor]" = OrderedDict()
        x = self.stem(x) if self.deep_stem else self.relu(self.bn1(self.conv1(x)))
        out["stem"] = x
        x = self.layer1(self.maxpool(x))
        out["layer1"] = x
        x = self.layer2(x)
        out["layer2"] = x
        x = self.layer3(x)
        out["layer3"] = x
        out["layer4"] = self.layer4(x)
        return out

    def spec(self, name: str) -> FeatureSpec:
        return feature_spec(self.feature_info, name)


# ---------------------------------------------------------------------- weights
_ALLOWED_LEFTOVER = ("fc.",)


def _torchvision_state_dict(name: str) -> Dict[str, torch.Tensor]:
    import torchvision.models as tvm

    weights = tvm.get_model_weights(name).DEFAULT
    try:
        return weights.get_state_dict(progress=True)
    except Exception as exc:  # URLError, socket timeouts, SSL errors...
        raise RuntimeError(
            f"could not fetch torchvision's ImageNet weights for {name} ({type(exc).__name__}: {exc}). "
            f"Offline? Download {weights.url} on a machine with internet, copy it here and set "
            f"model.backbone.pretrained=/path/to/{weights.url.rsplit('/', 1)[-1]}") from exc


def extract_backbone_state(obj: object, source: str) -> Dict[str, torch.Tensor]:
    """The backbone part of a torchvision state dict, a torchvision segmentation model's state
    dict, or a segkit checkpoint (keys ``backbone.*`` under ``model``)."""
    if isinstance(obj, dict) and "model" in obj and isinstance(obj["model"], dict):
        obj = obj["model"]
    elif isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ValueError(f"{source}: not a state dict or checkpoint (found {type(obj).__name__})")
    if any(k.startswith("backbone.") for k in obj):
        return {k[len("backbone."):]: v for k, v in obj.items() if k.startswith("backbone.")}
    return dict(obj)


def load_backbone_weights(backbone: ResNetBackbone, pretrained: Union[str, Path]) -> List[str]:
    """Load ``"torchvision"`` ImageNet weights or a file; returns the keys left over (``fc.*``).

    Anything else missing or unexpected is an error that lists the keys: that file is for another model.
    """
    pretrained = str(pretrained)
    if pretrained == "torchvision":
        if backbone.deep_stem:
            raise ValueError("pretrained=torchvision needs the standard stem: torchvision has no deep-stem "
                             "weights. Set model.backbone.deep_stem=false or load a file that has them.")
        state, source = _torchvision_state_dict(backbone.name), f"torchvision {backbone.name} ImageNet weights"
    else:
        path = Path(pretrained)
        if not path.is_file():
            raise FileNotFoundError(f"pretrained weights file not found: {path} (model.backbone.pretrained)")
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise ValueError(f"{path}: cannot be read as PyTorch weights ({exc}); is it truncated?") from exc
        state, source = extract_backbone_state(obj, str(path)), str(path)

    own = backbone.state_dict()
    conv1 = "stem.0.weight" if backbone.deep_stem else "conv1.weight"
    if conv1 in state and state[conv1].shape[1] != own[conv1].shape[1]:
        state[conv1] = _adapt_input_channels(state[conv1], own[conv1].shape[1])
    shape_clash = [f"{k}: file {tuple(v.shape)} vs model {tuple(own[k].shape)}"
                   for k, v in state.items() if k in own and v.shape != own[k].shape]
    missing = [k for k in own if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in own]
    bad_unexpected = [k for k in unexpected if not k.startswith(_ALLOWED_LEFTOVER)]
    if shape_clash or missing or bad_unexpected:
        def head(keys):
            return ", ".join(keys[:6]) + (f" ... ({len(keys)} in all)" if len(keys) > 6 else "")
        parts = [f"shape mismatches: {head(shape_clash)}" if shape_clash else "",
                 f"missing: {head(missing)}" if missing else "",
                 f"unexpected: {head(bad_unexpected)}" if bad_unexpected else ""]
        raise ValueError(f"{source} does not fit backbone {backbone.name} (deep_stem={backbone.deep_stem}, "
                         f"norm={type(backbone.layer1[0].bn1).__name__}): " + "; ".join(p for p in parts if p)
                         + ". Is it for another model? Check model.backbone.name and deep_stem.")
    backbone.load_state_dict({k: v for k, v in state.items() if k in own}, strict=False)
    return unexpected


def _adapt_input_channels(weight: torch.Tensor, channels: int) -> torch.Tensor:
    """RGB conv1 weights for another channel count: averaged for one, cycled and rescaled for more."""
    if channels == 1:
        return weight.sum(dim=1, keepdim=True)
    reps = math.ceil(channels / weight.shape[1])
    return weight.repeat(1, reps, 1, 1)[:, :channels] * (weight.shape[1] / channels)


def build_backbone(cfg) -> ResNetBackbone:
    """From a ``BackboneConfig`` (or anything with its fields)."""
    backbone = ResNetBackbone(
        name=cfg.name, output_stride=cfg.output_stride, deep_stem=cfg.deep_stem,
        multi_grid=list(cfg.multi_grid) if cfg.multi_grid else None, norm=cfg.norm,
        norm_groups=cfg.norm_groups, frozen_stages=cfg.frozen_stages, in_channels=cfg.in_channels,
        zero_init_residual=cfg.zero_init_residual)
    if cfg.pretrained:
        load_backbone_weights(backbone, cfg.pretrained)
        backbone._freeze()
    return backbone
