"""Losses live outside the model: ``build_loss(cfg)`` gives ``loss(outputs, target) -> (total, parts)``.

Terms (``loss.terms``), summed with their weights: ``ce`` (optionally class-weighted), ``ohem``
(cross-entropy on the hardest pixels), and ``dice``, ``lovasz``, ``focal`` from
segmentation_models_pytorch. Every term skips ``ignore_index`` pixels, and a batch with no
labelled pixel gives 0, not NaN, so NaN always means a real divergence.
"""

from __future__ import annotations

from typing import Callable, Dict, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from segkit.errors import ConfigError


def _weights_tensor(class_weights: Optional[Sequence[float]]) -> Optional[torch.Tensor]:
    return torch.tensor(list(class_weights), dtype=torch.float32) if class_weights is not None else None


class CrossEntropy(nn.Module):
    """Mean cross-entropy over labelled pixels, weighted by the class of each pixel when
    ``class_weights`` is given (the same normalisation as ``F.cross_entropy``)."""

    def __init__(self, ignore_index: int, class_weights: Optional[Sequence[float]] = None):
        super().__init__()
        self.ignore_index = ignore_index
        self.register_buffer("weight", _weights_tensor(class_weights))

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        valid = target != self.ignore_index
        total = F.cross_entropy(logits, target, weight=self.weight, ignore_index=self.ignore_index, reduction="sum")
        if self.weight is None:
            denom = valid.sum()
        else:
            denom = (self.weight[torch.where(valid, target, 0)] * valid).sum()
        return total / denom.clamp(min=1e-12)  # no labelled pixel: 0 / eps = 0, not NaN


class OhemCrossEntropy(nn.Module):
    """Online hard example mining (as mmsegmentation's OHEM pixel sampler): cross-entropy over the
    pixels whose predicted probability of the true class is below ``thresh``, or over the
    ``min_kept`` hardest pixels per image when fewer than that are below it."""

    def __init__(
        self,
        ignore_index: int,
        class_weights: Optional[Sequence[float]] = None,
        thresh: float = 0.7,
        min_kept: int = 100000,
    ):
        super().__init__()
        self.ignore_index, self.thresh, self.min_kept = ignore_index, thresh, min_kept
        self.register_buffer("weight", _weights_tensor(class_weights))

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        valid = target != self.ignore_index
        safe = torch.where(valid, target, 0)
        ce = F.cross_entropy(logits, safe, reduction="none")
        with torch.no_grad():  # which pixels count: a selection, no gradient through it
            prob = torch.where(valid, torch.exp(-ce), 2.0)  # unlabelled pixels sort after every real one
            k = min(self.min_kept * target.shape[0] + 1, prob.numel())
            kth = prob.flatten().kthvalue(k).values  # no host sync: the threshold stays on the device
            keep = valid & (prob < torch.clamp(kth, min=self.thresh))
            pixel_weight = keep.float() if self.weight is None else self.weight[safe] * keep
        return (ce * pixel_weight).sum() / pixel_weight.sum().clamp(min=1e-12)


class _ZeroIfUnlabelled(nn.Module):
    """smp's focal and Lovasz losses average over an empty selection (NaN) when a batch has no
    labelled pixel; this gives 0 there instead, without a host sync."""

    def __init__(self, loss: nn.Module, ignore_index: int):
        super().__init__()
        self.loss, self.ignore_index = loss, ignore_index

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        value = self.loss(logits, target)
        value = value.sum() if value.ndim else value  # smp Lovasz returns an empty tensor then
        return torch.where((target != self.ignore_index).any(), value, torch.zeros_like(value))


def _smp_loss(name: str, term, ignore_index: int, class_weights: Optional[Sequence[float]]) -> nn.Module:
    from segmentation_models_pytorch import losses as smp_losses

    weights = list(class_weights) if class_weights is not None else None
    if name == "dice":
        return smp_losses.DiceLoss("multiclass", ignore_index=ignore_index, class_weights=weights)
    if name == "focal":
        return _ZeroIfUnlabelled(
            smp_losses.FocalLoss(
                "multiclass", gamma=term.focal_gamma, ignore_index=ignore_index, class_weights=weights
            ),
            ignore_index,
        )
    return _ZeroIfUnlabelled(smp_losses.LovaszLoss("multiclass", ignore_index=ignore_index), ignore_index)


