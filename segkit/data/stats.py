"""Label statistics: per-class pixel counts and median-frequency class weights (Eigen & Fergus, SegNet).

Everything derives from one pass over the masks (no images are read): a histogram of the raw
values of each mask, which the data set's lookup table turns into class counts.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import List, Sequence, Tuple

import numpy as np
from torch.utils.data import Dataset

from .loaders import build_scan_loader

Histogram = Tuple[np.ndarray, np.ndarray]  # (raw values present, pixels of each)
CACHE_FILE = "class_weights.json"  # in the work dir: `class_weights: auto` reads every mask once per split


def histogram(raw: np.ndarray) -> Histogram:
    if raw.size and (raw.min() < 0 or raw.max() >= 1 << 16):  # odd values: no huge bincount
        return np.unique(raw, return_counts=True)
    counts = np.bincount(raw.ravel())
    values = np.flatnonzero(counts)
    return values, counts[values]


class _RawHistograms(Dataset):
    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> Histogram:
        return histogram(self.dataset.raw_mask(index))


def raw_histograms(dataset, num_workers: int = 0) -> List[Histogram]:
    """The raw-value histogram of every mask, in order; ``num_workers`` processes read the masks."""
    return list(build_scan_loader(_RawHistograms(dataset), num_workers))


def class_statistics(
    dataset, histograms: Sequence[Histogram] | None = None, num_workers: int = 0
) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per class: pixels, images where it appears, and pixels of those images (all their pixels,
    ignored ones included: SegNet's denominator). ignore_index and out-of-range values are skipped."""
    if histograms is None:
        histograms = raw_histograms(dataset, num_workers)
    n = dataset.num_classes
    pixels, images, image_pixels = np.zeros(n, np.int64), np.zeros(n, np.int64), np.zeros(n, np.int64)
    for values, counts in histograms:
        image_total = int(counts.sum())
        inside = (values >= 0) & (values < len(dataset.lut))
        values, counts = values[inside], counts[inside]
        classes = dataset.lut[values]
        valid = (classes >= 0) & (classes < n)
        per_class = np.bincount(classes[valid], weights=counts[valid], minlength=n).astype(np.int64)
        pixels += per_class
        images += per_class > 0
        image_pixels[per_class > 0] += image_total
    return pixels, images, image_pixels


def class_weights(dataset, histograms: Sequence[Histogram] | None = None, num_workers: int = 0) -> List[float]:
    """The weights of ``class_weights: auto`` and of ``segkit check``: median frequency, SegNet's definition."""
    pixels, _, image_pixels = class_statistics(dataset, histograms, num_workers)
    return median_frequency_weights(pixels, image_pixels)


def split_fingerprint(dataset) -> str:
    """A hash of what the weights depend on: the split's file list (names, not contents) and the label mapping."""
    digest = hashlib.sha1()
    pairs = dataset.pairs
    if hasattr(pairs, "images"):  # a PairList: hash its arrays, not a million Paths
        for table in (pairs.images, pairs.masks):
            digest.update("\0".join(map(str, table.dirs)).encode())
            digest.update(table.folder.tobytes())
            digest.update(b"\0".join(table.names.tolist()))
    else:
        digest.update("\0".join(f"{image}\0{mask}" for image, mask in pairs).encode())
    if dataset.ignore_masks is not None:
        digest.update("\0".join(str(p) for p in dataset.ignore_masks).encode())
    digest.update(dataset.lut.tobytes())
    digest.update(f"{dataset.num_classes}/{dataset.ignore_index}".encode())
    return digest.hexdigest()


def cached_class_weights(dataset, work_dir: Path, num_workers: int = 0) -> Tuple[List[float], bool]:
    """``class_weights(dataset)``, read from ``work_dir/class_weights.json`` when that holds the weights of
    this very split (same file list and label mapping), else computed and written there. (weights, cached)."""
    path = Path(work_dir) / CACHE_FILE
    key = split_fingerprint(dataset)
    try:
        cached = json.loads(path.read_text())
    except (OSError, ValueError):
        cached = {}
    if (
        isinstance(cached, dict)
        and cached.get("split") == key
        and len(cached.get("weights", [])) == dataset.num_classes
    ):
        return [float(w) for w in cached["weights"]], True
    weights = class_weights(dataset, num_workers=num_workers)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"split": key, "dataset": dataset.name, "weights": weights}))
    os.replace(tmp, path)  # a reader sees the old file or the new one
    return weights, False


def median_frequency_weights(counts: Sequence[int], image_pixels: Sequence[int] | None = None) -> List[float]:
    """weight_c = median(freq) / freq_c, with freq_c = pixels of c / pixels of the images where c appears
    (SegNet's definition) when ``image_pixels`` is given, else / all labelled pixels. Absent classes get 0."""
    counts = np.asarray(counts, dtype=np.float64)
    totals = (
        np.asarray(image_pixels, dtype=np.float64) if image_pixels is not None else np.full_like(counts, counts.sum())
    )
    freq = np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)
    present = freq > 0
    if not present.any():
        return [0.0] * len(counts)
    median = np.median(freq[present])
    return np.where(present, median / np.where(present, freq, 1.0), 0.0).tolist()
