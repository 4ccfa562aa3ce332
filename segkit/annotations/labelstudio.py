"""Predicted masks as Label Studio tasks with pre-annotations (``predictions``), ready for its JSON import.

One task per image; one result per (image, class present) as a brush mask (``brushlabels``, Label
Studio's own brush RLE: its packages' ``mask2rle`` where one is installed, else ``brush_rle``
below, which writes the same format), or,
with ``polygons=True``, one ``polygonlabels`` result per connected region (cv2 contours, points in
percent of the image size). ``labeling_config`` is the matching labeling interface (XML) to paste
into the project's settings; ``from_name``/``to_name`` tie the results to it.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence
from xml.sax.saxutils import quoteattr

import numpy as np

from ..errors import write_text_atomically
from .regions import region_polygons
from .writer import DEFAULT_IMAGE_ROOT, AnnotationWriter, WriterOptions

RUN_BITS = (3, 4, 8, 16)  # the run-length field widths Label Studio's encoder declares in every header


def brush_rle(mask: np.ndarray) -> List[int]:
    """Label Studio's brush RLE of a uint8 H x W mask (the bytes of its RGBA image, each channel the mask):
    a 32-bit length, the 5-bit word size and four 4-bit run widths, then per run a series flag, the
    index of its width, the length - 1 and the 8-bit value; padded to whole bytes."""
    values = np.repeat(mask.reshape(-1).astype(np.uint8), 4)
    starts = np.r_[0, np.flatnonzero(values[1:] != values[:-1]) + 1]
    lengths = np.diff(np.r_[starts, values.size])
    bits = [f"{values.size:032b}{7:05b}" + "".join(f"{b - 1:04b}" for b in RUN_BITS)]
    for start, length in zip(starts.tolist(), lengths.tolist()):
        while length > 0:
            n = min(length, 1 << RUN_BITS[-1])
            width = next(i for i, b in enumerate(RUN_BITS) if n - 1 < 1 << b)
            bits.append(f"1{width:02b}{n - 1:0{RUN_BITS[width]}b}{values[start]:08b}")
            length -= n
    return np.packbits(np.frombuffer("".join(bits).encode(), np.uint8) - ord("0")).tolist()


def brush_encoder():
    """Label Studio's own encoder where one of its packages is installed, else ``brush_rle``. Neither
    is a segkit dependency: label_studio_sdk pins opencv < 4.13, and label-studio-converter installs
    a top-level ``tests`` package that shadows a project's own."""
    for module in ("label_studio_sdk.converter.brush", "label_studio_converter.brush"):
        try:
            return importlib.import_module(module).mask2rle
        except ImportError:
            continue
    return brush_rle


class LabelStudioExport(AnnotationWriter):
    """Collects predicted masks image by image, then writes one Label Studio tasks JSON."""

    def __init__(
        self,
        class_names: Sequence[str],
        palette: Sequence[Sequence[int]],
        skip: Sequence[int] = (),
        polygons: bool = False,
        image_root: str = DEFAULT_IMAGE_ROOT,
        from_name: str = "label",
        to_name: str = "image",
    ):
        self.class_names, self.palette = list(class_names), [list(c) for c in palette]
        self.skip, self.polygons, self.image_root = {int(c) for c in skip}, polygons, image_root
        self.from_name, self.to_name = from_name, to_name
        self.encode = None if polygons else brush_encoder()
        self.tasks: List[Dict[str, Any]] = []

    @classmethod
    def from_options(cls, options: WriterOptions) -> "LabelStudioExport":
        return cls(options.class_names, options.palette, options.skip, options.polygons, options.image_root)

    def add(self, file_name: str, mask: np.ndarray, confidence: Optional[np.ndarray] = None) -> None:
        """Add one image's H x W class-id mask as a task with one prediction."""
        h, w = mask.shape
        results = []
        for cls in np.unique(mask):
            if not 0 <= cls < len(self.class_names) or cls in self.skip:
                continue
            region = mask == cls
            for value in self._values(region, w, h):
                result = {
                    "id": f"r{len(self.tasks)}_{len(results)}",
                    "from_name": self.from_name,
                    "to_name": self.to_name,
                    "type": self.kind,
                    "original_width": int(w),
                    "original_height": int(h),
                    "image_rotation": 0,
                    "value": {**value, self.kind: [self.class_names[cls]]},
                }
                if confidence is not None:
                    result["score"] = round(float(confidence[region].mean()), 6)
                results.append(result)
        prediction: Dict[str, Any] = {"model_version": "segkit", "result": results}
        if confidence is not None:
            prediction["score"] = round(float(confidence.mean()), 6)
        self.tasks.append({"data": {self.to_name: self.image_root + file_name}, "predictions": [prediction]})

    @property
    def kind(self) -> str:
        return "polygonlabels" if self.polygons else "brushlabels"

    def _values(self, region: np.ndarray, w: int, h: int) -> List[Dict[str, Any]]:
        if not self.polygons:
            return [{"format": "rle", "rle": [int(v) for v in self.encode(region.astype(np.uint8) * 255)]}]
        return [
            {"points": [[x * 100.0 / w, y * 100.0 / h] for x, y in zip(p[0::2], p[1::2])], "closed": True}
            for p in region_polygons(region)
        ]

    def labeling_config(self) -> str:
        tag = "PolygonLabels" if self.polygons else "BrushLabels"
        labels = "\n".join(
            f'    <Label value={quoteattr(name)} background="#{r:02x}{g:02x}{b:02x}"/>'
            for i, (name, (r, g, b)) in enumerate(zip(self.class_names, self.palette))
            if i not in self.skip
        )
        return (
            f'<View>\n  <Image name="{self.to_name}" value="${self.to_name}" zoom="true"/>\n'
            f'  <{tag} name="{self.from_name}" toName="{self.to_name}">\n{labels}\n  </{tag}>\n</View>\n'
        )

    def save(self, path, sources: Optional[Mapping[str, Path]] = None) -> Path:
        """Write the tasks to ``path`` and the labeling interface beside it (``<stem>.label_config.xml``)."""
        path = Path(path)
        write_text_atomically(path, json.dumps(self.tasks))
        write_text_atomically(path.with_suffix(".label_config.xml"), self.labeling_config())
        return path
