"""Small data sets, one per shipped data family, for the tool matrix (tests/e2e/test_tool_matrix.py).

CamVid and ISBI are a few real files copied from ../shared/data; VOC, Cityscapes, ADE20K and COCO
are trees built here in each reader's layout; "binary" is a custom folder set of 0/255 square masks.
Each builder returns (config, overrides) for `segkit train`."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.data_files import random_pair, write_image, write_mask

H, W = 40, 56  # small, not square (the binary and ISBI sets are square)


def camvid(root: Path, shared: Path):
    if not (shared / "camvid").is_dir():
        pytest.skip(f"CamVid not found at {shared / 'camvid'}: the real-data rows need a checkout next to ../shared")
    for split, count in (("train", 2), ("val", 1)):
        for sub in (split, f"{split}annot"):
            (root / sub).mkdir(parents=True)
        for image in sorted((shared / "camvid" / split).iterdir())[:count]:
            shutil.copy(image, root / split)
            shutil.copy(shared / "camvid" / f"{split}annot" / f"{image.stem}.png", root / f"{split}annot")
    return "camvid/deeplabv3plus_r18_cpu", []


def isbi(root: Path, shared: Path):
    if not (shared / "isbi_membrane").is_dir():
        pytest.skip(
            f"ISBI not found at {shared / 'isbi_membrane'}: the real-data rows need a checkout next to ../shared"
        )
    for sub in ("image", "label"):
        (root / sub).mkdir(parents=True)
        for stem in ("0", "1", "25"):
            shutil.copy(shared / "isbi_membrane" / sub / f"{stem}.png", root / sub)
    (root / "splits").mkdir()
    (root / "splits" / "train.txt").write_text("0\n1\n")
    (root / "splits" / "val.txt").write_text("25\n")
    return "isbi/unet_r18", ["data.split_file=splits/{split}.txt"]


def voc(root: Path, shared: Path):
    rng = np.random.default_rng(0)
    for stem in ("2007_000032", "2007_000039", "2007_000063"):
        image, mask = random_pair(rng, H, W, values=(0, 15, 255))
        write_image(root / "JPEGImages" / f"{stem}.jpg", image)
        write_mask(root / "SegmentationClass" / f"{stem}.png", mask)
    lists = root / "ImageSets" / "Segmentation"
    lists.mkdir(parents=True)
    (lists / "train.txt").write_text("2007_000032\n2007_000039\n")
    (lists / "val.txt").write_text("2007_000063\n")
    return "voc/deeplabv3_r50_os8", []


def cityscapes(root: Path, shared: Path):
    rng = np.random.default_rng(1)
    for split, count in (("train", 2), ("val", 1)):
        for i in range(count):
            image, ids = random_pair(rng, H, W, values=(7, 8, 26, 0))  # road, sidewalk, car, unlabeled
            stem = f"aachen_{i:06d}_000019"
            write_image(root / "leftImg8bit" / split / "aachen" / f"{stem}_leftImg8bit.png", image)
            write_mask(root / "gtFine" / split / "aachen" / f"{stem}_gtFine_labelIds.png", ids)
    return "cityscapes/fcn_r50_os8", []


def ade20k(root: Path, shared: Path):
    rng = np.random.default_rng(2)
    for split, count in (("training", 2), ("validation", 1)):
        for i in range(count):
            image, mask = random_pair(rng, H, W, values=(0, 1, 3, 150))
            write_image(root / "images" / split / f"ADE_{split}_{i:08d}.jpg", image)
            write_mask(root / "annotations" / split / f"ADE_{split}_{i:08d}.png", mask)
    return "_base/datasets/ade20k", ["name=ade20k_tiny", "model.decoder.name=unet"]  # no ADE20K experiment ships


def coco(root: Path, shared: Path):
    rng = np.random.default_rng(3)
    categories = [{"id": 1, "name": "person"}, {"id": 3, "name": "car"}]
    for split, count in (("train", 2), ("val", 1)):
        images, annotations = [], []
        for i in range(count):
            write_image(root / f"{split}2017" / f"{i:012d}.jpg", rng.integers(0, 256, (H, W, 3), dtype=np.uint8))
            images.append({"id": i + 1, "file_name": f"{i:012d}.jpg", "height": H, "width": W})
            annotations += [
                {
                    "id": 2 * i + 1,
                    "image_id": i + 1,
                    "category_id": 1,
                    "iscrowd": 0,
                    "segmentation": [[2, 2, 20, 2, 20, 30, 2, 30]],
                },
                {
                    "id": 2 * i + 2,
                    "image_id": i + 1,
                    "category_id": 3,
                    "iscrowd": 0,
                    "segmentation": [[30, 10, 50, 10, 50, 35, 30, 35]],
                },
            ]
        (root / "annotations").mkdir(exist_ok=True)
        (root / "annotations" / f"instances_{split}2017.json").write_text(
            json.dumps({"images": images, "annotations": annotations, "categories": categories})
        )
    return "_base/datasets/coco", ["name=coco_tiny", "data.num_classes=3", "model.decoder.name=fcn"]


def binary(root: Path, shared: Path):
    """A custom folder set: square grey images, masks saved as 0/255 (label_map {255: 1} from the ISBI base)."""
    rng = np.random.default_rng(4)
    for split, count in (("train", 2), ("val", 1)):
        for i in range(count):
            image, mask = random_pair(rng, 48, 48, values=(0, 255))
            write_image(root / "images" / split / f"{split}_{i}.png", image[..., 0])
            write_mask(root / "masks" / split / f"{split}_{i}.png", mask)
    return "isbi/unet_r18", [
        "name=binary_tiny",
        "data.split_file=null",
        "data.image_dir=images/{split}",
        "data.mask_dir=masks/{split}",
    ]


FAMILIES = {
    "camvid": camvid,
    "isbi": isbi,
    "voc": voc,
    "cityscapes": cityscapes,
    "ade20k": ade20k,
    "coco": coco,
    "binary": binary,
}

# Tiny and fast everywhere: a ResNet-18 at output stride 32, two steps of two 32x32 crops, no downloads
TINY = [
    "train.iterations=2",
    "train.batch_size=2",
    "train.val_interval=2",
    "train.checkpoint_interval=2",
    "train.log_interval=1",
    "train.device=cpu",
    "train.progress=log",
    "train.tensorboard=false",
    "data.num_workers=0",
    "data.crop_size=[32,32]",
    "data.base_size=null",
    "model.backbone.name=resnet18",
    "model.backbone.output_stride=32",
    "model.backbone.pretrained=null",
    "eval.crop_size=[64,64]",
    "eval.stride=[60,60]",
    "eval.scales=[1.0]",
]
