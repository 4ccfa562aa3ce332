"""Label statistics: per-class pixel counts and median-frequency class weights (Eigen & Fergus, SegNet).

Everything derives from one pass over the masks (no images are read): a histogram of the raw
values of each mask, which the data set's lookup table turns into class counts.
"""
from __future__ import annotations

from typing import List, Sequence, Tuple

import numpy as np
from torch.utils.data import DataLoader, Dataset

Histogram = Tuple[np.ndarray, np.ndarray]  # (raw values present, pixels of each)


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


def _as_is(item):
    return item


def raw_histograms(dataset, num_workers: int = 0) -> List[Histogram]:
    """The raw-value histogram of every mask, in order; ``num_workers`` processes read the masks."""
    loader = DataLoader(_RawHistograms(dataset), batch_size=None, num_workers=num_workers, collate_fn=_as_is)
    return list(loader)


def class_statistics(dataset, histograms: Sequence[Histogram] | None = None,
                     num_workers: int = 0) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
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


def median_frequency_weights(counts: Sequence[int], image_pixels: Sequence[int] | None = None) -> List[float]:
    """weight_c = median(freq) / freq_c, with freq_c = pixels of c / pixels of the images where c appears
    (SegNet's definition) when ``image_pixels`` is given, else / all labelled pixels. Absent classes get 0."""
    counts = np.asarray(counts, dtype=np.float64)
    totals = np.asarray(image_pixels, dtype=np.float64) if image_pixels is not None else np.full_like(counts, counts.sum())
    freq = np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)
    present = freq > 0
    if not present.any():
        return [0.0] * len(counts)
    median = np.median(freq[present])
    return np.where(present, median / np.where(present, freq, 1.0), 0.0).tolist()
