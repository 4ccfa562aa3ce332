"""Data: readers per on-disk format, albumentations pipelines, the training and evaluation loaders, the sample set."""

from __future__ import annotations

from .datasets import SegDataset, default_palette
from .io import DataError, read_image, read_mask
from .loaders import ShardSampler, build_eval_loader, build_train_loader, pad_collate
from .normalize import Normalizer, normalize
from .readers import FORMATS, DataFormat, build_dataset, format_classes

__all__ = [
    "DataError",
    "DataFormat",
    "FORMATS",
    "SegDataset",
    "ShardSampler",
    "build_dataset",
    "build_eval_loader",
    "build_train_loader",
    "default_palette",
    "format_classes",
    "normalize",
    "Normalizer",
    "pad_collate",
    "read_image",
    "read_mask",
    "train_transform",
]


def __getattr__(name: str):
    """``train_transform`` on first use: albumentations loads only where training needs it."""
    if name == "train_transform":
        from .transforms import train_transform

        return train_transform
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
