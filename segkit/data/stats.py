"""Label statistics: per-class pixel counts and median-frequency class weights (Eigen & Fergus, SegNet)."""
from __future__ import annotations

from typing import List, Sequence

import numpy as np


def pixel_counts(dataset) -> np.ndarray:
    """Pixels of each class over the whole data set (untransformed masks; ignore_index skipped)."""
    counts = np.zeros(dataset.num_classes, dtype=np.int64)
    for i in range(len(dataset)):
        _, mask = dataset.read(i)
        valid = mask[(mask >= 0) & (mask < dataset.num_classes)]
        counts += np.bincount(valid.ravel(), minlength=dataset.num_classes)
    return counts


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
