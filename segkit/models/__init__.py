"""Models: ``build_model(cfg)`` from two plain registries, ``BACKBONES`` and ``DECODERS``."""
from __future__ import annotations

import math
from functools import partial
from typing import Callable, Dict, Sequence

import torch.nn as nn

from .backbone import ARCHS, FeatureSpec, ResNetBackbone, build_backbone, load_backbone_weights
from .deeplab import DeepLabV3Decoder, DeepLabV3PlusDecoder
from .fcn import FCNDecoder
from .layers import Norm
from .segmenter import Segmenter
from .unet import UNetDecoder

__all__ = ["BACKBONES", "DECODERS", "FeatureSpec", "ResNetBackbone", "Segmenter", "build_backbone",
           "build_model", "build_segmenter", "load_backbone_weights", "decoder_norm"]

# name -> constructor taking the backbone options (output_stride=..., norm=...)
BACKBONES: Dict[str, Callable[..., ResNetBackbone]] = {name: partial(ResNetBackbone, name) for name in ARCHS}


def _fcn(info: Sequence[FeatureSpec], num_classes: int, cfg, norm: Norm) -> nn.Module:
    return FCNDecoder(info, num_classes, channels=cfg.channels, num_convs=cfg.num_convs, dropout=cfg.dropout, norm=norm)


def _deeplabv3(info: Sequence[FeatureSpec], num_classes: int, cfg, norm: Norm) -> nn.Module:
    return DeepLabV3Decoder(info, num_classes, channels=cfg.channels, aspp_rates=cfg.aspp_rates,
                            dropout=cfg.dropout, separable=cfg.separable, norm=norm)


def _deeplabv3plus(info: Sequence[FeatureSpec], num_classes: int, cfg, norm: Norm) -> nn.Module:
    return DeepLabV3PlusDecoder(info, num_classes, channels=cfg.channels, skip_channels=cfg.skip_channels,
                                aspp_rates=cfg.aspp_rates, dropout=cfg.dropout, separable=cfg.separable, norm=norm)


def _unet(info: Sequence[FeatureSpec], num_classes: int, cfg, norm: Norm) -> nn.Module:
    return UNetDecoder(info, num_classes, channels=list(cfg.unet_channels), dropout=cfg.dropout, norm=norm)


# name -> builder(feature_info, num_classes, DecoderConfig, norm) -> module with forward(features) -> logits
DECODERS: Dict[str, Callable[..., nn.Module]] = {
    "fcn": _fcn, "deeplabv3": _deeplabv3, "deeplabv3plus": _deeplabv3plus, "unet": _unet,
}


def decoder_norm(kind: str, groups: int = 32) -> Norm:
    """Decoders follow the backbone's norm, except that frozen BN makes no sense in a fresh head."""
    if kind in ("bn", "frozen_bn"):
        return nn.BatchNorm2d
    if kind == "syncbn":
        return nn.SyncBatchNorm
    if kind == "gn":
        return lambda c: nn.GroupNorm(math.gcd(groups, c), c)
    raise ValueError(f"unknown norm '{kind}'; choose one of bn, syncbn, gn, frozen_bn")


def build_segmenter(model_cfg, num_classes: int) -> Segmenter:
    """A Segmenter from a ``ModelConfig``; unknown names fail listing the valid ones."""
    bb, dec = model_cfg.backbone, model_cfg.decoder
    if bb.name not in BACKBONES:
        raise ValueError(f"unknown backbone '{bb.name}' (model.backbone.name); choose one of {', '.join(BACKBONES)}")
    if dec.name not in DECODERS:
        raise ValueError(f"unknown decoder '{dec.name}' (model.decoder.name); choose one of {', '.join(DECODERS)}")
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes} (data.num_classes)")
    backbone = build_backbone(bb)
    norm = decoder_norm(bb.norm, bb.norm_groups)
    decoder = DECODERS[dec.name](backbone.feature_info, num_classes, dec, norm)
    aux = None
    if model_cfg.aux_head:
        aux = FCNDecoder(backbone.feature_info, num_classes, in_feature="layer3", channels=model_cfg.aux_channels,
                         norm=norm)
    return Segmenter(backbone, decoder, aux, num_classes)


def build_model(cfg) -> Segmenter:
    """A Segmenter from a full ``Config`` (``cfg.model`` and ``cfg.data.num_classes``)."""
    return build_segmenter(cfg.model, cfg.data.num_classes)
