"""Ground-truth overlays in a grid: what ``tools/browse_dataset.py`` draws, so a user sees the data as
the model sees it (optionally after the training augmentation: crops, padding, flips, colour changes).
The drawing (overlay, hatch, captions, legend, saving) is ``segkit.visualization.overlays``'s; this file lays out the grid."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from segkit.data import build_dataset
from segkit.data.normalize import to_display
from segkit.data.transforms import train_transform
from segkit.visualization.overlays import add_legend, draw_text, hatched_overlay, palette_array, save_rgb


def _fit(image: np.ndarray, size: int) -> np.ndarray:
    """Scaled to fit a ``size`` x ``size`` box, on a grey background."""
    h, w = image.shape[:2]
    scale = size / max(h, w)
    resized = cv2.resize(
        image,
        (max(1, round(w * scale)), max(1, round(h * scale))),
        interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_NEAREST,
    )
    cell = np.full((size, size, 3), 64, np.uint8)
    cell[: resized.shape[0], : resized.shape[1]] = resized
    return cell


def browse_grid(dataset, indices: Sequence[int], cols: int = 4, cell: int = 256) -> np.ndarray:
    """RGB uint8 grid of ``dataset[i]`` overlays (after its transform, if any; ignored pixels hatched),
    captioned with the file stem, and a legend of the classes shown on the right."""
    colours = palette_array(dataset.num_classes, dataset.palette)
    cells, present = [], set()
    for i in indices:
        item = dataset[i]
        image = to_display(item["image"].permute(1, 2, 0).numpy())
        mask = item["mask"].numpy()
        present.update(int(v) for v in np.unique(mask) if 0 <= v < dataset.num_classes)
        tile = _fit(hatched_overlay(image, mask, colours), cell)
        draw_text(tile, Path(dataset.pairs[i][0]).stem[:32], (4, 14), 0.4)
        cells.append(tile)
    cols = max(1, min(cols, len(cells)))
    while len(cells) % cols:
        cells.append(np.full((cell, cell, 3), 255, np.uint8))
    grid = np.concatenate([np.concatenate(cells[r : r + cols], axis=1) for r in range(0, len(cells), cols)])
    return add_legend(grid, sorted(present), dataset.class_names, colours)


def browse_dataset(
    cfg, split: str, out: Path, num: int = 16, cols: int = 4, augment: bool = False, seed: int = 0, cell: int = 256
) -> Path:
    """Write the grid of ``num`` evenly spaced samples of ``split`` to ``out`` (a PNG)."""
    dataset = build_dataset(cfg.data, split, train_transform(cfg.data, seed=seed) if augment else None)
    indices = np.linspace(0, len(dataset) - 1, min(num, len(dataset))).round().astype(int).tolist()
    return save_rgb(out, browse_grid(dataset, indices, cols, cell))
