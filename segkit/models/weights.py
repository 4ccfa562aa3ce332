"""Backbone weights: torchvision's ImageNet weights, a torchvision state dict file, or a segkit checkpoint.

``model.backbone.pretrained`` is ``"torchvision"`` (download through torchvision's weights API)
or a path. Files are read with ``torch.load(weights_only=True)``. Every key must fit: only
``fc.*`` (the ImageNet classifier) may be left over; anything else missing, unexpected or of
another shape is an error that lists the keys, since the file is then for another model.
``compare_state_dicts`` (shared with ``segkit.checkpoint``) names what does not fit.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Mapping, Union

import torch

from ..errors import ConfigError
from .backbone import ResNetBackbone

log = logging.getLogger(__name__)

ALLOWED_LEFTOVER = ("fc.",)


@dataclass
class StateDiff:
    """How a state dict read from a file differs from a model's own: by name and by shape."""

    own: Mapping[str, torch.Tensor]
    given: Mapping[str, torch.Tensor]

    @property
    def shape_clash(self) -> List[str]:
        return [k for k, v in self.given.items() if k in self.own and v.shape != self.own[k].shape]

    @property
    def missing(self) -> List[str]:
        return [k for k in self.own if k not in self.given]

    @property
    def unexpected(self) -> List[str]:
        return [k for k in self.given if k not in self.own]

    def fitting(self) -> Dict[str, torch.Tensor]:
        return {k: v for k, v in self.given.items() if k in self.own and v.shape == self.own[k].shape}

    def shapes(self, key: str, own_label: str = "") -> str:
        return f"{tuple(self.given[key].shape)} vs {own_label}{tuple(self.own[key].shape)}"


def compare_state_dicts(own: Mapping[str, torch.Tensor], given: Mapping[str, torch.Tensor]) -> StateDiff:
    """``own``: the model's state dict; ``given``: the one to load into it."""
    return StateDiff(own, given)


@dataclass
class LoadReport:
    source: str
    loaded: int  # tensors copied into the backbone
    left_over: List[str]  # keys of the file the backbone has no use for (fc.* only)


def torchvision_state_dict(name: str) -> Dict[str, torch.Tensor]:
    """torchvision's default ImageNet weights for ``name``, downloaded (or read from torch hub's cache)."""
    import torchvision.models as tvm

    weights = tvm.get_model_weights(name).DEFAULT
    try:
        return weights.get_state_dict(progress=True)
    except Exception as exc:  # URLError, socket timeouts, SSL errors, a half-written cache file...
        filename = weights.url.rsplit("/", 1)[-1]
        raise ConfigError(
            f"could not fetch torchvision's ImageNet weights for {name} ({type(exc).__name__}: {exc}). "
            f"Offline? Download {weights.url} on a machine with internet, copy it here and set "
            f"model.backbone.pretrained=/path/to/{filename}"
        ) from exc


def extract_backbone_state(obj: object, source: str) -> Dict[str, torch.Tensor]:
    """The backbone part of a torchvision classification state dict, a torchvision segmentation
    model's state dict, or a segkit checkpoint (``backbone.*`` keys under ``model``)."""
    if isinstance(obj, dict) and isinstance(obj.get("model"), dict):
        obj = obj["model"]
    elif isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ConfigError(
            f"{source}: not a state dict or checkpoint (found {type(obj).__name__}"
            f"{' with keys ' + str(list(obj)[:5]) if isinstance(obj, dict) else ''}); "
            f"model.backbone.pretrained needs a state dict (torch.save(model.state_dict(), path)) "
            f"or a segkit checkpoint"
        )
    for wrapper in ("module.", "_orig_mod."):  # DistributedDataParallel / torch.compile prefixes
        if all(k.startswith(wrapper) for k in obj):
            obj = {k[len(wrapper) :]: v for k, v in obj.items()}
    if any(k.startswith("backbone.") for k in obj):
        return {k[len("backbone.") :]: v for k, v in obj.items() if k.startswith("backbone.")}
    return dict(obj)


