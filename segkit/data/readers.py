"""Readers, one per on-disk format: each finds the (image, mask) pairs of a split and knows its classes.

``build_dataset(cfg, split)`` is the entry point; ``FORMATS`` maps each ``data.format`` to its reader. ``split`` may join splits with ``+``
(``train+val``; VOC ``train+aug``): their pairs are concatenated, an image listed twice kept once.
Every reader takes ``issues``: None raises on the first problem, a list collects them all
(``tools/check_dataset.py``). Layouts and sources: ``data/README.md``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from .classes import (
    ADE20K_CLASSES,
    CAMVID_CLASSES,
    CAMVID_PALETTE,
    CITYSCAPES_CLASSES,
    CITYSCAPES_PALETTE,
    CITYSCAPES_TRAIN_IDS,
    VOC_CLASSES,
)
from .coco import coco_dataset
from .colors import ColorTable
from .datasets import SegDataset
from .io import MASK_SUFFIXES, ROOT_HINT, DataError, Issue, report
from .pairing import NameRule, Pair, folder_rules, ignore_masks, pair_by_stem, read_split_file

FOLDER_LAYOUT = """
Expected layout (data.format=folder):
  <root>/<image_dir>/<stem>.jpg|png|...   e.g. data/mine/images/train/0001.jpg
  <root>/<mask_dir>/<stem>.png            e.g. data/mine/masks/train/0001.png  (class ids, not colours)
with data.image_dir='images/{split}' and data.mask_dir='masks/{split}' by default. Names that differ
(21_training.tif / 21_manual1.gif): data.image_suffix=_training data.mask_suffix=_manual1, or data.pair_pattern."""
CAMVID_LAYOUT = (
    "\nExpected the SegNet CamVid layout: <root>/{train,val,test}/*.png|jpg and <root>/{train,val,test}annot/*.png"
)
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
    image_rule, mask_rule, _ = folder_rules(cfg)
    return pair_by_stem(
        root / cfg.image_dir.format(split=split),
        root / cfg.mask_dir.format(split=split),
        stems,
        FOLDER_LAYOUT,
        image_rule,
        mask_rule,
        propose=True,
        issues=issues,
    )


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
    return pair_by_stem(
        root / "JPEGImages",
        [root / "SegmentationClass", root / "SegmentationClassAug"],
        stems,
        VOC_LAYOUT,
        NameRule(extensions=(".jpg",)),
        issues=issues,
    )


def cityscapes_pairs(cfg, split: str, issues: Optional[List[Issue]] = None) -> List[Pair]:
    root = Path(cfg.root)
    if not root.is_dir():
        report(issues, f"Cityscapes root not found: {root} {ROOT_HINT}.{CITYSCAPES_LAYOUT}")
        return []
    return pair_by_stem(
        root / "leftImg8bit" / split,
        root / "gtFine" / split,
        None,
        CITYSCAPES_LAYOUT,
        NameRule("_leftImg8bit", extensions=(".png",)),
        NameRule("_gtFine_labelIds", extensions=MASK_SUFFIXES),
        recursive=True,
        issues=issues,
    )


def ade20k_pairs(cfg, split: str, issues: Optional[List[Issue]] = None) -> List[Pair]:
    root, folder = Path(cfg.root), ADE20K_SPLITS.get(split, split)
    if not root.is_dir():
        report(issues, f"ADE20K root not found: {root} {ROOT_HINT}.{ADE20K_LAYOUT}")
        return []
    return pair_by_stem(root / "images" / folder, root / "annotations" / folder, None, ADE20K_LAYOUT, issues=issues)


def split_ignore_masks(
    cfg, split: str, pairs: Sequence[Pair], issues: Optional[List[Issue]] = None
) -> Optional[Sequence[Optional[Path]]]:
    """Each pair's ignore mask (data.ignore_mask_dir, folder format); None without that option."""
    if not cfg.ignore_mask_dir or not len(pairs):
        return None
    image_rule, _, ignore_rule = folder_rules(cfg)
    return ignore_masks(
        Path(cfg.root) / cfg.ignore_mask_dir.format(split=split), ignore_rule, image_rule, pairs, issues
    )


def joined_pairs(
    pairs_fn: Callable, cfg, split: str, issues: Optional[List[Issue]] = None
) -> Tuple[Sequence[Pair], Optional[Sequence[Optional[Path]]]]:
    """The pairs of ``a+b+...``, in order, each image once (the first split's mask wins), and their ignore masks.
    One split stays the reader's compact listing; only a join builds a list."""
    parts = [part.strip() for part in split.split("+")]
    if len(parts) == 1:
        found = pairs_fn(cfg, parts[0], issues)
        return found, split_ignore_masks(cfg, parts[0], found, issues)
    pairs: Dict[Path, Tuple[Pair, Optional[Path]]] = {}
    for part in parts:
        found = pairs_fn(cfg, part, issues)
        ignores = split_ignore_masks(cfg, part, found, issues) or [None] * len(found)
        for pair, ignore in zip(found, ignores):
            pairs.setdefault(pair[0], (pair, ignore))
    ignores = [i for _, i in pairs.values()]
    return [p for p, _ in pairs.values()], ignores if any(ignores) else None


