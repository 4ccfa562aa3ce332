"""The one evaluation path: training-time validation and ``tools/eval.py`` both call ``evaluate``,
so they print the same mIoU for the same checkpoint and data."""
from __future__ import annotations

from contextlib import nullcontext
from typing import Any, Callable, Dict, Optional

import torch

from .data import normalize
from .inference import infer
from .metrics import ConfusionMatrix


def autocast(device: torch.device, dtype: Optional[torch.dtype]):
    return torch.autocast(device.type, dtype=dtype) if dtype is not None else nullcontext()


def infer_settings(cfg) -> Dict[str, Any]:
    """The keyword arguments of ``infer`` that ``cfg.eval`` sets (mode, slide window, TTA, resize)."""
    e = cfg.eval
    return {"mode": e.mode, "crop": list(e.crop_size), "stride": list(e.stride), "scales": list(e.scales),
            "flip": bool(e.flip), "resize": list(e.resize) if e.resize else None}


@torch.no_grad()
def evaluate(model: torch.nn.Module, loader, cfg, device: torch.device, dtype: Optional[torch.dtype] = None,
             on_batch: Optional[Callable[[Dict[str, torch.Tensor], torch.Tensor], None]] = None) -> Dict[str, Any]:
    """Metrics of ``model`` on ``loader`` with the inference settings of ``cfg.eval``.

    ``on_batch(batch, pred)`` is called after each batch with the loader's batch (uint8 images,
    masks, indices) and the predicted class ids N x H x W, e.g. to save visualisations.
    With ``eval.batch_size`` > 1 on images of different sizes, the zero padding of ``pad_collate``
    is inside the model's view (and rescaled with ``eval.resize``); batch size 1 is exact.
    """
    was_training = model.training
    model.eval()
    cm = ConfusionMatrix(cfg.data.num_classes, cfg.data.ignore_index, device)
    settings = infer_settings(cfg)
    for batch in loader:
        images = normalize(batch["image"].to(device, non_blocking=True), cfg.data.mean, cfg.data.std)
        if cfg.train.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        with autocast(device, dtype):
            logits = infer(model, images, cfg.data.num_classes, **settings)
        pred = logits.argmax(1)
        cm.update(pred, batch["mask"].to(device, non_blocking=True))
        if on_batch is not None:
            on_batch(batch, pred)
    cm.all_reduce()
    model.train(was_training)
    return cm.compute()
