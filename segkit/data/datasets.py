"""Readers: one per on-disk format, all yielding an RGB uint8 image and an int64 class-index mask.

Every reader is a ``SegDataset`` built from a list of (image, mask) file pairs plus class names
and a palette; reading, label mapping and the checks on each pair live here once.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch.utils.data import Dataset

from .io import IMAGE_SUFFIXES, MASK_SUFFIXES, DataError, read_image, read_mask

Pair = Tuple[Path, Path]


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
    """Pairs of files -> ``{"image": uint8 3xHxW, "mask": int64 HxW, "index": i}``.

    ``read(i)`` gives the untransformed (image, mask) after label mapping; ``transform`` is an
    albumentations pipeline called as ``transform(image=..., mask=...)``.
    """

    def __init__(self, pairs: Sequence[Pair], num_classes: int, class_names: Sequence[str] = (),
                 palette: Sequence[Sequence[int]] = (), ignore_index: int = 255,
                 label_map: Optional[Dict[int, int]] = None, reduce_zero_label: bool = False,
                 transform: Optional[Callable] = None, name: str = "dataset"):
        self.pairs = list(pairs)
        self.num_classes, self.ignore_index = num_classes, ignore_index
        self.class_names = list(class_names) or [f"class_{i}" for i in range(num_classes)]
        if len(self.class_names) != num_classes:
            raise DataError(f"{name}: {len(self.class_names)} class names for num_classes={num_classes}; "
                            f"make data.class_names list exactly one name per class")
        self.palette = [list(map(int, c)) for c in palette] or default_palette(num_classes)
        if len(self.palette) < num_classes:
            raise DataError(f"{name}: palette has {len(self.palette)} colours for {num_classes} classes (data.palette)")
        self.label_map = dict(label_map or {})
        self.reduce_zero_label = reduce_zero_label
        self.transform = transform
        self.name = name
        self._lut = self._make_lut()

    def _make_lut(self) -> np.ndarray:
        lut = np.arange(65536, dtype=np.int64)
        if self.reduce_zero_label:  # ADE20K: 0 is "other", not a class
            lut = lut - 1
            lut[0] = self.ignore_index
        for src, dst in self.label_map.items():
            lut[int(src)] = int(dst)
        return lut

    def __len__(self) -> int:
        return len(self.pairs)

    def read(self, index: int) -> Tuple[np.ndarray, np.ndarray]:
        image_path, mask_path = self.pairs[index]
        image, raw = read_image(image_path), read_mask(mask_path)
        if image.shape[:2] != raw.shape[:2]:
            raise DataError(f"mask {mask_path} is {raw.shape[1]}x{raw.shape[0]} but image {image_path} is "
                            f"{image.shape[1]}x{image.shape[0]} (W x H): they must match. Re-export the mask at "
                            f"the image's size (nearest-neighbour), or fix the pairing.")
        mask = self._lut[raw.astype(np.int64)] if raw.max(initial=0) < len(self._lut) else raw.astype(np.int64)
        self._check_labels(mask, raw, mask_path)
        return image, mask

    def _check_labels(self, mask: np.ndarray, raw: np.ndarray, mask_path: Path) -> None:
        if mask.max(initial=0) < self.num_classes and mask.min(initial=0) >= 0:
            return
        bad = (mask != self.ignore_index) & ((mask < 0) | (mask >= self.num_classes))
        if bad.any():
            values = sorted(np.unique(raw[bad]).tolist())
            raise DataError(
                f"mask {mask_path} has label value(s) {values[:10]} that are neither a class "
                f"(0..{self.num_classes - 1}) nor ignore_index={self.ignore_index}. Fix data.num_classes, "
                f"map them with data.label_map (e.g. {{{values[0]}: {self.ignore_index}}}), or set data.ignore_index.")

    def __getitem__(self, index: int) -> Dict[str, object]:
        image, mask = self.read(index)
        if self.transform is not None:
            # cv2 cannot warp int64; int32 holds any class id and ignore_index
            out = self.transform(image=image, mask=mask.astype(np.int32))
            image, mask = out["image"], out["mask"]
        return {"image": torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))),
                "mask": torch.from_numpy(np.ascontiguousarray(mask).astype(np.int64)),
                "index": index}


def _files(directory: Path, suffixes: Sequence[str]) -> Dict[str, Path]:
    return {p.stem: p for p in sorted(directory.iterdir()) if p.is_file() and p.suffix.lower() in suffixes}


def pair_by_stem(image_dir: Path, mask_dir: Path, stems: Optional[Sequence[str]] = None,
                 layout_hint: str = "", mask_suffix: str = "") -> List[Pair]:
    """Pair ``image_dir/<stem>.<ext>`` with ``mask_dir/<stem><mask_suffix>.<ext>``; every problem
    (missing folder, empty folder, an image with no mask, a listed stem with no file) is an error."""
    for d, what in ((image_dir, "image"), (mask_dir, "mask")):
        if not d.is_dir():
            raise DataError(f"{what} folder not found: {d}.{layout_hint}")
    images = _files(image_dir, IMAGE_SUFFIXES)
    masks = {stem[: len(stem) - len(mask_suffix)] if mask_suffix and stem.endswith(mask_suffix) else stem: p
             for stem, p in _files(mask_dir, MASK_SUFFIXES).items()}
    if not images:
        raise DataError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {image_dir}.{layout_hint}")
    if stems is not None:
        missing = [s for s in stems if s not in images or s not in masks]
        if missing:
            raise DataError(f"the split list names {len(missing)} file(s) with no image in {image_dir} or no mask "
                            f"in {mask_dir}: {', '.join(missing[:8])}. Fix the list or restore the files.")
        return [(images[s], masks[s]) for s in stems]
    unpaired = sorted(set(images) - set(masks))
    if unpaired:
        raise DataError(f"{len(unpaired)} image(s) in {image_dir} have no mask in {mask_dir}: "
                        f"{', '.join(unpaired[:8])}. Add the masks, remove the images, or use a split list.")
    return [(images[s], masks[s]) for s in sorted(images)]


def read_split_file(path: Path) -> List[str]:
    if not path.is_file():
        raise DataError(f"split list not found: {path} (data.split_file)")
    stems = [line.strip() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]
    if not stems:
        raise DataError(f"split list {path} is empty")
    return [Path(s).stem if Path(s).suffix.lower() in IMAGE_SUFFIXES else s for s in stems]


FOLDER_LAYOUT = """
Expected layout (data.format=folder):
  <root>/<image_dir>/<stem>.jpg|png|...   e.g. data/mine/images/train/0001.jpg
  <root>/<mask_dir>/<stem>.png            e.g. data/mine/masks/train/0001.png  (class ids, not colours)
