"""COCO: instance or stuff annotation JSON -> semantic masks, rasterised with pycocotools on each read.

Class i is category ``data.category_ids[i]``, where id 0 stands for the pixels no annotation covers
(background); with ``category_ids`` empty the classes are background then every category of the
JSON by id. Annotations of categories not listed are dropped, as torchvision's references do, so
their pixels fall to background (or to ignore_index when 0 is not listed). Crowd regions, and
pixels that two listed categories both claim, are ignored. Polygons and RLE (compressed or not)
are both read by ``pycocotools.COCO.annToMask``.
"""

from __future__ import annotations

import contextlib
import io
import json
from functools import lru_cache
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

from .datasets import LUT_SIZE, SegDataset
from .io import ROOT_HINT, DataError, Issue, report
from .pairing import name_list

VOID = LUT_SIZE - 1  # raw value of crowd and contested pixels; no COCO category has this id
COCO_LAYOUT = """
Expected the COCO layout: <root>/<image_dir>/<file_name> for every image of the JSON and
<root>/<annotation_file>, with data.image_dir='{split}2017' and
data.annotation_file='annotations/instances_{split}2017.json' (or stuff_{split}2017.json)."""


@lru_cache(maxsize=4)
def load_coco(path: str):
    """A ``pycocotools.coco.COCO`` index of ``path``, with errors that say what is wrong with the file."""
    from pycocotools.coco import COCO

    try:
        data = json.loads(Path(path).read_text())
    except OSError as exc:
        raise DataError(
            f"cannot read COCO annotation file {path} ({exc}) (data.annotation_file).{COCO_LAYOUT}"
        ) from exc
    except json.JSONDecodeError as exc:
        raise DataError(f"COCO annotation file {path} is not valid JSON ({exc}); re-download or re-export it") from exc
    missing = [k for k in ("images", "annotations", "categories") if not isinstance(data, dict) or k not in data]
    if missing:
        raise DataError(f"{path} is not a COCO annotation file: no {', '.join(missing)} list(s)")
    coco = COCO()
    coco.dataset = data
    with contextlib.redirect_stdout(io.StringIO()):  # createIndex prints progress
        coco.createIndex()
    return coco


def rasterise(coco, image_id: int, listed: set) -> np.ndarray:
    """int32 H x W of category ids: 0 where no listed annotation lies, VOID on crowds and contested pixels."""
    info = coco.imgs[image_id]
    raw = np.zeros((info["height"], info["width"]), np.int32)
    void = np.zeros(raw.shape, bool)
    for ann in coco.imgToAnns.get(image_id, []):
        if ann["category_id"] not in listed or not ann.get("segmentation"):
            continue
        region = coco.annToMask(ann).astype(bool)
        if ann.get("iscrowd", 0):
            void |= region
            continue
        void |= region & (raw != 0) & (raw != ann["category_id"])
        raw[region] = ann["category_id"]
    raw[void] = VOID
    return raw


class CocoDataset(SegDataset):
    """``pairs`` hold (image file, annotation JSON); ``image_ids`` the COCO id of each image."""

    def __init__(self, pairs, image_ids: List[int], category_ids: List[int], **kwargs):
        super().__init__(pairs, **kwargs)
        self.image_ids, self.category_ids = list(image_ids), list(category_ids)
        self.listed = set(category_ids) - {0}

    def raw_mask(self, index: int) -> np.ndarray:
        return rasterise(load_coco(str(self.pairs[index][1])), self.image_ids[index], self.listed)

    def size_mismatch(self, index: int, image_shape, mask_shape) -> str:
        (ih, iw), (mh, mw) = image_shape, mask_shape
        image_path, json_path = self.pairs[index]
        return (
            f"image {image_path} is {iw}x{ih} (W x H) but {json_path} says {mw}x{mh} (width, height of image "
            f"id {self.image_ids[index]}): the image file does not belong to this annotation file, or was resized "
            f"after annotation. Restore the original image."
        )


def coco_dataset(cfg, split: str, transform=None, issues: Optional[List[Issue]] = None) -> CocoDataset:
    """The reader for ``data.format=coco``; ``split`` may join splits with ``+``."""
    root = Path(cfg.root)
    if not root.is_dir():
        report(issues, f"COCO root not found: {root} {ROOT_HINT}.{COCO_LAYOUT}")
    pairs, image_ids, categories = [], [], {}
    for part in (p.strip() for p in split.split("+")) if root.is_dir() else ():
        json_path = root / cfg.annotation_file.format(split=part)
        if not json_path.is_file():
            report(issues, f"COCO annotation file not found: {json_path} (data.annotation_file).{COCO_LAYOUT}")
            continue
        coco = load_coco(str(json_path))
        for cat in coco.cats.values():
            categories.setdefault(cat["id"], cat["name"])
        image_dir = root / cfg.image_dir.format(split=part)
        missing = []
        for image_id in sorted(coco.imgs):
            path = image_dir / coco.imgs[image_id]["file_name"]
            if path.is_file():
                pairs.append((path, json_path))
                image_ids.append(image_id)
            else:
                missing.append(coco.imgs[image_id]["file_name"])
        if missing:
            report(
                issues,
                f"{len(missing)} image(s) named in {json_path} are missing from {image_dir}: "
                f"{name_list(missing, issues)}. Restore them, or check "
                f"data.image_dir.{COCO_LAYOUT}",
            )
    if not pairs and root.is_dir():
        report(
            issues, f"COCO split '{split}' of {root} has no images with files (data.annotation_file, data.image_dir)"
        )
    category_ids = list(cfg.category_ids) or [0] + sorted(categories)
    unknown = [c for c in category_ids if c != 0 and c not in categories]
    if unknown and categories:
        raise DataError(
            f"data.category_ids names id(s) {unknown} that {cfg.annotation_file} does not define; "
            f"its categories are " + ", ".join(f"{i} {n}" for i, n in sorted(categories.items())[:100])
        )
    names = list(cfg.class_names) or [
        "background" if c == 0 else categories.get(c, f"category_{c}") for c in category_ids
    ]
    if len(category_ids) != cfg.num_classes:
        raise DataError(
            f"data.num_classes={cfg.num_classes} but the COCO classes are {len(category_ids)} "
            f"({'data.category_ids' if cfg.category_ids else 'background + every category of the JSON'}); "
            f"set data.num_classes={len(category_ids)}, or list the category ids to use in data.category_ids"
        )
    label_map: Dict[int, int] = {c: i for i, c in enumerate(category_ids)}
    return CocoDataset(
        pairs,
        image_ids,
        category_ids,
        num_classes=cfg.num_classes,
        class_names=names,
        palette=[list(c) for c in cfg.palette],
        ignore_index=cfg.ignore_index,
        label_map={**label_map, **dict(cfg.label_map)},
        reduce_zero_label=False,
        transform=transform,
        name=f"coco:{cfg.root}:{split}",
        unmapped_ignored=True,
    )