def read_weights_file(path: Union[str, Path]) -> object:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"pretrained weights file not found: {path} (model.backbone.pretrained)")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(
            f"{path} cannot be read as PyTorch weights with weights_only=True ({first}). "
            f"Is it truncated, or a pickled model? Save model.state_dict() instead "
            f"(model.backbone.pretrained)"
        ) from exc


def adapt_input_channels(weight: torch.Tensor, channels: int) -> torch.Tensor:
    """RGB first-conv weights for another input channel count.

    One channel: the RGB filters summed, so a grey image gives what it gave as RGB. More than
    three (RGB plus depth, NIR...): RGB filters for the first three, zeros for the rest, so the
    model starts out seeing the image as before and learns what the extra channels add.
    Two: RGB cycled and rescaled by 3/2 (as timm does).
    """
    rgb = weight.shape[1]
    if channels == 1:
        return weight.sum(dim=1, keepdim=True)
    if channels > rgb:
        extra = weight.new_zeros(weight.shape[0], channels - rgb, *weight.shape[2:])
        return torch.cat([weight, extra], dim=1)
    return weight.repeat(1, math.ceil(channels / rgb), 1, 1)[:, :channels] * (rgb / channels)


def load_backbone_weights(
    backbone: ResNetBackbone, pretrained: Union[str, Path, Mapping[str, torch.Tensor]]
) -> LoadReport:
    """Load ``"torchvision"`` ImageNet weights, a file, or a state dict already in memory into
    ``backbone``; logs and returns what was left over."""
    if isinstance(pretrained, Mapping):
        state, source = extract_backbone_state(dict(pretrained), "state dict"), "state dict"
    elif str(pretrained) == "torchvision":
        if backbone.deep_stem:
            raise ConfigError(
                "model.backbone.pretrained=torchvision needs the standard stem: torchvision has no "
                "deep-stem weights. Set model.backbone.deep_stem=false, or give a file that has them."
            )
        state, source = torchvision_state_dict(backbone.name), f"torchvision {backbone.name} ImageNet weights"
    else:
        pretrained = str(pretrained)
        state, source = extract_backbone_state(read_weights_file(pretrained), pretrained), pretrained

    own = backbone.state_dict()
    first = f"{backbone.first_conv}.weight"
    if first in state and state[first].ndim == 4 and state[first].shape[1] != own[first].shape[1]:
        state[first] = adapt_input_channels(state[first], own[first].shape[1])
    # FrozenBatchNorm2d keeps no batch counter: a BatchNorm file's counters have nowhere to go, harmlessly
    state = {k: v for k, v in state.items() if k in own or not k.endswith("num_batches_tracked")}
    diff = compare_state_dicts(own, state)
    shape_clash = [f"{k}: file {diff.shapes(k, 'model ')}" for k in diff.shape_clash]
    missing = [k for k in diff.missing if not k.endswith("num_batches_tracked")]
    unexpected = diff.unexpected
    not_allowed = [k for k in unexpected if not k.startswith(ALLOWED_LEFTOVER)]
    if shape_clash or missing or not_allowed:

        def head(keys: List[str]) -> str:
            return ", ".join(keys[:5]) + (f" ... ({len(keys)} in all)" if len(keys) > 5 else "")

        parts = [
            f"shape mismatches: {head(shape_clash)}" if shape_clash else "",
            f"missing: {head(missing)}" if missing else "",
            f"unexpected: {head(not_allowed)}" if not_allowed else "",
        ]
        norm = type(backbone.layer1[0].bn1).__name__
        raise ConfigError(
            f"{source} does not fit backbone {backbone.name} (deep_stem={backbone.deep_stem}, "
            f"norm={norm}): "
            + "; ".join(p for p in parts if p)
            + ". Is it for another model? Check model.backbone.name, deep_stem and norm "
            "(model.backbone.pretrained)."
        )
    backbone.load_state_dict({k: v for k, v in state.items() if k in own}, strict=False)
    report = LoadReport(source, len(state) - len(unexpected), unexpected)
    log.info(
        "loaded %d tensors from %s into %s; left over: %s",
        report.loaded,
        source,
        backbone.name,
        ", ".join(unexpected) or "nothing",
    )
    return report
