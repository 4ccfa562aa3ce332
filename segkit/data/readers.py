"""Readers, one per on-disk format: each finds the (image, mask) pairs of a split and knows its classes.

``build_dataset(cfg, split)`` is the entry point. ``split`` may join splits with ``+``
(``train+val``; VOC ``train+aug``): their pairs are concatenated, an image listed twice kept once.
Every reader takes ``issues``: None raises on the first problem, a list collects them all
(``tools/check_dataset.py``). Layouts and sources: ``data/README.md``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Dict, List, Optional

from .classes import (ADE20K_CLASSES, CAMVID_CLASSES, CAMVID_PALETTE, CITYSCAPES_CLASSES, CITYSCAPES_PALETTE,
                      CITYSCAPES_TRAIN_IDS, VOC_CLASSES)
from .coco import coco_dataset
from .datasets import Pair, SegDataset, pair_by_stem, read_split_file
from .io import ROOT_HINT, DataError, Issue, report

FOLDER_LAYOUT = """
Expected layout (data.format=folder):
  <root>/<image_dir>/<stem>.jpg|png|...   e.g. data/mine/images/train/0001.jpg
  <root>/<mask_dir>/<stem>.png            e.g. data/mine/masks/train/0001.png  (class ids, not colours)
with data.image_dir='images/{split}' and data.mask_dir='masks/{split}' by default."""
CAMVID_LAYOUT = "\nExpected the SegNet CamVid layout: <root>/{train,val,test}/*.png|jpg and <root>/{train,val,test}annot/*.png"
VOC_LAYOUT = """
Expected <root> = VOCdevkit/VOC2012 holding JPEGImages/*.jpg, SegmentationClass/*.png (palette PNGs),
ImageSets/Segmentation/{train,val,trainval}.txt; for the SBD 'aug' set also SegmentationClassAug/*.png
and ImageSets/Segmentation/aug.txt (data/README.md says how to make them)."""
CITYSCAPES_LAYOUT = """
Expected the Cityscapes layout: <root>/leftImg8bit/<split>/<city>/*_leftImg8bit.png and
<root>/gtFine/<split>/<city>/*_gtFine_labelIds.png (from leftImg8bit_trainvaltest.zip and gtFine_trainvaltest.zip)."""
ADE20K_LAYOUT = """
Expected <root> = ADEChallengeData2016 holding images/{training,validation}/*.jpg and
annotations/{training,validation}/*.png (values 0..150; 0 is 'other' and is ignored)."""

ADE20K_SPLITS = {"train": "training", "val": "validation"}  # the names users type -> ADE's folder names


def folder_pairs(cfg, split: str, issues: Optional[List[Issue]] = None) -> List[Pair]:
    root = Path(cfg.root)
    if not root.is_dir():
        report(issues, f"data root not found: {root} {ROOT_HINT}.{FOLDER_LAYOUT}")
        return []
    stems = None
    if cfg.split_file:
        # relative to the data root, else to the working directory (split lists kept beside the configs)
        name = cfg.split_file.format(split=split)
        path = next((p for p in (root / name, Path(name)) if p.is_file()), root / name)
        stems = read_split_file(path, issues)
        if stems is None:
            return []
    return pair_by_stem(root / cfg.image_dir.format(split=split), root / cfg.mask_dir.format(split=split), stems,
                        FOLDER_LAYOUT, issues=issues)


def camvid_pairs(cfg, split: str, issues: Optional[List[Issue]] = None) -> List[Pair]:
    root = Path(cfg.root)
    if not root.is_dir():
        report(issues, f"CamVid root not found: {root} {ROOT_HINT}.{CAMVID_LAYOUT}")
        return []
    return pair_by_stem(root / split, root / f"{split}annot", None, CAMVID_LAYOUT, issues=issues)


def voc_pairs(cfg, split: str, issues: Optional[List[Issue]] = None) -> List[Pair]:
    """Masks come from SegmentationClass, else SegmentationClassAug (SBD), so ``train+aug`` keeps VOC's own
    masks (with their 255 boundaries) for VOC images and takes SBD's for the rest, as mmsegmentation does."""
    root = Path(cfg.root)
    if not root.is_dir():
        report(issues, f"VOC root not found: {root} {ROOT_HINT}.{VOC_LAYOUT}")
        return []
    stems = read_split_file(root / "ImageSets" / "Segmentation" / f"{split}.txt", issues)
    if stems is None:
        return []
    return pair_by_stem(root / "JPEGImages", [root / "SegmentationClass", root / "SegmentationClassAug"], stems,
                        VOC_LAYOUT, image_suffixes=(".jpg",), issues=issues)


def cityscapes_pairs(cfg, split: str, issues: Optional[List[Issue]] = None) -> List[Pair]:
    root = Path(cfg.root)
    if not root.is_dir():
        report(issues, f"Cityscapes root not found: {root} {ROOT_HINT}.{CITYSCAPES_LAYOUT}")
        return []
    return pair_by_stem(root / "leftImg8bit" / split, root / "gtFine" / split, None, CITYSCAPES_LAYOUT,
                        image_suffix="_leftImg8bit", mask_suffix="_gtFine_labelIds", recursive=True,
                        image_suffixes=(".png",), issues=issues)


def ade20k_pairs(cfg, split: str, issues: Optional[List[Issue]] = None) -> List[Pair]:
    root, folder = Path(cfg.root), ADE20K_SPLITS.get(split, split)
    if not root.is_dir():
        report(issues, f"ADE20K root not found: {root} {ROOT_HINT}.{ADE20K_LAYOUT}")
        return []
    return pair_by_stem(root / "images" / folder, root / "annotations" / folder, None, ADE20K_LAYOUT, issues=issues)


def joined_pairs(pairs_fn: Callable, cfg, split: str, issues: Optional[List[Issue]] = None) -> List[Pair]:
    """The pairs of ``a+b+...``, in order, each image once (the first split's mask wins)."""
    pairs: Dict[Path, Pair] = {}
    for part in split.split("+"):
        for pair in pairs_fn(cfg, part.strip(), issues):
            pairs.setdefault(pair[0], pair)
    return list(pairs.values())


def _path_dataset(pairs_fn: Callable, class_names: List[str], palette: List[List[int]],
                  label_map: Optional[Dict[int, int]] = None, unmapped_ignored: bool = False) -> Callable:
    """A reader for formats whose masks are files: the format's classes, palette and label mapping,
    under what the config states (the config wins)."""

    def build(cfg, split: str, transform=None, issues: Optional[List[Issue]] = None) -> SegDataset:
        if not cfg.class_names and class_names and len(class_names) != cfg.num_classes:
            raise DataError(f"the {cfg.format} reader has {len(class_names)} classes but data.num_classes="
                            f"{cfg.num_classes}; set data.num_classes={len(class_names)}, or name your classes in "
                            f"data.class_names")
        names = list(cfg.class_names) or class_names
        pairs = joined_pairs(pairs_fn, cfg, split, issues)
        colours = [list(c) for c in cfg.palette] or (palette if len(palette) == cfg.num_classes else [])
        return SegDataset(pairs, cfg.num_classes, names, colours, cfg.ignore_index,
                          {**(label_map or {}), **dict(cfg.label_map)}, cfg.reduce_zero_label, transform,
                          name=f"{cfg.format}:{cfg.root}:{split}", unmapped_ignored=unmapped_ignored)

    return build


# format -> build(cfg, split, transform, issues) -> SegDataset
READERS: Dict[str, Callable] = {
    "folder": _path_dataset(folder_pairs, [], []),
    "camvid": _path_dataset(camvid_pairs, CAMVID_CLASSES, CAMVID_PALETTE),
    "voc": _path_dataset(voc_pairs, VOC_CLASSES, []),
    "cityscapes": _path_dataset(cityscapes_pairs, CITYSCAPES_CLASSES, CITYSCAPES_PALETTE, CITYSCAPES_TRAIN_IDS,
                                unmapped_ignored=True),
    "ade20k": _path_dataset(ade20k_pairs, ADE20K_CLASSES, []),  # with data.reduce_zero_label=true
    "coco": coco_dataset,
}


def build_dataset(cfg, split: str, transform: Optional[Callable] = None,
                  issues: Optional[List[Issue]] = None) -> SegDataset:
    """The ``split`` of the data set described by a ``DataConfig``; ``transform`` is applied per item."""
    if cfg.format not in READERS:
        raise DataError(f"unknown data format '{cfg.format}' (data.format); choose one of {', '.join(READERS)}")
    return READERS[cfg.format](cfg, split, transform, issues)
