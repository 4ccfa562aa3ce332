"""Inference shared by training-time validation, ``tools/eval.py``, ``tools/infer.py`` and the Predictor.

``infer(model, images, ...)`` takes a normalised float batch and returns logits at its size:
whole-image (optionally resized first), sliding window, and test-time augmentation
(scales x flip), logits averaged.
"""
from __future__ import annotations

import math
from typing import Optional, Sequence, Tuple

import torch
import torch.nn.functional as F


def _logits(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    out = model(x)
    return out["out"] if isinstance(out, dict) else out


def slide_logits(model: torch.nn.Module, x: torch.Tensor, num_classes: int, crop: Tuple[int, int],
                 stride: Tuple[int, int], crops_per_batch: int = 4) -> torch.Tensor:
    """Logits from overlapping crops; overlaps averaged. At most ``crops_per_batch`` crops are
    in the model at once, so memory stays bounded however large the image."""
    n, _, h, w = x.shape
    ch, cw = min(crop[0], h), min(crop[1], w)
    sh, sw = stride
    rows = max(math.ceil((h - ch) / sh), 0) + 1
    cols = max(math.ceil((w - cw) / sw), 0) + 1
    boxes = []
    for r in range(rows):
        for c in range(cols):
            y0, x0 = min(r * sh, h - ch), min(c * sw, w - cw)
            boxes.append((y0, x0))
    logits = x.new_zeros((n, num_classes, h, w), dtype=torch.float32)
    count = x.new_zeros((1, 1, h, w), dtype=torch.float32)
    for i in range(0, len(boxes), crops_per_batch):
        chunk = boxes[i:i + crops_per_batch]
        batch = torch.cat([x[:, :, y0:y0 + ch, x0:x0 + cw] for y0, x0 in chunk], dim=0)
        out = _logits(model, batch).float()
        for j, (y0, x0) in enumerate(chunk):
            logits[:, :, y0:y0 + ch, x0:x0 + cw] += out[j * n:(j + 1) * n]
            count[:, :, y0:y0 + ch, x0:x0 + cw] += 1
    return logits / count


@torch.no_grad()
def infer(model: torch.nn.Module, images: torch.Tensor, num_classes: int, mode: str = "whole",
          crop: Sequence[int] = (512, 512), stride: Sequence[int] = (341, 341), scales: Sequence[float] = (1.0,),
          flip: bool = False, resize: Optional[Sequence[int]] = None) -> torch.Tensor:
    """Float logits N x C x H x W at the size of ``images`` (normalised N x 3 x H x W)."""
    if mode not in ("whole", "slide"):
        raise ValueError(f"unknown inference mode '{mode}'; choose whole or slide (eval.mode)")
    size = images.shape[-2:]
    total = None
    for scale in scales:
        target = tuple(resize) if resize else size
        target = (max(1, round(target[0] * scale)), max(1, round(target[1] * scale)))
        x = images if target == tuple(size) else F.interpolate(images, size=target, mode="bilinear",
                                                               align_corners=False)
        for flipped in ((False, True) if flip else (False,)):
            xi = x.flip(-1) if flipped else x
            if mode == "slide":
                out = slide_logits(model, xi, num_classes, tuple(crop), tuple(stride))
            else:
                out = _logits(model, xi).float()
            if flipped:
                out = out.flip(-1)
            if out.shape[-2:] != size:
                out = F.interpolate(out, size=size, mode="bilinear", align_corners=False)
            total = out if total is None else total + out
    return total / (len(scales) * (2 if flip else 1))
