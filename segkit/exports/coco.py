"""Predicted masks as a COCO file with RLE masks (pycocotools), which annotation tools (CVAT, Label
Studio, datumaro, FiftyOne) import for pre-labeling. One annotation per (image, class present),
covering all that class's pixels; ``category_id = class id + 1`` (COCO keeps 0 for "no category"),
and the ``categories`` list names them. ``score`` is the mean softmax confidence of the predicted
class over the annotation's pixels.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
from pycocotools import mask as mask_utils


class CocoExport:
    """Collects predicted masks image by image, then writes one COCO JSON."""

    def __init__(self, class_names: Sequence[str]):
        self.class_names = list(class_names)
        self.images: List[Dict[str, Any]] = []
        self.annotations: List[Dict[str, Any]] = []

    def add(self, file_name: str, mask: np.ndarray, confidence: Optional[np.ndarray] = None) -> int:
        """Add one image's H x W class-id mask; returns its image id."""
        image_id = len(self.images) + 1
        h, w = mask.shape
        self.images.append({"id": image_id, "file_name": file_name, "height": int(h), "width": int(w)})
        for cls in np.unique(mask):
            if not 0 <= cls < len(self.class_names):
                continue
            region = mask == cls
            rle = mask_utils.encode(np.asfortranarray(region.astype(np.uint8)))
            rle["counts"] = rle["counts"].decode("ascii")  # bytes are not JSON
            annotation = {"id": len(self.annotations) + 1, "image_id": image_id, "category_id": int(cls) + 1,
                          "segmentation": rle, "area": float(region.sum()),
                          "bbox": [float(v) for v in mask_utils.toBbox(rle)], "iscrowd": 0}
            if confidence is not None:
                annotation["score"] = round(float(confidence[region].mean()), 6)
            self.annotations.append(annotation)
        return image_id

    def to_dict(self) -> Dict[str, Any]:
        categories = [{"id": i + 1, "name": name, "supercategory": "segkit"} for i, name in enumerate(self.class_names)]
        return {"info": {"description": "segkit predictions (category_id = class id + 1)"},
                "images": self.images, "categories": categories, "annotations": self.annotations}

    def save(self, path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict()))
        return path


def decode_coco(path, file_name: str) -> np.ndarray:
    """The class-id mask of ``file_name`` rebuilt from a ``CocoExport`` file (255 where no class)."""
    from pycocotools.coco import COCO

    coco = COCO(str(path))
    image = next(im for im in coco.dataset["images"] if im["file_name"] == file_name)
    mask = np.full((image["height"], image["width"]), 255, np.int64)
    for ann in coco.loadAnns(coco.getAnnIds(imgIds=[image["id"]])):
        mask[coco.annToMask(ann).astype(bool)] = ann["category_id"] - 1
    return mask
