"""Inference shared by training-time validation, ``tools/eval.py``, ``tools/infer.py`` and the Predictor.

``infer(model, images, ...)`` takes a normalised float batch and returns float logits at its size:

- ``whole``: the image in one pass, optionally resized to ``resize`` (H, W) first;
- ``slide``: overlapping ``crop`` windows every ``stride`` pixels, overlaps averaged (mmsegmentation's
  slide inference). Only ``crop_batch`` windows are in the model at once, and they are the only thing
  moved to the model's device: the image and the logits may stay on the CPU, so an image far larger
  than the accelerator's memory still goes through;
- test-time augmentation on top of either: every scale in ``scales``, each also mirrored if ``flip``;
  the logits of all passes, brought back to the image's size, are averaged.
"""

from __future__ import annotations

import math
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F

from segkit.config.schema import EVAL_MODES
from segkit.errors import ConfigError

MODES = EVAL_MODES


def _logits(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    out = model(x)
    return out["out"] if isinstance(out, dict) else out


def model_device(model: torch.nn.Module) -> Optional[torch.device]:
    param = next(model.parameters(), None)
    return param.device if param is not None else None


def windows(height: int, width: int, crop: Sequence[int], stride: Sequence[int]) -> List[Tuple[int, int, int, int]]:
    """(y0, x0, h, w) of the crops covering a ``height`` x ``width`` image; the last row and column
    are shifted back to end at the border, so every crop has the same size and nothing is padded."""
    ch, cw = min(int(crop[0]), height), min(int(crop[1]), width)
    sh, sw = int(stride[0]), int(stride[1])
    if sh <= 0 or sw <= 0 or sh > crop[0] or sw > crop[1]:
        raise ConfigError(
            f"slide stride {tuple(stride)} must be positive and no larger than the crop {tuple(crop)} "
            f"(eval.stride, eval.crop_size), or some pixels would never be seen"
        )
    rows = max(math.ceil((height - ch) / sh), 0) + 1
    cols = max(math.ceil((width - cw) / sw), 0) + 1
    return [(min(r * sh, height - ch), min(c * sw, width - cw), ch, cw) for r in range(rows) for c in range(cols)]


def slide_logits(
    model: torch.nn.Module,
    x: torch.Tensor,
    num_classes: int,
    crop: Sequence[int],
    stride: Sequence[int],
    crop_batch: int = 4,
) -> torch.Tensor:
    """Logits of ``x`` (N x 3 x H x W) from overlapping crops, overlaps averaged, on ``x``'s device.

    At most ``max(crop_batch, N)`` crops go through the model at once (``crop_batch // N`` windows
    of all N images), on the model's device."""
    n, _, h, w = x.shape
    device = model_device(model) or x.device
    boxes = windows(h, w, crop, stride)
    logits = torch.zeros((n, num_classes, h, w), dtype=torch.float32, device=x.device)
    count = torch.zeros((1, 1, h, w), dtype=torch.float32, device=x.device)
    per_step = max(1, crop_batch // n)
    for i in range(0, len(boxes), per_step):
        chunk = boxes[i : i + per_step]
        batch = torch.cat([x[:, :, y0 : y0 + ch, x0 : x0 + cw] for y0, x0, ch, cw in chunk]).to(device)
        out = _logits(model, batch).float().to(x.device)
        del batch  # only one batch of crops is alive at a time
        for j, (y0, x0, ch, cw) in enumerate(chunk):
            logits[:, :, y0 : y0 + ch, x0 : x0 + cw] += out[j * n : (j + 1) * n]
            count[:, :, y0 : y0 + ch, x0 : x0 + cw] += 1
    return logits / count


@torch.no_grad()
def infer(
    model: torch.nn.Module,
    images: torch.Tensor,
    num_classes: int,
    mode: str = "whole",
    crop: Sequence[int] = (512, 512),
    stride: Sequence[int] = (341, 341),
    scales: Sequence[float] = (1.0,),
    flip: bool = False,
    resize: Optional[Sequence[int]] = None,
    crop_batch: int = 4,
) -> torch.Tensor:
    """Float logits N x C x H x W at the size of ``images`` (normalised N x 3 x H x W), on their device."""
    if mode not in MODES:
        raise ConfigError(f"unknown inference mode '{mode}'; choose whole or slide (eval.mode)")
    if not scales:
        raise ConfigError("eval.scales is empty; use [1.0] for no multi-scale test-time augmentation")
    size = tuple(images.shape[-2:])
    base = tuple(int(v) for v in resize) if resize else size
    device = model_device(model) or images.device
    total = None
    for scale in scales:
        target = (max(1, round(base[0] * scale)), max(1, round(base[1] * scale)))
        x = images if target == size else F.interpolate(images, size=target, mode="bilinear", align_corners=False)
        for flipped in (False, True) if flip else (False,):
            xi = x.flip(-1) if flipped else x
            if mode == "slide":
                out = slide_logits(model, xi, num_classes, crop, stride, crop_batch)
            else:
                out = _logits(model, xi.to(device)).float().to(images.device)
            if flipped:
                out = out.flip(-1)
            if tuple(out.shape[-2:]) != size:
                out = F.interpolate(out, size=size, mode="bilinear", align_corners=False)
            total = out if total is None else total + out
    return total / (len(scales) * (2 if flip else 1))
