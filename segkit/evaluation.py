"""The one evaluation path: training-time validation and ``tools/eval.py`` both call ``evaluate``,
so they print the same mIoU for the same checkpoint and data."""
from __future__ import annotations

from contextlib import nullcontext
from typing import Any, Dict, Optional

import torch

from .data import normalize
from .inference import infer
from .metrics import ConfusionMatrix


def autocast(device: torch.device, dtype: Optional[torch.dtype]):
    return torch.autocast(device.type, dtype=dtype) if dtype is not None else nullcontext()


@torch.no_grad()
def evaluate(model: torch.nn.Module, loader, cfg, device: torch.device,
             dtype: Optional[torch.dtype] = None) -> Dict[str, Any]:
    """Metrics of ``model`` on ``loader`` with the inference settings of ``cfg.eval``."""
    was_training = model.training
    model.eval()
    cm = ConfusionMatrix(cfg.data.num_classes, cfg.data.ignore_index, device)
    for batch in loader:
        images = normalize(batch["image"].to(device, non_blocking=True), cfg.data.mean, cfg.data.std)
        if cfg.train.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        with autocast(device, dtype):
            logits = infer(model, images, cfg.data.num_classes, mode=cfg.eval.mode, crop=cfg.eval.crop_size,
                           stride=cfg.eval.stride, scales=cfg.eval.scales, flip=cfg.eval.flip, resize=cfg.eval.resize)
        cm.update(logits.argmax(1), batch["mask"].to(device, non_blocking=True))
    cm.all_reduce()
    model.train(was_training)
    return cm.compute()


