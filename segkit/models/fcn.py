"""FCN head (Long et al.): 3x3 conv-norm-ReLU, dropout, 1x1 classifier, on one feature.

With the defaults it is torchvision's ``FCNHead`` (same layers, same names under ``head``),
which is also the auxiliary head on layer3.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional, Sequence

import torch
import torch.nn as nn

from .backbone import FeatureSpec, feature_spec
from .layers import ConvNormAct, Norm, check_dropout, check_widths


@dataclass
class FCNOptions:
    """The ``model.decoder.*`` keys of ``model.decoder.name=fcn``."""

    channels: Optional[int] = None  # null: in/4 (torchvision)
    num_convs: int = 1  # 3x3 conv layers before the classifier (torchvision: 1)
    dropout: Optional[float] = None  # null: 0.1 (torchvision)


class FCNDecoder(nn.Module):
    Options = FCNOptions

    def __init__(
        self,
        feature_info: Sequence[FeatureSpec],
        num_classes: int,
        in_feature: str = "layer4",
        channels: Optional[int] = None,
        num_convs: int = 1,
        dropout: Optional[float] = None,
        norm: Norm = nn.BatchNorm2d,
    ):
        super().__init__()
        check_widths("model.decoder.channels", channels)
        check_widths("model.decoder.num_convs", num_convs)
        check_dropout("model.decoder.dropout", dropout)
        self.in_feature = in_feature
        cin = feature_spec(feature_info, in_feature).channels
        channels = channels or cin // 4
        layers = []
        for i in range(num_convs):
            layers.extend(ConvNormAct(cin if i == 0 else channels, channels, 3, norm=norm))
        layers += [nn.Dropout(0.1 if dropout is None else dropout), nn.Conv2d(channels, num_classes, 1)]
        self.head = nn.Sequential(*layers)

    @classmethod
    def from_config(
        cls, feature_info: Sequence[FeatureSpec], num_classes: int, options: FCNOptions, norm: Norm
    ) -> "FCNDecoder":
        return cls(
            feature_info,
            num_classes,
            channels=options.channels,
            num_convs=options.num_convs,
            dropout=options.dropout,
            norm=norm,
        )

    def forward(self, features: Dict[str, torch.Tensor]) -> torch.Tensor:
        return self.head(features[self.in_feature])
