"""Augmentation pipelines, built from the config with albumentations.

Images stay uint8 here; normalisation happens on the device (``normalize``), after the copy,
so a batch crosses the bus at a quarter of the float32 size. Masks always move with
nearest-neighbour and are padded with ``ignore_index``.
"""
from __future__ import annotations

import os
from typing import Optional, Sequence

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # no network check at import

import albumentations as A  # noqa: E402
import cv2  # noqa: E402
import torch  # noqa: E402


def train_transform(cfg) -> A.Compose:
    """Random scale, crop (padded with ignore_index in the mask), flip, photometric distortion."""
    crop_h, crop_w = cfg.crop_size
    lo, hi = cfg.scale_range
    steps = [
        A.RandomScale(scale_limit=(lo - 1.0, hi - 1.0), interpolation=cv2.INTER_LINEAR,
                      mask_interpolation=cv2.INTER_NEAREST, p=1.0),
        A.PadIfNeeded(crop_h, crop_w, position="top_left", border_mode=cv2.BORDER_CONSTANT, fill=0,
                      fill_mask=cfg.ignore_index),
        A.RandomCrop(crop_h, crop_w),
    ]
    if cfg.hflip:
        steps.append(A.HorizontalFlip(p=0.5))
    if cfg.photometric:
        steps.append(A.ColorJitter(brightness=0.125, contrast=0.5, saturation=0.5, hue=0.05, p=0.5))
    return A.Compose(steps)


def normalize(images: torch.Tensor, mean: Sequence[float], std: Sequence[float],
              dtype: Optional[torch.dtype] = None) -> torch.Tensor:
    """uint8 N x 3 x H x W (on any device) -> normalised float, ``(x/255 - mean) / std``."""
    dtype = dtype or torch.float32
    m = torch.tensor(mean, device=images.device, dtype=dtype).view(1, -1, 1, 1) * 255.0
    s = torch.tensor(std, device=images.device, dtype=dtype).view(1, -1, 1, 1) * 255.0
    return (images.to(dtype) - m) / s