with image_dir='images/{split}' and mask_dir='masks/{split}' by default."""

CAMVID_CLASSES = ["Sky", "Building", "Pole", "Road", "Pavement", "Tree", "SignSymbol", "Fence", "Car",
                  "Pedestrian", "Bicyclist"]
CAMVID_PALETTE = [[128, 128, 128], [128, 0, 0], [192, 192, 128], [128, 64, 128], [60, 40, 222], [128, 128, 0],
                  [192, 128, 128], [64, 64, 128], [64, 0, 128], [64, 64, 0], [0, 128, 192]]


def folder_pairs(cfg, split: str) -> List[Pair]:
    root = Path(cfg.root)
    if not root.is_dir():
        raise DataError(f"data root not found: {root} (data.root).{FOLDER_LAYOUT}")
    stems = read_split_file(root / cfg.split_file.format(split=split)) if cfg.split_file else None
    return pair_by_stem(root / cfg.image_dir.format(split=split), root / cfg.mask_dir.format(split=split), stems,
                        FOLDER_LAYOUT)


def camvid_pairs(cfg, split: str) -> List[Pair]:
    root = Path(cfg.root)
    hint = "\nExpected the SegNet CamVid layout: <root>/{train,val,test}/*.png|jpg and <root>/{train,val,test}annot/*.png"
    if not root.is_dir():
        raise DataError(f"CamVid root not found: {root} (data.root).{hint}")
    return pair_by_stem(root / split, root / f"{split}annot", None, hint)


# format -> (pairs(cfg, split), default class names, default palette)
READERS: Dict[str, Tuple[Callable, List[str], List[List[int]]]] = {
    "folder": (folder_pairs, [], []),
    "camvid": (camvid_pairs, CAMVID_CLASSES, CAMVID_PALETTE),
}


def build_dataset(cfg, split: str, transform: Optional[Callable] = None) -> SegDataset:
    """The ``split`` of the data set described by a ``DataConfig``."""
    if cfg.format not in READERS:
        raise DataError(f"unknown data format '{cfg.format}' (data.format); choose one of {', '.join(READERS)}")
    pairs_fn, names, palette = READERS[cfg.format]
    return SegDataset(pairs_fn(cfg, split), cfg.num_classes, list(cfg.class_names) or names,
                      [list(c) for c in cfg.palette] or palette, cfg.ignore_index, dict(cfg.label_map),
                      cfg.reduce_zero_label, transform, name=f"{cfg.format}:{cfg.root}:{split}")
