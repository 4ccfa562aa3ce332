"""Optimizer and learning-rate schedule, both functions of the config (and the LR of the iteration).

The LR is a pure function of the iteration, so resuming needs no scheduler object: the
checkpoint's iteration gives the same LR as an uninterrupted run.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Tuple

import torch

from segkit.config import ConfigError
from segkit.training.budget import parse_duration


def param_groups(model: torch.nn.Module, t) -> List[Dict]:
    """Groups by (LR multiplier, weight decay): the backbone gets ``backbone_lr_mult``; with
    ``no_decay_norm_bias`` the 1-D parameters (norm weights, biases) get no weight decay."""
    groups: Dict[Tuple[float, bool], list] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        lr_mult = float(t.backbone_lr_mult) if name.startswith("backbone.") else 1.0
        no_decay = bool(t.no_decay_norm_bias) and p.ndim <= 1
        groups.setdefault((lr_mult, no_decay), []).append(p)
    return [
        {"params": ps, "lr": t.lr * m, "lr_mult": m, "weight_decay": 0.0 if nd else t.weight_decay}
        for (m, nd), ps in groups.items()
    ]


def fused_supported(device: torch.device) -> bool:
    """Whether torch has fused SGD/AdamW kernels for ``device``: one pass over all parameters instead of a
    loop of small ops per parameter (several times faster on a CPU too: docs/BENCHMARKS.md, "Measured by
    hand"; ``bench/train_step_options.py`` times it in a step)."""
    try:
        from torch.utils._foreach_utils import _get_fused_kernels_supported_devices
    except ImportError:  # older torch: fused kernels on CUDA only
        return device.type == "cuda"
    return device.type in _get_fused_kernels_supported_devices()


def build_optimizer(cfg, model: torch.nn.Module) -> torch.optim.Optimizer:
    t = cfg.train
    params = param_groups(model, t)
    if not params:
        raise ConfigError("no trainable parameters: every parameter is frozen (model.backbone.frozen_stages?)")
    fast = {"fused": True} if fused_supported(params[0]["params"][0].device) else {}
    if t.optimizer == "sgd":
        return torch.optim.SGD(params, lr=t.lr, momentum=t.momentum, weight_decay=t.weight_decay, **fast)
    if t.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=t.lr, weight_decay=t.weight_decay, **fast)
    raise ConfigError(f"unknown optimizer '{t.optimizer}' (train.optimizer); choose sgd or adamw")


def lr_factor(it: int, t, total: Optional[int] = None) -> float:
    """LR / base LR at 0-based iteration ``it``: poly decay from 1 to ``min_lr / lr`` over ``total``
    (default ``iterations``), times a linear warm-up from ``warmup_ratio`` to 1 over ``warmup_iters``."""
    total = total or t.iterations
    floor = min(t.min_lr / t.lr, 1.0) if t.lr > 0 else 0.0
    factor = floor + (1 - floor) * (1 - min(it, total) / total) ** t.poly_power
    if it < t.warmup_iters:
        factor *= t.warmup_ratio + (1 - t.warmup_ratio) * it / t.warmup_iters
    return factor


def set_lr(optimizer: torch.optim.Optimizer, it: int, t, total: Optional[int] = None) -> float:
    """Set every group's LR for iteration ``it`` of ``total``; returns the base LR (multiplier 1)."""
    base = t.lr * lr_factor(it, t, total)
    for group in optimizer.param_groups:
        group["lr"] = base * group["lr_mult"]
    return base


def check_train_config(t) -> None:
    """Values no schedule can run with; named with their key."""
    problems = [
        (t.iterations >= 1, "train.iterations must be >= 1"),
        (t.batch_size >= 1, "train.batch_size must be >= 1"),
        (t.accumulate >= 1, "train.accumulate must be >= 1"),
        (t.log_interval >= 1, "train.log_interval must be >= 1"),
        (t.val_interval >= 1, "train.val_interval must be >= 1"),
        (t.checkpoint_interval >= 1, "train.checkpoint_interval must be >= 1"),
        (t.warmup_iters >= 0 and 0 <= t.warmup_ratio <= 1, "train.warmup_iters >= 0 and 0 <= warmup_ratio <= 1"),
        (t.keep_last >= 0, "train.keep_last must be >= 0"),
        (t.clip_grad is None or t.clip_grad > 0, "train.clip_grad must be > 0 or null"),
        (t.progress in ("auto", "bar", "log"), "train.progress must be auto, bar or log"),
        (t.dist_timeout > 0, "train.dist_timeout must be > 0 (seconds)"),
    ]
    if t.time_budget is not None:
        parse_duration(t.time_budget)  # raises with the key's name
    bad = [msg for ok, msg in problems if not ok]
    if bad:
        raise ConfigError("; ".join(bad))
