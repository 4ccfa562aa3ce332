"""Predicted masks as a COCO file for pre-labeling in annotation tools.

RLE masks (pycocotools; the default, lossless): one annotation per (image, class present) covering all
that class's pixels; CVAT, datumaro and FiftyOne import them. Polygons (``polygons=True``, cv2
contours, holes filled): one annotation per connected region, for polygon-only importers such as
Label Studio's (``label-studio-converter import coco`` and label_studio_sdk's converter read
``segmentation`` as a list of polygons and crash on an RLE dict). ``category_id = class id + 1``
(COCO keeps 0 for "no category"); skipped classes get neither annotations nor a category. ``score``
is the mean softmax confidence of the predicted class over the annotation's pixels.

``datumaro``: the same file in the folder layout datumaro's (and CVAT's) COCO importer reads as a data
set, with the images copied in beside it (``coco`` writes it too when given a folder).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence

import numpy as np
from pycocotools import mask as mask_utils

from ..errors import ConfigError, write_text_atomically
from .regions import region_polygons
from .writer import AnnotationWriter, WriterOptions

DATASET_IMAGES = "images/default"  # where datumaro's COCO importer looks for the "default" subset's images


class CocoExport(AnnotationWriter):
    """Collects predicted masks image by image, then writes one COCO JSON."""

    def __init__(self, class_names: Sequence[str], skip: Sequence[int] = (), polygons: bool = False):
        self.class_names = list(class_names)
        self.skip = {int(c) for c in skip}
        self.polygons = polygons
        self.images: List[Dict[str, Any]] = []
        self.annotations: List[Dict[str, Any]] = []

    @classmethod
    def from_options(cls, options: WriterOptions) -> "CocoExport":
        return cls(options.class_names, options.skip, options.polygons)

    @property
    def note(self) -> str:
        if self.polygons:
            return ""
        return (
            "RLE masks: Label Studio's COCO importers read polygons only; for Label Studio use "
            "--export labelstudio, or --coco-polygons"
        )

    def add(self, file_name: str, mask: np.ndarray, confidence: Optional[np.ndarray] = None) -> int:
        """Add one image's H x W class-id mask; returns its image id."""
        image_id = len(self.images) + 1
        h, w = mask.shape
        self.images.append({"id": image_id, "file_name": file_name, "height": int(h), "width": int(w)})
        for cls in np.unique(mask):
            if not 0 <= cls < len(self.class_names) or cls in self.skip:
                continue
            region = mask == cls
            if self.polygons:
                for polygon in region_polygons(region):
                    self._annotate(image_id, cls, [polygon], confidence)
            else:
                rle = mask_utils.encode(np.asfortranarray(region.astype(np.uint8)))
                rle["counts"] = rle["counts"].decode("ascii")  # bytes are not JSON
                self._annotate(image_id, cls, rle, confidence)
        return image_id

    def _annotate(self, image_id: int, cls: int, segmentation, confidence: Optional[np.ndarray]) -> None:
        h, w = self.images[-1]["height"], self.images[-1]["width"]
        rle = (
            segmentation
            if isinstance(segmentation, dict)
            else mask_utils.merge(mask_utils.frPyObjects(segmentation, h, w))
        )
        annotation = {
            "id": len(self.annotations) + 1,
            "image_id": image_id,
            "category_id": int(cls) + 1,
            "segmentation": segmentation,
            "area": float(mask_utils.area(rle)),
            "bbox": [float(v) for v in mask_utils.toBbox(rle)],
            "iscrowd": 0,
        }
        if confidence is not None:
            covered = mask_utils.decode(rle).astype(bool)
            annotation["score"] = round(float(confidence[covered].mean()) if covered.any() else 0.0, 6)
        self.annotations.append(annotation)

    def to_dict(self) -> Dict[str, Any]:
        categories = [
            {"id": i + 1, "name": name, "supercategory": "segkit"}
            for i, name in enumerate(self.class_names)
            if i not in self.skip
        ]
        return {
            "info": {"description": "segkit predictions (category_id = class id + 1)"},
            "images": self.images,
            "categories": categories,
            "annotations": self.annotations,
        }

    def save(self, path, sources: Optional[Mapping[str, Path]] = None) -> Path:
        """Write to ``path`` (a .json file), or, for a folder, to ``path/annotations/instances_default.json``
        beside ``path/images/default/`` holding the ``sources`` under their file names: the layout
        datumaro's (and CVAT's) COCO importer reads as a data set."""
        path = Path(path)
        if path.suffix.lower() != ".json":
            return self._save_folder(path, sources or {})
        return self._write(path)

    def _write(self, path: Path) -> Path:
        return write_text_atomically(path, json.dumps(self.to_dict()))

    def _save_folder(self, folder: Path, sources: Mapping[str, Path]) -> Path:
        (folder / DATASET_IMAGES).mkdir(parents=True, exist_ok=True)
        for name, source in sources.items():
            target = folder / DATASET_IMAGES / name
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.resolve() != Path(source).resolve():
                shutil.copy2(source, target)
        return self._write(folder / "annotations" / "instances_default.json")


class DatumaroExport(CocoExport):
    """A COCO file in datumaro's data set layout, images included: always a folder."""

    note = ""  # datumaro and CVAT read RLE masks

    def save(self, path, sources: Optional[Mapping[str, Path]] = None) -> Path:
        if Path(path).suffix.lower() == ".json":
            raise ConfigError(
                f"--export datumaro {path}: datumaro writes a folder (annotations/ and images/); "
                f"give a folder, or use --export coco {path} for one COCO file"
            )
        return self._save_folder(Path(path), sources or {})


def decode_coco(path, file_name: str) -> np.ndarray:
    """The class-id mask of ``file_name`` rebuilt from a ``CocoExport`` file (255 where no class)."""
    from pycocotools.coco import COCO

    coco = COCO(str(path))
    image = next(im for im in coco.dataset["images"] if im["file_name"] == file_name)
    mask = np.full((image["height"], image["width"]), 255, np.int64)
    for ann in coco.loadAnns(coco.getAnnIds(imgIds=[image["id"]])):
        mask[coco.annToMask(ann).astype(bool)] = ann["category_id"] - 1
    return mask
