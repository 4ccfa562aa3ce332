"""U-Net decoder (Ronneberger et al. 2015) on a ResNet encoder, as in segmentation_models.pytorch.

layer4 is the centre; each block upsamples to the next skip (layer3, layer2, layer1, stem),
concatenates it and applies two 3x3 conv-norm-ReLU; a last block without skip reaches stride 1.

On a dilated backbone (output stride 8 or 16) layer4 and layer3 already share layer2's
resolution, so the blocks fed by them upsample by nothing: the model still works, at
the cost of running those blocks at the finer resolution. U-Net is meant for output_stride=32.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import ConfigError
from .backbone import FeatureSpec, feature_spec
from .layers import ConvNormAct, Norm, check_dropout, check_widths

SKIPS = ("layer3", "layer2", "layer1", "stem")


class UNetBlock(nn.Module):
    def __init__(self, cin: int, skip_channels: int, cout: int, norm: Norm):
        super().__init__()
        self.conv1 = ConvNormAct(cin + skip_channels, cout, 3, norm=norm)
        self.conv2 = ConvNormAct(cout, cout, 3, norm=norm)

    def forward(self, x: torch.Tensor, skip: Optional[torch.Tensor]) -> torch.Tensor:
        if skip is None:
            x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        else:  # to the skip's exact size: odd inputs do not halve evenly, dilated stages not at all
            x = F.interpolate(x, size=skip.shape[-2:], mode="nearest")
            x = torch.cat([x, skip], dim=1)
        return self.conv2(self.conv1(x))


@dataclass
class UNetOptions:
    """The ``model.decoder.*`` keys of ``model.decoder.name=unet``."""

    unet_channels: List[int] = field(default_factory=lambda: [256, 128, 64, 32, 16])  # one per skip and a last block
    dropout: Optional[float] = None  # null: 0, before the classifier


class UNetDecoder(nn.Module):
    Options = UNetOptions

    def __init__(
        self,
        feature_info: Sequence[FeatureSpec],
        num_classes: int,
        in_feature: str = "layer4",
        skip_features: Sequence[str] = SKIPS,
        channels: Sequence[int] = (256, 128, 64, 32, 16),
        dropout: Optional[float] = None,
        norm: Norm = nn.BatchNorm2d,
    ):
        super().__init__()
        if len(channels) != len(skip_features) + 1:
            raise ConfigError(
                f"U-Net needs {len(skip_features) + 1} decoder channel counts (one per skip and a "
                f"last block), got {list(channels)} (model.decoder.unet_channels)"
            )
        check_widths("model.decoder.unet_channels", *channels)
        check_dropout("model.decoder.dropout", dropout)
        self.in_feature, self.skip_features = in_feature, tuple(skip_features)
        centre = feature_spec(feature_info, in_feature)
        if centre.stride < 32:
            warnings.warn(
                f"U-Net on an output-stride-{centre.stride} backbone: {in_feature} and the dilated stages "
                f"share stride {centre.stride}, so their decoder blocks do not upsample and run at that "
                f"finer resolution (slower, no extra detail). U-Net is meant for output_stride=32.",
                stacklevel=2,
            )
        cin = centre.channels
        blocks = []
        for name, cout in zip(self.skip_features, channels):
            blocks.append(UNetBlock(cin, feature_spec(feature_info, name).channels, cout, norm))
            cin = cout
        blocks.append(UNetBlock(cin, 0, channels[-1], norm))
        self.blocks = nn.ModuleList(blocks)
        self.dropout = nn.Dropout(dropout or 0.0)
        self.classifier = nn.Conv2d(channels[-1], num_classes, 3, padding=1)

    @classmethod
    def from_config(
        cls, feature_info: Sequence[FeatureSpec], num_classes: int, options: UNetOptions, norm: Norm
    ) -> "UNetDecoder":
        return cls(feature_info, num_classes, channels=list(options.unet_channels), dropout=options.dropout, norm=norm)

    def forward(self, features: Dict[str, torch.Tensor]) -> torch.Tensor:
        x = features[self.in_feature]
        for block, name in zip(self.blocks, self.skip_features + (None,)):
            x = block(x, features[name] if name else None)
        return self.classifier(self.dropout(x))
