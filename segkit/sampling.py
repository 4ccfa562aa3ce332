"""The training data stream, a pure function of (seed, position), so a resumed run sees exactly
the batches and augmentations an uninterrupted one would, whatever the number of workers.

- ``TrainSampler`` is endless: epoch e is a permutation drawn from (seed, e), sharded over the
  processes, and the stream can start at any batch. One DataLoader iterator serves the whole
  run, so workers never stop and restart at epoch boundaries.
- Every sample carries its own augmentation seed (drawn with the permutation), and
  ``SeededSamples`` hands it to the albumentations pipeline before the sample is made. Compose
  otherwise seeds itself from the OS, and forked workers would all share one stream.
"""
from __future__ import annotations

import random
from typing import Iterator, Tuple

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from .data import DataError, pad_collate
from .faults import ignore_stop_signals


class TrainSampler(Sampler):
    """Yields ``(index, augmentation_seed)`` forever, from batch ``start_batch`` of this process on.

    Each epoch drops the tail that does not fill a batch on every process, as ``drop_last`` would.
    """

    def __init__(self, size: int, batch_size: int, seed: int = 0, rank: int = 0, world_size: int = 1,
                 start_batch: int = 0):
        self.size, self.batch_size, self.seed = size, batch_size, seed
        self.rank, self.world_size, self.start_batch = rank, world_size, start_batch
        self.batches_per_epoch = size // world_size // batch_size
        if self.batches_per_epoch == 0:
            raise DataError(f"the training split has {size} images, fewer than one batch on each process "
                            f"(train.batch_size={batch_size} x {world_size} processes). Add images or lower "
                            f"train.batch_size.")

    def epoch(self, epoch: int) -> Tuple[np.ndarray, np.ndarray]:
        """This process's (indices, seeds) of ``epoch``, in order."""
        rng = np.random.default_rng([self.seed, epoch])
        order = rng.permutation(self.size)
        seeds = rng.integers(0, 2**62, self.size)
        used = self.batches_per_epoch * self.batch_size * self.world_size
        return order[:used][self.rank::self.world_size], seeds[:used][self.rank::self.world_size]

    def __iter__(self) -> Iterator[Tuple[int, int]]:
        epoch, batch = divmod(self.start_batch, self.batches_per_epoch)
        while True:
            indices, seeds = self.epoch(epoch)
            for i in range(batch * self.batch_size, len(indices)):
                yield int(indices[i]), int(seeds[i])
            epoch, batch = epoch + 1, 0


class SeededSamples(Dataset):
    """``dataset[(index, seed)]``: the sample ``index`` with its augmentation drawn from ``seed``."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: Tuple[int, int]):
        index, seed = key
        transform = self.dataset.transform
        if transform is not None and hasattr(transform, "set_random_state"):
            # one generator shared by all the steps: per-step seeding would correlate them
            transform.set_random_state(np.random.default_rng(seed), random.Random(seed))
        return self.dataset[index]


def _worker_init(worker_id: int) -> None:
    import cv2

    cv2.setNumThreads(0)  # workers already run in parallel
    ignore_stop_signals()  # Ctrl-C and scancel reach the whole process group


def build_train_loader(dataset, batch_size: int, num_workers: int, seed: int, rank: int = 0,
                       world_size: int = 1, start_batch: int = 0, pin_memory: bool = False) -> DataLoader:
    sampler = TrainSampler(len(dataset), batch_size, seed, rank, world_size, start_batch)
    return DataLoader(SeededSamples(dataset), batch_size=batch_size, sampler=sampler, num_workers=num_workers,
                      pin_memory=pin_memory, drop_last=True, worker_init_fn=_worker_init,
                      collate_fn=pad_collate(dataset.ignore_index),
                      generator=torch.Generator().manual_seed(seed),  # leaves the global RNG alone
                      persistent_workers=False, prefetch_factor=4 if num_workers > 0 else None)
