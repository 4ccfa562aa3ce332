"""Data: readers per on-disk format, albumentations pipelines, loaders, the built-in sample set."""
from __future__ import annotations

import random
from typing import Dict, List

import numpy as np
import torch
from torch.utils.data import DataLoader, DistributedSampler, Sampler

from ..faults import ignore_stop_signals
from .datasets import SegDataset, default_palette
from .io import DataError, read_image, read_mask
from .readers import READERS, build_dataset
from .normalize import Normalizer, normalize

__all__ = ["DataError", "READERS", "SegDataset", "ShardSampler", "build_dataset", "build_loader", "default_palette",
           "normalize", "Normalizer", "pad_collate", "read_image", "read_mask", "train_transform"]


def __getattr__(name: str):
    """``train_transform`` on first use: albumentations loads only where training needs it."""
    if name == "train_transform":
        from .transforms import train_transform

        return train_transform
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _worker_init(worker_id: int) -> None:
    import cv2

    cv2.setNumThreads(0)  # no OpenCV thread pool inside a worker: the workers already fill the cores
    ignore_stop_signals()
    info = torch.utils.data.get_worker_info()
    seed = info.seed % 2**32  # distinct per worker, and fixed by the loader's generator
    np.random.seed(seed)
    random.seed(seed)
    _seed_transform(info.dataset, seed)


def _seed_transform(dataset, seed: int) -> None:
    """albumentations draws from its own generator, which a forked worker copies from the parent:
    unseeded, every worker would repeat the same augmentations."""
    transform = getattr(dataset, "transform", None)
    if hasattr(transform, "set_random_seed"):
        transform.set_random_seed(seed)


class pad_collate:
    """Stack samples of different sizes: images padded with 0, masks with ``ignore_index``,
    so padding never counts in the loss or the metric."""

    def __init__(self, ignore_index: int):
        self.ignore_index = ignore_index

    def __call__(self, batch: List[Dict]) -> Dict[str, torch.Tensor]:
        index = torch.tensor([b["index"] for b in batch])
        if len({tuple(b["image"].shape) for b in batch}) == 1:  # training crops: nothing to pad
            return {"image": torch.stack([b["image"] for b in batch]),
                    "mask": torch.stack([b["mask"] for b in batch]), "index": index}
        h = max(b["image"].shape[1] for b in batch)
        w = max(b["image"].shape[2] for b in batch)
        images = torch.zeros(len(batch), 3, h, w, dtype=torch.uint8)
        masks = torch.full((len(batch), h, w), self.ignore_index, dtype=torch.int64)
        for i, b in enumerate(batch):
            _, bh, bw = b["image"].shape
            images[i, :, :bh, :bw] = b["image"]
            masks[i, :bh, :bw] = b["mask"]
        return {"image": images, "mask": masks, "index": index}


class ShardSampler(Sampler):
    """Evaluation under DDP: rank r takes samples r, r + world, ... Unlike DistributedSampler it never
    pads with repeats, so the all-reduced confusion matrix counts every image exactly once."""

    def __init__(self, dataset, num_replicas: int | None = None, rank: int | None = None):
        import torch.distributed as dist

        self.num_replicas = num_replicas if num_replicas is not None else dist.get_world_size()
        self.rank = rank if rank is not None else dist.get_rank()
        self.indices = list(range(self.rank, len(dataset), self.num_replicas))

    def __iter__(self):
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


def build_loader(dataset: SegDataset, batch_size: int, train: bool, num_workers: int = 0,
                 distributed: bool = False, seed: int = 0, pin_memory: bool = False) -> DataLoader:
    """Training: shuffled (per-rank under DDP), last partial batch dropped, augmentation draws seeded
    from ``seed`` (and the rank, and the worker). Evaluation: in order, and under DDP each image on
    exactly one rank. Workers persist across epochs, and run OpenCV single-threaded."""
    sampler, rank = None, 0
    if distributed:
        import torch.distributed as dist

        rank = dist.get_rank()
        sampler = DistributedSampler(dataset, shuffle=True, seed=seed) if train else ShardSampler(dataset)
    if train and num_workers == 0:
        _seed_transform(dataset, seed + rank)
    generator = torch.Generator().manual_seed(seed + rank)  # the shuffle under DDP is the sampler's, same on all ranks
    return DataLoader(dataset, batch_size=batch_size, shuffle=train and sampler is None, sampler=sampler,
                      num_workers=num_workers, pin_memory=pin_memory, drop_last=train,
                      persistent_workers=num_workers > 0, worker_init_fn=_worker_init,
                      collate_fn=pad_collate(dataset.ignore_index), generator=generator)
