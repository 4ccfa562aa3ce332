"""Reading every pair of a split once for ``segkit check``: problems, mask histograms, image sizes and
channel sums, with what decoders print on the side (libpng's stderr lines, PIL's warnings) kept as
warnings about the file instead of interleaved with the report."""

from __future__ import annotations

import os
import sys
import tempfile
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional, Tuple

import numpy as np
from torch.utils.data import Dataset

from .io import DataError, read_image
from .stats import histogram


@dataclass
class PairScan:
    problems: List[Tuple[str, bool]] = field(default_factory=list)  # (message, fatal)
    hist: Optional[tuple] = None
    size: Optional[Tuple[int, int]] = None  # image H, W
    channel_sum: Optional[np.ndarray] = None  # per band, in stored units (check maps them with the value range)
    channel_sq_sum: Optional[np.ndarray] = None
    dtype: Optional[str] = None  # the image's pixel type
    band_min: Optional[np.ndarray] = None
    band_max: Optional[np.ndarray] = None
    mask_name: str = ""
    unknown: dict = field(default_factory=dict)  # colour masks: (r, g, b) -> pixels of colours not listed


@contextmanager
def decoder_output(sink: List[str]):
    """What native decoders write to file descriptor 2 and Python warnings, into ``sink``."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as tmp, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            sink.extend(line for line in tmp.read().decode(errors="replace").splitlines() if line.strip())
            sink.extend(str(w.message) for w in caught)


class PairScanner(Dataset):
    """Reads pair i fully (image and mask) and returns its ``PairScan``."""

    def __init__(self, dataset, image_stats: bool = False):
        self.dataset, self.image_stats = dataset, image_stats

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> PairScan:
        scan, said = PairScan(), []
        image_path, mask_path = self.dataset.pairs[index]
        scan.mask_name = Path(mask_path).name
        with decoder_output(said):
            try:
                image = read_image(image_path, self.dataset.channels)
                scan.size, scan.dtype = image.shape[:2], str(image.dtype)
                bands = image.reshape(-1, image.shape[2])
                scan.band_min, scan.band_max = bands.min(0).astype(np.float64), bands.max(0).astype(np.float64)
                if self.image_stats:
                    pixels = bands.astype(np.float64)
                    scan.channel_sum, scan.channel_sq_sum = pixels.sum(0), (pixels**2).sum(0)
            except DataError as exc:
                scan.problems.append((str(exc), True))
            try:
                colours = getattr(self.dataset, "colors", None) is not None
                raw = self.dataset.raw_mask(index, scan.unknown) if colours else self.dataset.raw_mask(index)
                scan.hist = histogram(raw)
                if scan.size is not None and raw.shape[:2] != scan.size:
                    scan.problems.append((self.dataset.size_mismatch(index, scan.size, raw.shape[:2]), True))
            except DataError as exc:
                scan.problems.append((str(exc), True))
        for line in dict.fromkeys(said):
            scan.problems.append(
                (
                    f"{image_path.name} / {mask_path.name}: the decoder says '{line.strip()}' "
                    f"(the pair reads; re-save the file to quiet it)",
                    False,
                )
            )
        return scan


def size_summary(sizes: List[Tuple[int, int]]) -> str:
    """min / median / max image size (H x W), ordered by pixel count."""
    ordered = sorted(sizes, key=lambda s: (s[0] * s[1], s))
    picks = [ordered[0], ordered[len(ordered) // 2], ordered[-1]]
    return ", ".join(f"{name} {w}x{h}" for name, (h, w) in zip(("min", "median", "max"), picks))


def mean_std(sums: np.ndarray, sq_sums: np.ndarray, pixels: int) -> Tuple[List[float], List[float]]:
    """Per-channel mean and standard deviation from sums over ``pixels`` pixels."""
    mean = sums / pixels
    std = np.sqrt(np.maximum(sq_sums / pixels - mean**2, 0.0))
    return [round(float(m), 4) for m in mean], [round(float(s), 4) for s in std]
