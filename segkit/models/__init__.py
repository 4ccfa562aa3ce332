"""Models: ``build_model(cfg)`` from two plain registries, ``BACKBONES`` and ``DECODERS``.

Of segkit this layer imports only ``errors``: the backbone and decoders serve other code as they are, and
the config schema reads each decoder's ``model.decoder.*`` keys from ``DECODERS`` (``decoder_options``).
Every way a model config can be wrong (an unknown name, a multi-grid of the wrong length,
group norm that does not divide a layer, ...) fails here, at build time, with a ``ConfigError``
that names the key.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import MISSING, Field, fields, is_dataclass
from functools import partial
from typing import Any, Callable, Dict, List, Sequence, Tuple, Type, get_type_hints

import torch.nn as nn

from ..errors import ConfigError
from .backbone import ARCHS, FeatureSpec, ResNetBackbone, make_norm
from .deeplab import DeepLabV3Decoder, DeepLabV3PlusDecoder
from .fcn import FCNDecoder
from .layers import Norm, check_widths
from .segmenter import Segmenter
from .torchvision_compat import TorchvisionBackbone, convert_torchvision_segmentation
from .unet import UNetDecoder
from .weights import load_backbone_weights

__all__ = [
    "BACKBONES",
    "DECODERS",
    "FeatureSpec",
    "ResNetBackbone",
    "Segmenter",
    "TorchvisionBackbone",
    "build_backbone",
    "build_model",
    "build_segmenter",
    "convert_torchvision_segmentation",
    "decoder_norm",
    "decoder_options",
    "load_backbone_weights",
]

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
            output_stride=cfg.output_stride,
            deep_stem=cfg.deep_stem,
            multi_grid=list(cfg.multi_grid) if cfg.multi_grid else None,
            norm=cfg.norm,
            norm_groups=cfg.norm_groups,
            frozen_stages=cfg.frozen_stages,
            in_channels=3 if cfg.in_channels is None else cfg.in_channels,
            zero_init_residual=cfg.zero_init_residual,
        )
    if cfg.pretrained and load_weights:
        load_backbone_weights(backbone, cfg.pretrained)
    return backbone


# name -> decoder class. Each class declares its model.decoder.* keys in an ``Options`` dataclass (with defaults)
# and builds itself with ``from_config(feature_info, num_classes, options, norm)``; the config schema takes its
# keys from here, so a new decoder is its own file and one line (docs/extending.md): DECODERS[name] = Class
DECODERS: Dict[str, Type[nn.Module]] = {
    "fcn": FCNDecoder,
    "deeplabv3": DeepLabV3Decoder,
    "deeplabv3plus": DeepLabV3PlusDecoder,
    "unet": UNetDecoder,
}


def option_default(option: Field) -> Any:
    return option.default_factory() if option.default_factory is not MISSING else option.default


def _options_class(name: str, cls: type) -> type:
    options = getattr(cls, "Options", None)
    if not (is_dataclass(options) and callable(getattr(cls, "from_config", None))):
        raise TypeError(
            f"DECODERS[{name!r}] = {getattr(cls, '__name__', cls)!r} needs an Options dataclass (its "
            f"model.decoder.* keys) and a from_config(feature_info, num_classes, options, norm) "
            f"classmethod: docs/extending.md"
        )
    for option in fields(options):
        if option.name == "name" or option_default(option) is MISSING:
            raise TypeError(
                f"{cls.__name__}.Options.{option.name}: every option needs a default (a config sets "
                f"only what differs), and 'name' is model.decoder.name itself"
            )
    return options


def decoder_options() -> Dict[str, Tuple[Any, Field, List[str]]]:
    """The model.decoder.* keys of every registered decoder, each once: key -> (type, field, decoders taking it).
    Decoders that share a key share its type and default, since a config holds one value for it."""
    merged: Dict[str, Tuple[Any, Field, List[str]]] = {}
    for name, cls in DECODERS.items():
        options = _options_class(name, cls)
        hints = get_type_hints(options)
        for option in fields(options):
            if option.name not in merged:
                merged[option.name] = (hints[option.name], option, [name])
                continue
            kind, first, users = merged[option.name]
            if (kind, option_default(first)) != (hints[option.name], option_default(option)):
                raise TypeError(
                    f"model.decoder.{option.name} is {kind} = {option_default(first)!r} for {users[0]} "
                    f"but {hints[option.name]} = {option_default(option)!r} for {name}: a key decoders "
                    f"share needs one type and default (null can stand for each decoder's own)"
                )
            users.append(name)
    return merged


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, Sequence) and not isinstance(value, str) else value


def decoder_options_of(dec) -> Any:
    """The chosen decoder's ``Options`` from a ``model.decoder`` config. An option of another decoder changed from
    its default is an error naming the decoder that takes it (it would otherwise be ignored silently)."""
    options = DECODERS[dec.name].Options
    own = {option.name for option in fields(options)}
    for key, (_, option, users) in decoder_options().items():
        default = option_default(option)
        value = _plain(getattr(dec, key, default))
        if key not in own and value != default:
            raise ConfigError(
                f"model.decoder.{key}={value} is an option of the {' and '.join(users)} decoder, not "
                f"of model.decoder.name={dec.name}; remove it (or set it to {default})"
            )
    return options(**{key: _plain(getattr(dec, key)) for key in own if hasattr(dec, key)})


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
    options = decoder_options_of(dec)
    check_widths("model.aux_channels", model_cfg.aux_channels)
    backbone = build_backbone(bb, load_weights=False)  # weights last: every config error comes before a download
    with backbone_keys():  # the decoders' norm layers follow model.backbone.norm and norm_groups
        norm = decoder_norm(bb.norm, bb.norm_groups)
        decoder = DECODERS[dec.name].from_config(backbone.feature_info, num_classes, options, norm)
        aux = None
        if model_cfg.aux_head:
            aux = FCNDecoder(
                backbone.feature_info, num_classes, in_feature="layer3", channels=model_cfg.aux_channels, norm=norm
            )
    if bb.pretrained:
        load_backbone_weights(backbone, bb.pretrained)
    return Segmenter(backbone, decoder, aux, num_classes)


def build_model(cfg) -> Segmenter:
    """A Segmenter from a full ``Config`` (``cfg.model`` and ``cfg.data.num_classes``)."""
    return build_segmenter(cfg.model, cfg.data.num_classes)
