"""Losses live outside the model: ``build_loss(cfg)`` gives ``loss(outputs, target) -> (total, parts)``."""
from __future__ import annotations

from typing import Dict, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F


class CrossEntropy(nn.Module):
    def __init__(self, ignore_index: int, class_weights: Optional[Sequence[float]] = None):
        super().__init__()
        self.ignore_index = ignore_index
        self.register_buffer("weight", torch.tensor(class_weights, dtype=torch.float32) if class_weights else None)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits.float(), target, weight=self.weight, ignore_index=self.ignore_index)


class SegLoss(nn.Module):
    """Weighted sum of terms on ``out``, plus ``aux_weight`` times the same on ``aux``."""

    def __init__(self, terms: Dict[str, Tuple[nn.Module, float]], aux_weight: float = 0.4):
        super().__init__()
        self.terms = nn.ModuleDict({name: module for name, (module, _) in terms.items()})
        self.weights = {name: w for name, (_, w) in terms.items()}
        self.aux_weight = aux_weight

    def _sum(self, logits: torch.Tensor, target: torch.Tensor, parts: Dict[str, torch.Tensor], prefix: str):
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


def build_loss(cfg, class_weights: Optional[Sequence[float]] = None) -> SegLoss:
    """From the full config: ``cfg.loss`` and ``cfg.data.ignore_index``."""
    terms = {}
    for term in cfg.loss.terms:
        if term.name != "ce":
            raise ValueError(f"unknown loss '{term.name}' (loss.terms[].name); choose one of ce")
        weights = list(term.class_weights) if isinstance(term.class_weights, (list, tuple)) else class_weights
        terms[term.name] = (CrossEntropy(cfg.data.ignore_index, weights), term.weight)
    return SegLoss(terms, cfg.loss.aux_weight)
