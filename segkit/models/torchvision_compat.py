"""Two bridges to torchvision's segmentation models.

* ``TorchvisionBackbone(backbone)``: a segkit backbone behind torchvision's ``DeepLabV3`` / ``FCN``
  classes, which expect ``backbone(x) -> {"out": ..., "aux": ...}``. Parameter names stay
  ``backbone.conv1...``, so torchvision's own segmentation state dicts load into such a model.
* ``convert_torchvision_segmentation(state_dict)``: a torchvision ``deeplabv3_resnet50/101`` or
  ``fcn_resnet50/101`` state dict renamed for segkit's ``Segmenter`` (same architecture, see README).
"""

from __future__ import annotations

from typing import Dict, Optional

import torch
import torch.nn as nn

from ..errors import CheckpointError
from .backbone import ResNetBackbone

# torchvision's prefix -> segkit's; the backbone's names are the same on both sides
SEGMENTATION_RENAMES = {"classifier.": "decoder.head.", "aux_classifier.": "aux_head.head."}


class TorchvisionBackbone(nn.Module):
    """``forward(x) -> {"out": features[out], "aux": features[aux]}`` for ``torchvision.models.segmentation``.

    The backbone's stages are registered here under their own names (``conv1``, ``layer1``...), not
    under a ``body.`` prefix, so state dicts are torchvision's; ``train()`` still goes through the
    backbone, which keeps its frozen stages frozen.
    """

    def __init__(self, backbone: ResNetBackbone, out: str = "layer4", aux: Optional[str] = "layer3"):
        super().__init__()
        self.out_channels = backbone.spec(out).channels  # spec(): a KeyError naming the valid features
        self.aux_channels = backbone.spec(aux).channels if aux is not None else None
        for name, child in backbone.named_children():
            self.add_module(name, child)
        object.__setattr__(self, "_backbone", backbone)  # unregistered: its parameters are the children above
        self.out_feature, self.aux_feature = out, aux

    def forward(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        features = self._backbone(x)
        result = {"out": features[self.out_feature]}
        if self.aux_feature is not None:
            result["aux"] = features[self.aux_feature]
        return result

    def train(self, mode: bool = True) -> "TorchvisionBackbone":
        self.training = mode
        self._backbone.train(mode)
        return self


def convert_torchvision_segmentation(state_dict: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Rename a torchvision ``deeplabv3_resnet*`` / ``fcn_resnet*`` state dict for segkit.

    The segkit model to load it into: ``backbone.name`` resnet50/101 at ``output_stride: 8``,
    ``decoder.name`` deeplabv3 or fcn with the default fields, ``aux_head: true`` if the state
    dict has ``aux_classifier.*`` (as ``configs/voc/deeplabv3_r50_os8.yaml`` and ``fcn_r50_os8.yaml``).
    """
    converted = {}
    for key, value in state_dict.items():
        for old, new in SEGMENTATION_RENAMES.items():
            if key.startswith(old):
                key = new + key[len(old) :]
                break
        else:
            if not key.startswith("backbone."):
                raise CheckpointError(
                    f"'{key}' is not from a torchvision DeepLabV3/FCN state dict "
                    f"(expected backbone.*, classifier.* or aux_classifier.*)"
                )
        converted[key] = value
    return converted
