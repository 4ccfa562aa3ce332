"""DeepLabV3 (Chen et al. 2017) and DeepLabV3+ (Chen et al. 2018) decoders.

ASPP rates follow the output stride unless given: (6, 12, 18) at OS16, doubled at OS8,
halved at OS32. With the defaults, ``DeepLabV3Decoder`` is torchvision's ``DeepLabHead``
(same layers, same names under ``head``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import ConfigError
from .backbone import FeatureSpec, feature_spec
from .layers import ConvNormAct, Norm, check_dropout, check_rates, check_widths, conv3x3_block


def default_aspp_rates(output_stride: int) -> list:
    return [r * 16 // output_stride for r in (6, 12, 18)]


def check_options(channels: Optional[int], aspp_rates: Optional[Sequence[int]], dropout: Optional[float]) -> None:
    check_widths("model.decoder.channels", channels)
    check_rates("model.decoder.aspp_rates", aspp_rates)
    check_dropout("model.decoder.dropout", dropout)


class ASPPPooling(nn.Sequential):
    """Image-level features: global average, 1x1 conv-norm-ReLU, broadcast back."""

    def __init__(self, cin: int, cout: int, norm: Norm):
        super().__init__(
            nn.AdaptiveAvgPool2d(1), nn.Conv2d(cin, cout, 1, bias=False), norm(cout), nn.ReLU(inplace=True)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and x.shape[0] == 1 and type(self[2]) is nn.BatchNorm2d:
            # BatchNorm would fail with "Expected more than 1 value per channel": say what to change.
            raise ConfigError(
                "DeepLab's image-pooling branch has one value per channel per image, so its BatchNorm "
                "needs at least 2 images per batch in training: set train.batch_size >= 2 (per "
                "process), or model.backbone.norm=gn"
            )
        size = x.shape[-2:]
        return F.interpolate(super().forward(x), size=size, mode="bilinear", align_corners=False)


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling: a 1x1 branch, one 3x3 branch per rate, image pooling."""

    def __init__(
        self,
        cin: int,
        rates: Sequence[int],
        cout: int = 256,
        dropout: float = 0.5,
        norm: Norm = nn.BatchNorm2d,
        separable: bool = False,
    ):
        super().__init__()
        branches = [ConvNormAct(cin, cout, 1, norm=norm)]
        branches += [conv3x3_block(cin, cout, r, norm, separable) for r in rates]
        branches.append(ASPPPooling(cin, cout, norm))
        self.convs = nn.ModuleList(branches)
        self.project = nn.Sequential(*ConvNormAct(len(branches) * cout, cout, 1, norm=norm), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(torch.cat([branch(x) for branch in self.convs], dim=1))


@dataclass
class DeepLabV3Options:
    """The ``model.decoder.*`` keys of ``model.decoder.name=deeplabv3``."""

    channels: Optional[int] = None  # null: 256
    aspp_rates: Optional[List[int]] = None  # null: 12,24,36 at OS8, 6,12,18 at OS16, 3,6,9 at OS32
    dropout: Optional[float] = None  # null: 0.5 in the ASPP projection (torchvision)
    separable: bool = False  # depthwise-separable 3x3 convs in ASPP and decoder


@dataclass
class DeepLabV3PlusOptions(DeepLabV3Options):
    """``deeplabv3``'s keys and the projected layer1 skip's width."""

    skip_channels: int = 48


class DeepLabV3Decoder(nn.Module):
    Options = DeepLabV3Options

    def __init__(
        self,
        feature_info: Sequence[FeatureSpec],
        num_classes: int,
        in_feature: str = "layer4",
        channels: Optional[int] = None,
        aspp_rates: Optional[Sequence[int]] = None,
        dropout: Optional[float] = None,
        separable: bool = False,
        norm: Norm = nn.BatchNorm2d,
    ):
        super().__init__()
        check_options(channels, aspp_rates, dropout)
        spec = feature_spec(feature_info, in_feature)
        self.in_feature = in_feature
        channels = channels or 256
        rates = list(aspp_rates) if aspp_rates else default_aspp_rates(spec.stride)
        self.head = nn.Sequential(
            ASPP(spec.channels, rates, channels, 0.5 if dropout is None else dropout, norm, separable),
            *conv3x3_block(channels, channels, 1, norm, separable),
            nn.Conv2d(channels, num_classes, 1),
        )

    @classmethod
    def from_config(
        cls, feature_info: Sequence[FeatureSpec], num_classes: int, options: DeepLabV3Options, norm: Norm
    ) -> "DeepLabV3Decoder":
        return cls(
            feature_info,
            num_classes,
            channels=options.channels,
            aspp_rates=options.aspp_rates,
            dropout=options.dropout,
            separable=options.separable,
            norm=norm,
        )

    def forward(self, features: Dict[str, torch.Tensor]) -> torch.Tensor:
        return self.head(features[self.in_feature])


class DeepLabV3PlusDecoder(nn.Module):
    """ASPP on ``in_feature``, upsampled to a low-level ``skip_feature`` (layer1, stride 4) projected
    to ``skip_channels``; two 3x3 blocks refine the concatenation before the classifier."""

    Options = DeepLabV3PlusOptions

    def __init__(
        self,
        feature_info: Sequence[FeatureSpec],
        num_classes: int,
        in_feature: str = "layer4",
        skip_feature: str = "layer1",
        channels: Optional[int] = None,
        skip_channels: int = 48,
        aspp_rates: Optional[Sequence[int]] = None,
        dropout: Optional[float] = None,
        separable: bool = False,
        norm: Norm = nn.BatchNorm2d,
    ):
        super().__init__()
        check_options(channels, aspp_rates, dropout)
        check_widths("model.decoder.skip_channels", skip_channels)
        spec, skip = feature_spec(feature_info, in_feature), feature_spec(feature_info, skip_feature)
        if skip.stride >= spec.stride:
            raise ConfigError(
                f"DeepLabV3+ needs a skip feature finer than its ASPP input: "
                f"{skip_feature} (stride {skip.stride}) vs {in_feature} (stride {spec.stride})"
            )
        self.in_feature, self.skip_feature = in_feature, skip_feature
        channels = channels or 256
        rates = list(aspp_rates) if aspp_rates else default_aspp_rates(spec.stride)
        self.aspp = ASPP(spec.channels, rates, channels, 0.5 if dropout is None else dropout, norm, separable)
        self.skip = ConvNormAct(skip.channels, skip_channels, 1, norm=norm)
        self.fuse = nn.Sequential(
            conv3x3_block(channels + skip_channels, channels, 1, norm, separable),
            conv3x3_block(channels, channels, 1, norm, separable),
        )
        self.classifier = nn.Sequential(nn.Dropout(0.1), nn.Conv2d(channels, num_classes, 1))

    @classmethod
    def from_config(
        cls, feature_info: Sequence[FeatureSpec], num_classes: int, options: DeepLabV3PlusOptions, norm: Norm
    ) -> "DeepLabV3PlusDecoder":
        return cls(
            feature_info,
            num_classes,
            channels=options.channels,
            skip_channels=options.skip_channels,
            aspp_rates=options.aspp_rates,
            dropout=options.dropout,
            separable=options.separable,
            norm=norm,
        )

    def forward(self, features: Dict[str, torch.Tensor]) -> torch.Tensor:
        skip = self.skip(features[self.skip_feature])
        x = F.interpolate(
            self.aspp(features[self.in_feature]), size=skip.shape[-2:], mode="bilinear", align_corners=False
        )
        return self.classifier(self.fuse(torch.cat([x, skip], dim=1)))
