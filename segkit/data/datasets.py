"""The data set every reader yields, and pairing image and mask files by name.

A ``SegDataset`` is a list of (image, mask) file pairs plus class names and a palette; reading,
label mapping and the checks on each pair live here once. The readers (``readers.py``, one per
on-disk format) only find the pairs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch.utils.data import Dataset

from .classes import CAMVID_CLASSES, CAMVID_PALETTE  # noqa: F401  (imported from here by bench/quality.py)
from .colors import ColorTable, Colour
from .filetable import PairList
from .io import DataError, read_color_mask, read_image, read_mask
from .normalize import to_unit
from .pairing import Pair

LUT_SIZE = 65536  # raw mask values are 8- or 16-bit
OUTSIDE = -1  # the raw value of pixels outside an image's ignore mask (data.ignore_mask_dir): always ignored


def default_palette(n: int) -> List[List[int]]:
    """The PASCAL VOC colour map: distinct colours from the bits of the class index; 0 is black."""
    palette = []
    for i in range(n):
        c, r, g, b = i, 0, 0, 0
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        palette.append([r, g, b])
    return palette


class SegDataset(Dataset):
    """Pairs of files -> ``{"image": C x H x W, "mask": int64 HxW, "index": i}``: the image uint8 for 8-bit
    data with no ``value_range``, else float32 in 0..1 units (``normalize.to_unit``).

    Raw mask values become class ids through one lookup table: identity (or ``ignore_index`` for
    every value when ``unmapped_ignored``, as Cityscapes' label ids need), then ``reduce_zero_label``
    (ADE20K: 0 -> ignore, v -> v-1, ignore stays), then ``label_map`` (raw value -> class id, last word).
    ``read(i)`` gives the untransformed (image, mask); ``transform`` is an albumentations pipeline.
    ``ignore_masks[i]``: a mask whose zero pixels become ``ignore_index`` in pair i (a field of view).
    """

    def __init__(
        self,
        pairs: Sequence[Pair],
        num_classes: int,
        class_names: Sequence[str] = (),
        palette: Sequence[Sequence[int]] = (),
        ignore_index: int = 255,
        label_map: Optional[Dict[int, int]] = None,
        reduce_zero_label: bool = False,
        transform: Optional[Callable] = None,
        name: str = "dataset",
        unmapped_ignored: bool = False,
        ignore_masks: Optional[Sequence[Optional[Path]]] = None,
        colors: Optional[ColorTable] = None,
        channels: int = 3,
        value_range=None,
    ):
        self.pairs = pairs if isinstance(pairs, PairList) else list(pairs)  # PairList: compact at 1M pairs
        self.ignore_masks = ignore_masks if ignore_masks is not None and len(ignore_masks) else None
        self.num_classes, self.ignore_index = num_classes, ignore_index
        self.class_names = list(class_names) or [f"class_{i}" for i in range(num_classes)]
        if len(self.class_names) != num_classes:
            raise DataError(
                f"{name}: {len(self.class_names)} class names for data.num_classes={num_classes}; "
                f"set data.num_classes={len(self.class_names)}, or list one name per class in data.class_names"
            )
        self.palette = [list(map(int, c)) for c in palette] or default_palette(num_classes)
        if len(self.palette) < num_classes:
            raise DataError(f"{name}: palette has {len(self.palette)} colours for {num_classes} classes (data.palette)")
        self.label_map = {int(k): int(v) for k, v in (label_map or {}).items()}
        self.reduce_zero_label, self.unmapped_ignored = reduce_zero_label, unmapped_ignored
        self.transform = transform
        self.name = name
        self.colors, self.channels, self.value_range = colors, channels, value_range
        self.lut = self._make_lut()
        self._valid = (self.lut == ignore_index) | ((self.lut >= 0) & (self.lut < num_classes))
        self._valid_upto = np.logical_and.accumulate(self._valid)  # [v]: every raw value 0..v is valid

    def _make_lut(self) -> np.ndarray:
        lut = (
            np.full(LUT_SIZE, self.ignore_index, np.int64)
            if self.unmapped_ignored
            else np.arange(LUT_SIZE, dtype=np.int64)
        )
        if self.reduce_zero_label:
            lut = lut - 1
            lut[0] = self.ignore_index
            if 0 <= self.ignore_index < LUT_SIZE:
                lut[self.ignore_index] = self.ignore_index
        for src, dst in self.label_map.items():
            if not 0 <= src < LUT_SIZE:
                raise DataError(f"{self.name}: data.label_map key {src} is not a mask value (0..{LUT_SIZE - 1})")
            if dst != self.ignore_index and not 0 <= dst < self.num_classes:
                raise DataError(
                    f"{self.name}: data.label_map maps {src} to {dst}, which is neither a class "
                    f"(0..{self.num_classes - 1}) nor ignore_index={self.ignore_index}"
                )
            lut[src] = dst
        return lut

    def __len__(self) -> int:
        return len(self.pairs)

    def raw_mask(self, index: int, unknown: Optional[Dict[Colour, int]] = None) -> np.ndarray:
        """The mask's values as stored, before label mapping; ``OUTSIDE`` where the ignore mask is 0. Colour
        masks (``data.class_colors``) are class ids already; ``unknown`` collects colours that are not."""
        if self.colors is not None:
            raw = self.colors.to_index(read_color_mask(self.pairs[index][1]), self.pairs[index][1], unknown)
        else:
            raw = read_mask(self.pairs[index][1])
        if self.ignore_masks is None or self.ignore_masks[index] is None:
            return raw
        keep = read_mask(self.ignore_masks[index])
        if keep.shape != raw.shape:
            (kh, kw), (mh, mw) = keep.shape[:2], raw.shape[:2]
            raise DataError(
                f"ignore mask {self.ignore_masks[index]} is {kw}x{kh} but mask {self.pairs[index][1]} is "
                f"{mw}x{mh} (W x H): they must match (data.ignore_mask_dir)."
            )
        raw = raw.astype(np.int32)
        raw[keep == 0] = OUTSIDE
        return raw

    def map_labels(self, raw: np.ndarray, source: object = "") -> np.ndarray:
        """Raw values -> int64 class ids; a value that is neither a class nor ignore_index is an error."""
        if raw.size == 0:
            return raw.astype(np.int64)
        lo, hi = int(raw.min()), int(raw.max())
        if lo == OUTSIDE and self.ignore_masks is not None:
            outside = raw == OUTSIDE
            mapped = self.map_labels(np.where(outside, int(np.argmax(self._valid)), raw), source)  # any valid value
            mapped[outside] = self.ignore_index
            return mapped
        if lo < 0 or hi >= LUT_SIZE:
            raise DataError(
                f"mask {source} has values outside 0..{LUT_SIZE - 1} ({lo}..{hi}); class ids must fit in 16 bits"
            )
        if not self._valid_upto[hi]:  # some value in 0..hi is invalid: is one of them present?
            present = np.flatnonzero(np.bincount(raw.ravel(), minlength=hi + 1))
            values = present[~self._valid[present]].tolist()
            if values:
                raise DataError(
                    f"mask {source} has label value(s) {values[:10]} that are neither a class "
                    f"(0..{self.num_classes - 1}) nor ignore_index={self.ignore_index}. Fix data.num_classes, "
                    f"map them with data.label_map (e.g. {{{values[0]}: {self.ignore_index}}}), or set "
                    f"data.ignore_index (tools/check_dataset.py lists every value found)."
                )
        return self.lut[raw]

    def read_mask(self, index: int) -> np.ndarray:
        """The int64 class-id mask of pair ``index``, without reading its image."""
        return self.map_labels(self.raw_mask(index), self.pairs[index][1])

    def read(self, index: int) -> Tuple[np.ndarray, np.ndarray]:
        image_path, mask_path = self.pairs[index]
        image, raw = read_image(image_path, self.channels), self.raw_mask(index)
        if image.shape[:2] != raw.shape[:2]:
            raise DataError(self.size_mismatch(index, image.shape[:2], raw.shape[:2]))
        return image, self.map_labels(raw, mask_path)

    def size_mismatch(self, index: int, image_shape, mask_shape) -> str:
        (ih, iw), (mh, mw) = image_shape, mask_shape
        image_path, mask_path = self.pairs[index]
        rotated = (
            (
                " (the sizes are swapped: segkit turns images by their EXIF orientation, as viewers do; was "
                "the mask drawn on the unturned image, or is it rotated?)"
            )
            if (ih, iw) == (mw, mh)
            else ""
        )
        return (
            f"mask {mask_path} is {mw}x{mh} but image {image_path} is {iw}x{ih} (W x H){rotated}: they must "
            f"match. Re-export the mask at the image's size (nearest-neighbour), or fix the pairing."
        )

    def __getitem__(self, index: int) -> Dict[str, object]:
        image, mask = self.read(index)
        image = to_unit(image, self.value_range)  # 8-bit without a range stays uint8 (the device divides)
        if self.transform is not None:
            # cv2 cannot warp int64; int32 holds any class id and ignore_index
            out = self.transform(image=image, mask=mask.astype(np.int32))
            image, mask = out["image"], out["mask"]
        return {
            "image": torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))),
            "mask": torch.from_numpy(np.ascontiguousarray(mask).astype(np.int64)),
            "index": index,
        }
