"""Models: ``build_model(cfg)`` from two plain registries, ``BACKBONES`` and ``DECODERS``.

Every way a model config can be wrong (an unknown name, a multi-grid of the wrong length,
group norm that does not divide a layer, ...) fails here, at build time, with a ``ConfigError``
that names the key.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import fields
from functools import partial
from typing import Callable, Dict, Sequence, Tuple

import torch.nn as nn

from ..config import ConfigError, DecoderConfig
from .backbone import ARCHS, FeatureSpec, ResNetBackbone, make_norm
from .deeplab import DeepLabV3Decoder, DeepLabV3PlusDecoder
from .fcn import FCNDecoder
from .layers import Norm, check_widths
from .segmenter import Segmenter
from .torchvision_compat import TorchvisionBackbone, convert_torchvision_segmentation
from .unet import UNetDecoder
from .weights import load_backbone_weights

__all__ = ["BACKBONES", "DECODERS", "FeatureSpec", "ResNetBackbone", "Segmenter", "TorchvisionBackbone",
           "build_backbone", "build_model", "build_segmenter", "convert_torchvision_segmentation",
           "decoder_norm", "load_backbone_weights"]

# name -> constructor taking the backbone options (output_stride=..., norm=...)
BACKBONES: Dict[str, Callable[..., ResNetBackbone]] = {name: partial(ResNetBackbone, name) for name in ARCHS}


@contextmanager
def backbone_keys():
    """ResNetBackbone's plain errors start with its argument's name: say which config key set it."""
    try:
        yield
    except ConfigError:
        raise
    except ValueError as exc:
        raise ConfigError(f"model.backbone.{exc}") from exc


def build_backbone(cfg, load_weights: bool = True) -> ResNetBackbone:
    """From a ``BackboneConfig`` (or anything with its fields); loads ``cfg.pretrained`` if set and asked."""
    if cfg.name not in BACKBONES:
        raise ConfigError(f"unknown backbone '{cfg.name}' (model.backbone.name); choose one of {', '.join(BACKBONES)}")
    with backbone_keys():
        backbone = BACKBONES[cfg.name](
            output_stride=cfg.output_stride, deep_stem=cfg.deep_stem,
            multi_grid=list(cfg.multi_grid) if cfg.multi_grid else None, norm=cfg.norm,
            norm_groups=cfg.norm_groups, frozen_stages=cfg.frozen_stages, in_channels=cfg.in_channels,
            zero_init_residual=cfg.zero_init_residual)
    if cfg.pretrained and load_weights:
        load_backbone_weights(backbone, cfg.pretrained)
    return backbone


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


# name -> the model.decoder.* keys that decoder takes (each decoder class declares its own)
DECODER_OPTIONS: Dict[str, Tuple[str, ...]] = {
    "fcn": FCNDecoder.CONFIG_OPTIONS, "deeplabv3": DeepLabV3Decoder.CONFIG_OPTIONS,
    "deeplabv3plus": DeepLabV3PlusDecoder.CONFIG_OPTIONS, "unet": UNetDecoder.CONFIG_OPTIONS,
}


def check_decoder_options(dec) -> None:
    """A ``model.decoder.*`` option changed from its default for a decoder that does not take it is an error
    naming the decoder that does (``unet_channels`` on deeplabv3plus would otherwise be ignored silently)."""
    defaults = DecoderConfig()
    for key in (f.name for f in fields(DecoderConfig) if f.name != "name"):
        value = getattr(dec, key)
        plain = list(value) if isinstance(value, Sequence) and not isinstance(value, str) else value
        if key not in DECODER_OPTIONS[dec.name] and plain != getattr(defaults, key):
            users = [name for name, options in DECODER_OPTIONS.items() if key in options]
            raise ConfigError(f"model.decoder.{key}={plain} is an option of the {' and '.join(users)} decoder, not of "
                              f"model.decoder.name={dec.name}; remove it (or set it to {getattr(defaults, key)})")


def decoder_norm(kind: str, groups: int = 32) -> Norm:
    """Decoders follow the backbone's norm, except that frozen BN makes no sense in a fresh head."""
    return make_norm("bn" if kind == "frozen_bn" else kind, groups)


def build_segmenter(model_cfg, num_classes: int) -> Segmenter:
    """A Segmenter from a ``ModelConfig``; unknown names fail listing the valid ones."""
    bb, dec = model_cfg.backbone, model_cfg.decoder
    if dec.name not in DECODERS:
        raise ConfigError(f"unknown decoder '{dec.name}' (model.decoder.name); choose one of {', '.join(DECODERS)}")
    if num_classes < 1:
        raise ConfigError(f"data.num_classes must be >= 1, got {num_classes}")
    check_decoder_options(dec)
    check_widths("model.aux_channels", model_cfg.aux_channels)
    backbone = build_backbone(bb, load_weights=False)  # weights last: every config error comes before a download
    with backbone_keys():  # the decoders' norm layers follow model.backbone.norm and norm_groups
        norm = decoder_norm(bb.norm, bb.norm_groups)
        decoder = DECODERS[dec.name](backbone.feature_info, num_classes, dec, norm)
        aux = None
        if model_cfg.aux_head:
            aux = FCNDecoder(backbone.feature_info, num_classes, in_feature="layer3", channels=model_cfg.aux_channels,
                             norm=norm)
    if bb.pretrained:
        load_backbone_weights(backbone, bb.pretrained)
    return Segmenter(backbone, decoder, aux, num_classes)


def build_model(cfg) -> Segmenter:
    """A Segmenter from a full ``Config`` (``cfg.model`` and ``cfg.data.num_classes``)."""
    return build_segmenter(cfg.model, cfg.data.num_classes)
