"""The comparisons users would make: each segkit model beside the model they would pick instead.

Every pair is configured alike (21 classes, same output stride, same auxiliary head), so a
difference in speed is a difference in implementation, not in architecture.
"""
from __future__ import annotations

import warnings
from typing import Callable, Dict, Tuple

import torch.nn as nn

NUM_CLASSES = 21


def _segkit(*overrides: str) -> Callable[[], nn.Module]:
    def build() -> nn.Module:
        from segkit.config import load_config
        from segkit.models import build_model

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return build_model(load_config(None, [f"data.num_classes={NUM_CLASSES}", *overrides]))
    return build


def _torchvision(name: str) -> Callable[[], nn.Module]:
    def build() -> nn.Module:
        import torchvision.models.segmentation as tvs

        return getattr(tvs, name)(weights=None, weights_backbone=None, aux_loss=True, num_classes=NUM_CLASSES)
    return build


def _smp(name: str, encoder: str) -> Callable[[], nn.Module]:
    def build() -> nn.Module:
        import segmentation_models_pytorch as smp

        return getattr(smp, name)(encoder, encoder_weights=None, classes=NUM_CLASSES)
    return build


# label -> (segkit builder, reference label, reference builder, note)
PAIRS: Dict[str, Tuple[Callable, str, Callable, str]] = {
    "DeepLabV3-R50-OS8": (
        _segkit("model.decoder.name=deeplabv3", "model.backbone.name=resnet50", "model.backbone.output_stride=8",
                "model.aux_head=true"),
        "torchvision deeplabv3_resnet50", _torchvision("deeplabv3_resnet50"),
        "same architecture (identical parameters and outputs)"),
    "FCN-R50-OS8": (
        _segkit("model.decoder.name=fcn", "model.backbone.name=resnet50", "model.backbone.output_stride=8",
                "model.aux_head=true"),
        "torchvision fcn_resnet50", _torchvision("fcn_resnet50"),
        "same architecture (identical parameters and outputs)"),
    "U-Net-R34": (
        _segkit("model.decoder.name=unet", "model.backbone.name=resnet34", "model.backbone.output_stride=32"),
        'smp Unet("resnet34")', _smp("Unet", "resnet34"),
        "same layers and parameter count (24.44 M)"),
    "DeepLabV3+-R50-OS16": (
        _segkit("model.decoder.name=deeplabv3plus", "model.backbone.name=resnet50", "model.backbone.output_stride=16",
                "model.decoder.separable=true"),
        'smp DeepLabV3Plus("resnet50")', _smp("DeepLabV3Plus", "resnet50"),
        "separable ASPP on both; decoder layouts differ slightly (26.70 M vs 26.68 M parameters)"),
}


def outputs(result) -> Tuple[object, object]:
    """(main logits, aux logits or None) whatever the model returns: dict (segkit, torchvision) or tensor (smp)."""
    if isinstance(result, dict):
        return result["out"], result.get("aux")
    return result, None
