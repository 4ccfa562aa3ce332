"""Small building blocks shared by the decoders."""

from __future__ import annotations

from typing import Callable, Optional, Sequence

import torch.nn as nn

from ..errors import ConfigError

Norm = Callable[[int], nn.Module]


def check_widths(key: str, *widths: Optional[int]) -> None:
    """Channel counts given by the user must be positive (None: the decoder's default)."""
    bad = [w for w in widths if w is not None and w < 1]
    if bad:
        raise ConfigError(f"{key} must be >= 1, got {bad[0]}")


def check_dropout(key: str, p: Optional[float]) -> None:
    if p is not None and not 0.0 <= p < 1.0:
        raise ConfigError(f"{key} must be in [0, 1), got {p}")


def check_rates(key: str, rates: Optional[Sequence[int]]) -> None:
    if rates is not None and (len(rates) == 0 or min(rates) < 1):
        raise ConfigError(f"{key} must be a non-empty list of dilation rates >= 1, got {list(rates)}")


class ConvNormAct(nn.Sequential):
    """conv -> norm -> ReLU, indexed 0, 1, 2 like torchvision's heads so their weights map by name."""

    def __init__(
        self, cin: int, cout: int, kernel: int = 3, dilation: int = 1, norm: Norm = nn.BatchNorm2d, groups: int = 1
    ):
        pad = dilation * (kernel - 1) // 2
        super().__init__(
            nn.Conv2d(cin, cout, kernel, padding=pad, dilation=dilation, groups=groups, bias=False),
            norm(cout),
            nn.ReLU(inplace=True),
        )


class SeparableConvNormAct(nn.Sequential):
    """Depthwise 3x3 (dilated) conv-norm-ReLU, then pointwise 1x1 conv-norm-ReLU (DeepLabV3+ "separable")."""

    def __init__(self, cin: int, cout: int, dilation: int = 1, norm: Norm = nn.BatchNorm2d):
        super().__init__(ConvNormAct(cin, cin, 3, dilation, norm, groups=cin), ConvNormAct(cin, cout, 1, norm=norm))


def conv3x3_block(cin: int, cout: int, dilation: int, norm: Norm, separable: bool) -> nn.Sequential:
    return SeparableConvNormAct(cin, cout, dilation, norm) if separable else ConvNormAct(cin, cout, 3, dilation, norm)
