"""What the annotation writers share: region polygons and image names that stay distinct."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Dict, List, Sequence

import cv2
import numpy as np


def region_polygons(region: np.ndarray) -> List[List[float]]:
    """Outer contours (cv2) of a boolean mask's connected regions, each a flat [x1, y1, x2, y2, ...]
    in COCO's pixel coordinates (pixel x spans [x, x + 1)). Holes are not kept: COCO and Label Studio
    polygons cannot express them. Traced on the mask doubled in size, so each contour runs a quarter
    pixel inside the region's edge, not through the edge pixels' centres: a polygon drawn back covers
    every pixel's centre, one-pixel-wide vessels included."""
    doubled = np.repeat(np.repeat(region.astype(np.uint8), 2, axis=0), 2, axis=1)
    contours, _ = cv2.findContours(doubled, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    return [[(float(v) + 0.5) / 2 for v in contour.reshape(-1)] for contour in contours]


def unique_file_names(paths: Sequence[Path]) -> Dict[Path, str]:
    """The name each input goes by in an export: its base name, or, when two inputs share a base
    name (``a/img.png``, ``b/img.png``), every input's path relative to their common folder, so an
    importer that keys items by name (CVAT, datumaro) sees them all."""
    paths = [Path(p) for p in paths]
    names = [p.name for p in paths]
    if len(set(names)) == len(names):
        return dict(zip(paths, names))
    absolute = [p.resolve() for p in paths]
    root = Path(os.path.commonpath([p.parent for p in absolute]))
    return {p: a.relative_to(root).as_posix() for p, a in zip(paths, absolute)}


def unique_output_stems(paths: Sequence[Path]) -> Dict[Path, str]:
    """The stem each input's output files start with (``<stem>_mask.png``): its export name
    (``unique_file_names``) without the extension, folders joined by '_'; where that still collides
    (``shot.png``, ``shot.jpg``) the extension stays in (``shot_png``, ``shot_jpg``)."""
    names = unique_file_names(paths)
    stems = {p: Path(n).with_suffix("").as_posix().replace("/", "_") for p, n in names.items()}
    counts = Counter(stems.values())
    stems = {p: s if counts[s] == 1 else names[p].replace("/", "_").replace(".", "_") for p, s in stems.items()}
    taken: Counter = Counter()
    for p, s in stems.items():  # a last resort for names like 'a_b.png' beside 'a/b.png'
        taken[s] += 1
        stems[p] = s if taken[s] == 1 else f"{s}_{taken[s]}"
    return stems
