"""The two loaders, one for training and one for evaluation.

Training: the data stream is a pure function of (seed, position), so a resumed run sees exactly
the batches and augmentations an uninterrupted one would, whatever the number of workers.

- ``TrainSampler`` is endless: epoch e is a permutation drawn from (seed, e), sharded over the
  processes, and the stream can start at any batch. One DataLoader iterator serves the whole
  run, so workers never stop and restart at epoch boundaries.
- Every sample carries its own augmentation seed (drawn with the permutation), and
  ``SeededSamples`` hands it to the albumentations pipeline before the sample is made. Compose
  otherwise seeds itself from the OS, and forked workers would all share one stream.

Evaluation: in order, persistent workers, and under DDP each image on exactly one rank (``ShardSampler``).
"""

from __future__ import annotations

import os
import random
import signal
import threading
from typing import Dict, Iterator, List, Tuple

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from .io import DataError

# Slurm (scancel, time limits), systemd and Kubernetes signal every process of the job at once
STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGUSR1") if hasattr(signal, name))


def ignore_stop_signals() -> None:
    """For data loader workers: the main process saves a checkpoint and then stops them itself; a
    worker that died first would break the batch it is making and the run with it. A SIGTERM from
    the main process itself (the loader ending a worker that did not exit when asked) is obeyed."""
    for sig in STOP_SIGNALS:
        if sig != signal.SIGTERM:
            signal.signal(sig, signal.SIG_IGN)
    if not hasattr(signal, "sigwaitinfo"):  # no sender to tell apart (Windows): ignore it too
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        return
    # blocked in this thread before any other starts, so every thread inherits it; one thread reads it
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    threading.Thread(target=_obey_sigterm_from, args=(os.getppid(),), name="segkit-sigterm", daemon=True).start()


def _obey_sigterm_from(parent: int) -> None:
    while True:
        if signal.sigwaitinfo({signal.SIGTERM}).si_pid == parent:
            os._exit(128 + signal.SIGTERM)


class TrainSampler(Sampler):
    """Yields ``(index, augmentation_seed)`` forever, from batch ``start_batch`` of this process on.

    Each epoch drops the tail that does not fill a batch on every process, as ``drop_last`` would.
    """

    def __init__(
        self, size: int, batch_size: int, seed: int = 0, rank: int = 0, world_size: int = 1, start_batch: int = 0
    ):
        self.size, self.batch_size, self.seed = size, batch_size, seed
        self.rank, self.world_size, self.start_batch = rank, world_size, start_batch
        self.batches_per_epoch = size // world_size // batch_size
        if self.batches_per_epoch == 0:
            raise DataError(
                f"the training split has {size} images, fewer than one batch on each process "
                f"(train.batch_size={batch_size} x {world_size} processes). Add images or lower "
                f"train.batch_size."
            )

    def epoch(self, epoch: int) -> Tuple[np.ndarray, np.ndarray]:
        """This process's (indices, seeds) of ``epoch``, in order."""
        rng = np.random.default_rng([self.seed, epoch])
        order = rng.permutation(self.size)
        seeds = rng.integers(0, 2**62, self.size)
        used = self.batches_per_epoch * self.batch_size * self.world_size
        return order[:used][self.rank :: self.world_size], seeds[:used][self.rank :: self.world_size]

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


class pad_collate:
    """Stack samples of different sizes: images padded with 0, masks with ``ignore_index``,
    so padding never counts in the loss or the metric. ``size`` (N x 2) holds each sample's own
    (H, W): the decoded, EXIF-oriented size, which the file's header size is not for orientations 5-8."""

    def __init__(self, ignore_index: int):
        self.ignore_index = ignore_index

    def __call__(self, batch: List[Dict]) -> Dict[str, torch.Tensor]:
        index = torch.tensor([b["index"] for b in batch])
        dtypes = sorted({str(b["image"].dtype).replace("torch.", "") for b in batch})
        if len(dtypes) > 1:  # 8-bit and deeper files mixed, with no data.value_range to map them alike
            raise DataError(
                f"the images of one batch have different pixel types ({', '.join(dtypes)}): the data set mixes 8-bit "
                f"and deeper files; set data.value_range=[lo,hi] (segkit check prints the range) so every image "
                f"is mapped alike, or convert the files to one bit depth"
            )
        size = torch.tensor([tuple(b["image"].shape[1:]) for b in batch])
        if len({tuple(b["image"].shape) for b in batch}) == 1:  # training crops: nothing to pad
            return {
                "image": torch.stack([b["image"] for b in batch]),
                "mask": torch.stack([b["mask"] for b in batch]),
                "index": index,
                "size": size,
            }
        h = max(b["image"].shape[1] for b in batch)
        w = max(b["image"].shape[2] for b in batch)
        first = batch[0]["image"]
        images = torch.zeros(len(batch), first.shape[0], h, w, dtype=first.dtype)
        masks = torch.full((len(batch), h, w), self.ignore_index, dtype=torch.int64)
        for i, b in enumerate(batch):
            _, bh, bw = b["image"].shape
            images[i, :, :bh, :bw] = b["image"]
            masks[i, :bh, :bw] = b["mask"]
        return {"image": images, "mask": masks, "index": index, "size": size}


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


def _opencv_single_threaded(worker_id: int) -> None:
    import cv2

    cv2.setNumThreads(0)  # workers already run in parallel


def _worker_init(worker_id: int) -> None:
    """Training, validation and scan workers alike: a stop signal may come during any of them."""
    _opencv_single_threaded(worker_id)
    ignore_stop_signals()  # Ctrl-C and scancel reach the whole process group


def _as_is(item):
    return item


def build_scan_loader(dataset: Dataset, num_workers: int = 0) -> DataLoader:
    """One item at a time, as the dataset returns it, for the passes that read every file (class
    weights, ``segkit check``); they run inside training set-up too, so workers ignore stop signals."""
    return DataLoader(dataset, batch_size=None, num_workers=num_workers, collate_fn=_as_is, worker_init_fn=_worker_init)


def build_train_loader(
    dataset,
    batch_size: int,
    num_workers: int,
    seed: int,
    rank: int = 0,
    world_size: int = 1,
    start_batch: int = 0,
    pin_memory: bool = False,
) -> DataLoader:
    """The loader ``train()`` uses: endless, from batch ``start_batch`` of this process on, last partial batch dropped."""
    sampler = TrainSampler(len(dataset), batch_size, seed, rank, world_size, start_batch)
    return DataLoader(
        SeededSamples(dataset),
        batch_size=batch_size,
        sampler=sampler,
        num_workers=num_workers,
        pin_memory=pin_memory,
        drop_last=True,
        worker_init_fn=_worker_init,
        collate_fn=pad_collate(dataset.ignore_index),
        generator=torch.Generator().manual_seed(seed),  # leaves the global RNG alone
        persistent_workers=False,
        prefetch_factor=4 if num_workers > 0 else None,
    )


def build_eval_loader(
    dataset, batch_size: int, num_workers: int = 0, distributed: bool = False, pin_memory: bool = False
) -> DataLoader:
    """In order, every image once (under DDP: on exactly one rank), samples of any size padded by the collate."""
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=False,
        sampler=ShardSampler(dataset) if distributed else None,
        num_workers=num_workers,
        pin_memory=pin_memory,
        persistent_workers=num_workers > 0,
        worker_init_fn=_worker_init,
        collate_fn=pad_collate(dataset.ignore_index),
    )
