"""Normalisation: ``data.value_range`` maps the stored values to 0..1, then ``(x - mean) / std`` on the device.

8-bit images with no ``value_range`` stay uint8 up to the device (a batch crosses the bus at a quarter of the
float32 size) and are divided by 255 there. Any other image (16-bit, float, or a range given) becomes float32
in 0..1 units in the data set, before augmentation (``to_unit``), and the device only subtracts and divides.
No augmentation library here, so inference can import it.
"""

from __future__ import annotations

from typing import Any, List, Optional, Sequence

import numpy as np
import torch

from segkit.errors import DataError

PERCENTILES = (0.5, 99.5)  # the range measured for deep images when data.value_range is null
SAMPLE_IMAGES = 64  # images of the training split the range is measured on, evenly spaced


def band_ranges(value_range: Any, bands: int) -> Optional[np.ndarray]:
    """``data.value_range`` ([lo, hi], or one pair per band) as a float64 bands x 2 array; None stays None."""
    if value_range is None:
        return None
    pairs = np.asarray(
        [list(p) for p in value_range] if np.ndim(value_range) == 2 else [list(value_range)], dtype=np.float64
    )
    if pairs.ndim != 2 or pairs.shape[1] != 2 or len(pairs) not in (1, bands):
        raise DataError(f"data.value_range={value_range}: give [lo, hi] or one [lo, hi] per band ({bands} bands)")
    if np.any(pairs[:, 1] <= pairs[:, 0]):
        raise DataError(f"data.value_range={value_range}: each hi must be above its lo")
    return np.repeat(pairs, bands, axis=0) if len(pairs) == 1 and bands > 1 else pairs


def dtype_range(dtype: np.dtype) -> List[float]:
    """The range a pixel type can hold: 0..255, 0..65535; float: 0..1."""
    if np.dtype(dtype).kind in "ui":
        info = np.iinfo(dtype)
        return [float(max(info.min, 0)), float(info.max)]
    return [0.0, 1.0]


def to_unit(image: np.ndarray, value_range: Any = None) -> np.ndarray:
    """H x W x C -> float32 in 0..1 units (values outside the range go below 0 / above 1, not clipped), or the
    uint8 image itself when it is 8-bit and no range is given (the device divides by 255)."""
    if value_range is None and image.dtype == np.uint8:
        return image
    ranges = band_ranges(value_range, image.shape[-1])
    if ranges is None:
        ranges = np.asarray([dtype_range(image.dtype)] * image.shape[-1])
    lo, span = ranges[:, 0], ranges[:, 1] - ranges[:, 0]
    return ((image.astype(np.float32) - lo.astype(np.float32)) / span.astype(np.float32)).astype(np.float32)


def measure_range(images: Sequence[np.ndarray]) -> List[List[float]]:
    """Per band the 0.5/99.5 percentiles over ``images`` (H x W x C each): ``data.value_range`` for deep data."""
    bands = images[0].shape[-1]
    stride = max(1, int(np.sqrt(sum(im.shape[0] * im.shape[1] for im in images) / 4e6)))  # <= ~4M pixels a band
    pixels = np.concatenate([im[::stride, ::stride].reshape(-1, bands) for im in images]).astype(np.float64)
    lo, hi = np.percentile(pixels, PERCENTILES, axis=0)
    return [[round(float(a), 4), round(float(max(b, a + 1e-6)), 4)] for a, b in zip(lo, hi)]


def to_display(image: np.ndarray, bands: Optional[Sequence[int]] = None) -> np.ndarray:
    """RGB uint8 H x W x 3 for overlays and the studio: 8-bit RGB as it is; deeper or other band counts are
    stretched per band between their 0.5/99.5 percentiles (display only: never what the model sees).
    ``bands``: 1-based bands to show as R, G, B (``--display-bands 3,2,1``); default the first three."""
    if image.ndim == 2:
        image = image[..., None]
    if bands is not None:
        if any(not 1 <= b <= image.shape[2] for b in bands):
            raise DataError(f"display bands {list(bands)}: the image has bands 1..{image.shape[2]}")
        image = image[..., [b - 1 for b in bands]]
    elif image.shape[2] >= 3:
        image = image[..., :3]
    if image.shape[2] != 3:
        image = np.repeat(image[..., :1], 3, axis=2)
    if image.dtype == np.uint8:
        return np.ascontiguousarray(image)
    stretched = to_unit(image, measure_range([image]))
    return np.ascontiguousarray(np.clip(np.rint(stretched * 255), 0, 255).astype(np.uint8))


class Normalizer:
    """N x C x H x W on ``device`` -> normalised float, in ``memory_format`` when one is given: uint8 input is
    ``(x/255 - mean) / std``, float input (already in 0..1 units, ``to_unit``) ``(x - mean) / std``. Mean and
    std are copied to the device once, here, not per batch (on a GPU each copy would be a blocking transfer)."""

    def __init__(
        self,
        mean: Sequence[float],
        std: Sequence[float],
        device: Optional[torch.device] = None,
        dtype: Optional[torch.dtype] = None,
        memory_format: Optional[torch.memory_format] = None,
    ):
        self.dtype, self.memory_format = dtype or torch.float32, memory_format
        self.mean = torch.tensor(mean, device=device, dtype=self.dtype).view(1, -1, 1, 1)
        self.std = torch.tensor(std, device=device, dtype=self.dtype).view(1, -1, 1, 1)
        self.mean255, self.std255 = self.mean * 255.0, self.std * 255.0

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        if images.shape[1] != self.mean.shape[1]:
            raise DataError(
                f"images have {images.shape[1]} band(s) but data.mean/std {self.mean.shape[1]}: "
                f"set data.channels and give one mean/std per band"
            )
        mean, std = (self.mean255, self.std255) if images.dtype == torch.uint8 else (self.mean, self.std)
        out = (images.to(self.dtype) - mean) / std
        return out if self.memory_format is None else out.contiguous(memory_format=self.memory_format)


def normalize(
    images: torch.Tensor, mean: Sequence[float], std: Sequence[float], dtype: Optional[torch.dtype] = None
) -> torch.Tensor:
    """N x C x H x W (uint8, or float in 0..1 units) on any device -> normalised float. For a stream of
    batches, make one ``Normalizer`` instead."""
    return Normalizer(mean, std, images.device, dtype)(images)


def training_range(dataset) -> Optional[tuple]:
    """``data.value_range: null`` on deep data: (the per-band 0.5/99.5 percentiles of up to ``SAMPLE_IMAGES``
    images of ``dataset`` (the training split), their pixel type); None when the images are 8-bit."""
    from .io import read_image

    if not len(dataset):
        return None
    first = read_image(dataset.pairs[0][0], dataset.channels)
    if first.dtype == np.uint8:
        return None
    picks = np.unique(np.linspace(0, len(dataset) - 1, min(len(dataset), SAMPLE_IMAGES)).round().astype(int))
    images = [first] + [read_image(dataset.pairs[int(i)][0], dataset.channels) for i in picks if i != 0]
    return measure_range(images), str(first.dtype)