# name -> builder(term config, ignore_index, class weights or None) -> module(logits, target) -> scalar
LOSSES: Dict[str, Callable[..., nn.Module]] = {
    "ce": lambda term, ignore, weights: CrossEntropy(ignore, weights),
    "ohem": lambda term, ignore, weights: OhemCrossEntropy(ignore, weights, term.ohem_thresh, term.ohem_min_kept),
    "dice": lambda term, ignore, weights: _smp_loss("dice", term, ignore, weights),
    "lovasz": lambda term, ignore, weights: _smp_loss("lovasz", term, ignore, weights),
    "focal": lambda term, ignore, weights: _smp_loss("focal", term, ignore, weights),
}


class SegLoss(nn.Module):
    """Weighted sum of terms on ``out``, plus ``aux_weight`` times the same sum on ``aux``.
    ``parts`` holds each unweighted term, detached, for logging (``aux_`` prefixed for the aux head)."""

    def __init__(self, terms: Dict[str, Tuple[nn.Module, float]], aux_weight: float = 0.4):
        super().__init__()
        self.terms = nn.ModuleDict({name: module for name, (module, _) in terms.items()})
        self.weights = {name: w for name, (_, w) in terms.items()}
        self.aux_weight = aux_weight

    def _sum(self, logits: torch.Tensor, target: torch.Tensor, parts: Dict[str, torch.Tensor], prefix: str):
        logits = logits.float()  # losses in fp32 whatever the autocast dtype
        total = 0.0
        for name, module in self.terms.items():
            value = module(logits, target)
            parts[prefix + name] = value.detach()
            total = total + self.weights[name] * value
        return total

    def forward(self, outputs: Dict[str, torch.Tensor], target: torch.Tensor):
        parts: Dict[str, torch.Tensor] = {}
        total = self._sum(outputs["out"], target, parts, "")
        if "aux" in outputs and self.aux_weight:
            total = total + self.aux_weight * self._sum(outputs["aux"], target, parts, "aux_")
        return total, parts


def needs_auto_weights(cfg) -> bool:
    return any(isinstance(t.class_weights, str) for t in cfg.loss.terms)


def build_loss(cfg, auto_weights: Optional[Sequence[float]] = None) -> SegLoss:
    """From the full config: ``cfg.loss`` and ``cfg.data`` (ignore_index, num_classes).
    ``auto_weights``: the median-frequency weights for terms with ``class_weights: auto``."""
    if not cfg.loss.terms:
        raise ConfigError("loss.terms is empty; give at least one term, e.g. [{name: ce}]")
    terms: Dict[str, Tuple[nn.Module, float]] = {}
    for i, term in enumerate(cfg.loss.terms):
        where = f"loss.terms[{i}]"
        if term.name not in LOSSES:
            raise ConfigError(f"unknown loss '{term.name}' ({where}.name); choose one of {', '.join(LOSSES)}")
        weights = term.class_weights
        if isinstance(weights, str):
            if weights != "auto":
                raise ConfigError(f"{where}.class_weights='{weights}': use auto, null or a list of floats")
            if auto_weights is None:
                raise ValueError(
                    f"{where}.class_weights=auto needs the training set's median-frequency weights "
                    f"(segkit.data.stats); pass them to build_loss(cfg, auto_weights)"
                )
            weights = auto_weights
        if weights is not None:
            weights = [float(w) for w in weights]
            if len(weights) != cfg.data.num_classes:
                raise ConfigError(
                    f"{where}.class_weights has {len(weights)} values for data.num_classes="
                    f"{cfg.data.num_classes}; give one per class"
                )
            if term.name == "lovasz":
                raise ConfigError(f"{where}: the Lovasz loss takes no class weights; remove class_weights there")
        name = term.name if term.name not in terms else f"{term.name}{i}"
        terms[name] = (LOSSES[term.name](term, cfg.data.ignore_index, weights), float(term.weight))
    return SegLoss(terms, cfg.loss.aux_weight)
