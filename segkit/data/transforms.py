"""Augmentation pipelines, built from the config with albumentations.

8-bit images stay uint8 here; normalisation happens on the device (``normalize``), after the copy,
so a batch crosses the bus at a quarter of the float32 size. Deeper images arrive as float32 in 0..1
units (``data.value_range``, ``normalize.to_unit``), which every step here handles. Masks always move with
nearest-neighbour and are padded with ``ignore_index``. Evaluation data sets get no transform:
an evaluation resize is done at inference (``eval.resize``), and the metric sees the mask as stored.
"""

from __future__ import annotations

import os
from typing import List, Optional

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # no network check at import

import albumentations as A  # noqa: E402
import cv2  # noqa: E402


def random_scale(cfg) -> A.BasicTransform:
    """Scale by a random factor in ``scale_range``: of the image itself (mmsegmentation's ratio_range), or
    with ``base_size`` a random short side in ``scale_range x base_size`` (torchvision's RandomResize)."""
    lo, hi = cfg.scale_range
    if cfg.base_size:
        sides = list(range(round(lo * cfg.base_size), round(hi * cfg.base_size) + 1))
        return A.SmallestMaxSize(
            max_size=sides, interpolation=cv2.INTER_LINEAR, mask_interpolation=cv2.INTER_NEAREST_EXACT, p=1.0
        )
    return A.RandomScale(
        scale_limit=(lo - 1.0, hi - 1.0),
        interpolation=cv2.INTER_LINEAR,
        mask_interpolation=cv2.INTER_NEAREST_EXACT,
        p=1.0,
    )


def photometric_distortion() -> List[A.BasicTransform]:
    """mmsegmentation's PhotoMetricDistortion, step by step with albumentations, each step with p=0.5:
    brightness +-32, then contrast x[0.5, 1.5] either before or after (at random) saturation x[0.5, 1.5]
    and hue +-18 (OpenCV's 0..180 scale). One difference: no albumentations transform scales HSV
    saturation, so saturation blends with the grey image (torchvision's definition) over the same range."""

    def contrast():
        return A.RandomBrightnessContrast(brightness_limit=(0.0, 0.0), contrast_limit=(-0.5, 0.5), p=0.5)

    def saturation_hue():
        return [
            A.ColorJitter(brightness=(1.0, 1.0), contrast=(1.0, 1.0), saturation=(0.5, 1.5), hue=(0.0, 0.0), p=0.5),
            A.HueSaturationValue(hue_shift_limit=(-18, 18), sat_shift_limit=(0, 0), val_shift_limit=(0, 0), p=0.5),
        ]

    # brightness_by_max: the shift is a fraction of 255, so +-32/255 adds +-32 like mmsegmentation's delta
    brightness = A.RandomBrightnessContrast(
        brightness_limit=(-32 / 255, 32 / 255), contrast_limit=(0.0, 0.0), brightness_by_max=True, p=0.5
    )
    return [
        brightness,
        A.OneOf(
            [
                A.Sequential([contrast(), *saturation_hue()], p=1.0),
                A.Sequential([*saturation_hue(), contrast()], p=1.0),
            ],
            p=1.0,
        ),
    ]


def photometric_applies(cfg) -> bool:
    """Brightness, contrast, saturation and hue assume RGB: with data.channels != 3 they are left out."""
    return bool(cfg.photometric) and cfg.channels == 3


def train_transform(cfg, seed: Optional[int] = None) -> A.Compose:
    """Random scale, crop (padded with ignore_index in the mask), flip, photometric distortion (RGB only).
    ``seed`` fixes the draws in this process; the training loader reseeds it per sample (``build_train_loader``)."""
    crop_h, crop_w = cfg.crop_size
    steps = [
        random_scale(cfg),
        A.PadIfNeeded(
            crop_h, crop_w, position="top_left", border_mode=cv2.BORDER_CONSTANT, fill=0, fill_mask=cfg.ignore_index
        ),
        A.RandomCrop(crop_h, crop_w),
    ]
    if cfg.hflip:
        steps.append(A.HorizontalFlip(p=0.5))
    if photometric_applies(cfg):
        steps.extend(photometric_distortion())
    return A.Compose(steps, seed=seed)
