"""segkit's ResNetBackbone as a segmentation_models.pytorch encoder.

    from segkit.models.smp_encoder import register_smp_encoders
    register_smp_encoders()  # adds segkit_resnet18 ... segkit_wide_resnet101_2
    model = smp.Unet("segkit_resnet50", encoder_weights=None, classes=5)

smp (0.6) looks encoders up in the plain dict ``segmentation_models_pytorch.encoders.encoders``;
``get_encoder`` builds ``cls(**params, depth=..., output_stride=...)``, then calls
``set_in_channels`` and, when the output stride is not 32, ``make_dilated``. segkit dilates
natively at construction (torchvision's rule for the first block, BasicBlock included), so
``make_dilated`` only checks that the stride asked for is the one built.

The encoder's contract: ``forward(x)`` returns ``depth + 1`` tensors, the input first, then
stem (stride 2), layer1 (4), layer2 (8), layer3, layer4; ``out_channels`` lists their channels.
smp's own ImageNet weights are not offered (``encoder_weights`` must be None); load segkit's or
torchvision's into ``model.encoder`` with ``segkit.models.load_backbone_weights``.
"""

from __future__ import annotations

from typing import Dict, List, Sequence

import torch
import torch.nn as nn

from .backbone import ARCHS, FEATURE_NAMES, ResNetBackbone
from .weights import adapt_input_channels


class SMPEncoder(ResNetBackbone):
    _is_torch_scriptable = False  # forward takes a Python string for its last stage
    _is_torch_exportable = True
    _is_torch_compilable = True

    def __init__(self, name: str, depth: int = 5, output_stride: int = 32, **backbone_kwargs):
        if not 1 <= depth <= 5:
            raise ValueError(f"{type(self).__name__} depth must be 1..5, got {depth}")
        self._depth = depth
        super().__init__(name, output_stride=output_stride, **backbone_kwargs)

    # smp reads output_stride as the stride of the deepest feature it gets
    @property
    def output_stride(self) -> int:
        return min(self._output_stride, 2**self._depth)

    @output_stride.setter
    def output_stride(self, value: int) -> None:
        self._output_stride = value

    @property
    def out_channels(self) -> List[int]:
        return [self.in_channels] + [spec.channels for spec in self.feature_info][: self._depth]

    def forward(self, x: torch.Tensor) -> List[torch.Tensor]:
        features = super().forward(x, last=FEATURE_NAMES[self._depth - 1])
        return [x, *features.values()]

    def get_stages(self) -> Dict[int, Sequence[nn.Module]]:
        return {16: [self.layer3], 32: [self.layer4]}

    def make_dilated(self, output_stride: int) -> None:
        if output_stride != self._output_stride:
            raise ValueError(
                f"this encoder was built at output stride {self._output_stride} and cannot be "
                f"re-dilated to {output_stride}; build it with output_stride={output_stride}"
            )

    def set_in_channels(self, in_channels: int, pretrained: bool = True) -> None:
        """A new first conv for ``in_channels``: adapted from the RGB weights if pretrained, else fresh."""
        if in_channels == self.in_channels:
            return
        old = self.get_submodule(self.first_conv)
        new = nn.Conv2d(in_channels, old.out_channels, old.kernel_size, old.stride, old.padding, bias=False)
        if pretrained:
            new.weight.data.copy_(adapt_input_channels(old.weight.detach(), in_channels))
        else:
            nn.init.kaiming_normal_(new.weight, mode="fan_out", nonlinearity="relu")
        self.set_submodule(self.first_conv, new)
        self.in_channels = in_channels


def register_smp_encoders(prefix: str = "segkit_", **backbone_kwargs) -> List[str]:
    """Register every ResNet of ``ARCHS`` as ``prefix + name`` in smp's encoder dict; returns the names.

    ``backbone_kwargs`` (deep_stem, multi_grid, norm, frozen_stages...) go to every encoder built
    under these names; register twice with another prefix for another setting.
    """
    from segmentation_models_pytorch.encoders import encoders

    names = []
    for arch in ARCHS:
        encoders[prefix + arch] = {
            "encoder": SMPEncoder,
            "pretrained_settings": {},
            "params": {"name": arch, **backbone_kwargs},
        }
        names.append(prefix + arch)
    return names
