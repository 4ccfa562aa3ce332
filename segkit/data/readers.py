"""Readers, one per on-disk format: each finds the (image, mask) pairs of a split and knows its classes.

``build_dataset(cfg, split)`` is the entry point. ``split`` may join splits with ``+``
(``train+val``; VOC ``train+aug``): their pairs are concatenated, an image listed twice kept once.
Every reader takes ``issues``: None raises on the first problem, a list collects them all
(``tools/check_dataset.py``). Layouts and sources: ``data/README.md``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Dict, List, Optional

from .coco import coco_dataset
from .datasets import Pair, SegDataset, pair_by_stem, read_split_file
from .io import DataError, Issue, report

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

CAMVID_CLASSES = ["Sky", "Building", "Pole", "Road", "Pavement", "Tree", "SignSymbol", "Fence", "Car",
                  "Pedestrian", "Bicyclist"]
CAMVID_PALETTE = [[128, 128, 128], [128, 0, 0], [192, 192, 128], [128, 64, 128], [60, 40, 222], [128, 128, 0],
                  [192, 128, 128], [64, 64, 128], [64, 0, 128], [64, 64, 0], [0, 128, 192]]
VOC_CLASSES = ["background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
               "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train",
               "tvmonitor"]
CITYSCAPES_CLASSES = ["road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign",
                      "vegetation", "terrain", "sky", "person", "rider", "car", "truck", "bus", "train",
                      "motorcycle", "bicycle"]
CITYSCAPES_PALETTE = [[128, 64, 128], [244, 35, 232], [70, 70, 70], [102, 102, 156], [190, 153, 153],
                      [153, 153, 153], [250, 170, 30], [220, 220, 0], [107, 142, 35], [152, 251, 152],
                      [70, 130, 180], [220, 20, 60], [255, 0, 0], [0, 0, 142], [0, 0, 70], [0, 60, 100],
                      [0, 80, 100], [0, 0, 230], [119, 11, 32]]
# cityscapesScripts' labels.py: label id -> train id of the 19 evaluated classes; all other ids are ignored.
CITYSCAPES_TRAIN_IDS = {7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9, 23: 10, 24: 11,
                        25: 12, 26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18}
# ADE20K SceneParsing objectInfo150 (first name of each), values 1..150 of the annotation PNGs.
ADE20K_CLASSES = (
    "wall,building,sky,floor,tree,ceiling,road,bed,windowpane,grass,cabinet,sidewalk,person,earth,door,table,"
    "mountain,plant,curtain,chair,car,water,painting,sofa,shelf,house,sea,mirror,rug,field,armchair,seat,fence,"
    "desk,rock,wardrobe,lamp,bathtub,railing,cushion,base,box,column,signboard,chest of drawers,counter,sand,sink,"
    "skyscraper,fireplace,refrigerator,grandstand,path,stairs,runway,case,pool table,pillow,screen door,stairway,"
    "river,bridge,bookcase,blind,coffee table,toilet,flower,book,hill,bench,countertop,stove,palm,kitchen island,"
    "computer,swivel chair,boat,bar,arcade machine,hovel,bus,towel,light,truck,tower,chandelier,awning,streetlight,"
    "booth,television receiver,airplane,dirt track,apparel,pole,land,bannister,escalator,ottoman,bottle,buffet,"
    "poster,stage,van,ship,fountain,conveyer belt,canopy,washer,plaything,swimming pool,stool,barrel,basket,"
    "waterfall,tent,bag,minibike,cradle,oven,ball,food,step,tank,trade name,microwave,pot,animal,bicycle,lake,"
    "dishwasher,screen,blanket,sculpture,hood,sconce,vase,traffic light,tray,ashcan,fan,pier,crt screen,plate,"
    "monitor,bulletin board,shower,radiator,glass,clock,flag").split(",")
ADE20K_SPLITS = {"train": "training", "val": "validation"}  # the names users type -> ADE's folder names


def folder_pairs(cfg, split: str, issues: Optional[List[Issue]] = None) -> List[Pair]:
    root = Path(cfg.root)
    if not root.is_dir():
        report(issues, f"data root not found: {root} (data.root).{FOLDER_LAYOUT}")
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
        report(issues, f"CamVid root not found: {root} (data.root).{CAMVID_LAYOUT}")
        return []
    return pair_by_stem(root / split, root / f"{split}annot", None, CAMVID_LAYOUT, issues=issues)


def voc_pairs(cfg, split: str, issues: Optional[List[Issue]] = None) -> List[Pair]:
    """Masks come from SegmentationClass, else SegmentationClassAug (SBD), so ``train+aug`` keeps VOC's own
    masks (with their 255 boundaries) for VOC images and takes SBD's for the rest, as mmsegmentation does."""
    root = Path(cfg.root)
    if not root.is_dir():
        report(issues, f"VOC root not found: {root} (data.root).{VOC_LAYOUT}")
        return []
    stems = read_split_file(root / "ImageSets" / "Segmentation" / f"{split}.txt", issues)
    if stems is None:
        return []
    return pair_by_stem(root / "JPEGImages", [root / "SegmentationClass", root / "SegmentationClassAug"], stems,
                        VOC_LAYOUT, image_suffixes=(".jpg",), issues=issues)


def cityscapes_pairs(cfg, split: str, issues: Optional[List[Issue]] = None) -> List[Pair]:
    root = Path(cfg.root)
    if not root.is_dir():
        report(issues, f"Cityscapes root not found: {root} (data.root).{CITYSCAPES_LAYOUT}")
        return []
    return pair_by_stem(root / "leftImg8bit" / split, root / "gtFine" / split, None, CITYSCAPES_LAYOUT,
                        image_suffix="_leftImg8bit", mask_suffix="_gtFine_labelIds", recursive=True,
                        image_suffixes=(".png",), issues=issues)


def ade20k_pairs(cfg, split: str, issues: Optional[List[Issue]] = None) -> List[Pair]:
    root, folder = Path(cfg.root), ADE20K_SPLITS.get(split, split)
    if not root.is_dir():
        report(issues, f"ADE20K root not found: {root} (data.root).{ADE20K_LAYOUT}")
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