FOLDER_ONLY = ("image_suffix", "mask_suffix", "pair_pattern", "ignore_mask_dir", "ignore_mask_suffix")


@dataclass(frozen=True)
class DataFormat:
    """One on-disk format: how its split is read, and the classes, palette and label mapping it brings
    where the config names none (the config wins). Most formats store masks as files and give ``pairs``,
    ``(cfg, split, issues) -> [(image, mask)]``; a format that builds its masks itself (COCO's JSON)
    gives ``dataset``, ``(cfg, split, transform, issues) -> SegDataset``, and names its classes there."""

    pairs: Optional[Callable[..., Sequence[Pair]]] = None
    class_names: Sequence[str] = ()
    palette: Sequence[Sequence[int]] = ()
    label_map: Mapping[int, int] = field(default_factory=dict)  # raw mask value -> class id
    unmapped_ignored: bool = False  # raw values label_map does not name become ignore_index
    dataset: Optional[Callable[..., SegDataset]] = None

    def __post_init__(self):
        if (self.pairs is None) == (self.dataset is None):
            raise TypeError("a DataFormat reads its split with pairs= or with dataset=, exactly one of them")

    def build(self, cfg, split: str, transform=None, issues: Optional[List[Issue]] = None) -> SegDataset:
        return (self.dataset or self._files_dataset)(cfg, split, transform, issues)

    def _files_dataset(self, cfg, split: str, transform=None, issues: Optional[List[Issue]] = None) -> SegDataset:
        if not cfg.class_names and self.class_names and len(self.class_names) != cfg.num_classes:
            raise DataError(
                f"the {cfg.format} reader has {len(self.class_names)} classes but data.num_classes="
                f"{cfg.num_classes}; set data.num_classes={len(self.class_names)}, or name your classes "
                f"in data.class_names"
            )
        used = [k for k in FOLDER_ONLY if getattr(cfg, k)]
        if used and cfg.format != "folder":
            raise DataError(
                f"data.{used[0]} applies to data.format=folder only; the {cfg.format} reader knows its "
                f"layout: remove data.{used[0]}"
            )
        names, colours = self.classes(cfg)
        pairs, ignores = joined_pairs(self.pairs, cfg, split, issues)
        return SegDataset(
            pairs,
            cfg.num_classes,
            names,
            colours,
            cfg.ignore_index,
            {**self.label_map, **dict(cfg.label_map)},
            cfg.reduce_zero_label,
            transform,
            name=f"{cfg.format}:{cfg.root}:{split}",
            unmapped_ignored=self.unmapped_ignored,
            ignore_masks=ignores,
            colors=ColorTable.from_config(cfg),
            channels=cfg.channels,
            value_range=cfg.value_range,
        )

    def classes(self, cfg) -> Tuple[List[str], List[List[int]]]:
        """The config's class names and palette, else this format's where the counts agree, else ``class_<i>``
        and no palette."""
        n = cfg.num_classes
        table = ColorTable.from_config(cfg) if cfg.get("class_colors") else None
        if table is not None:  # colour masks: the CSV's names, and the user's colours as the palette
            names = list(cfg.class_names) or table.names or [f"class_{i}" for i in range(n)]
            return names, [list(c) for c in cfg.palette] or table.palette
        names = list(cfg.class_names) or (
            list(self.class_names) if len(self.class_names) == n else [f"class_{i}" for i in range(n)]
        )
        palette = [list(c) for c in cfg.palette] or ([list(c) for c in self.palette] if len(self.palette) == n else [])
        return names, palette


# data.format -> its DataFormat. Adding a format is one reader above and one entry here (docs/extending.md).
FORMATS: Dict[str, DataFormat] = {
    "folder": DataFormat(folder_pairs),
    "camvid": DataFormat(camvid_pairs, CAMVID_CLASSES, CAMVID_PALETTE),
    "voc": DataFormat(voc_pairs, VOC_CLASSES),
    "cityscapes": DataFormat(
        cityscapes_pairs, CITYSCAPES_CLASSES, CITYSCAPES_PALETTE, CITYSCAPES_TRAIN_IDS, unmapped_ignored=True
    ),
    "ade20k": DataFormat(ade20k_pairs, ADE20K_CLASSES),  # with data.reduce_zero_label=true
    "coco": DataFormat(dataset=coco_dataset),  # classes from its JSON and data.category_ids
}


def data_format(cfg) -> DataFormat:
    if cfg.format not in FORMATS:
        raise DataError(f"unknown data format '{cfg.format}' (data.format); choose one of {', '.join(FORMATS)}")
    return FORMATS[cfg.format]


def format_classes(cfg) -> Tuple[List[str], List[List[int]]]:
    """Class names and palette of a ``DataConfig``'s data set without listing its files: the config's,
    else its format's (where the counts agree), else ``class_<i>`` and no palette."""
    return data_format(cfg).classes(cfg)


def build_dataset(
    cfg, split: str, transform: Optional[Callable] = None, issues: Optional[List[Issue]] = None
) -> SegDataset:
    """The ``split`` of the data set described by a ``DataConfig``; ``transform`` is applied per item."""
    return data_format(cfg).build(cfg, split, transform, issues)
