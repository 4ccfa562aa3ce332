"""Ground-truth overlays in a grid: what ``tools/browse_dataset.py`` draws, so a user sees the data as
the model sees it (optionally after the training augmentation: crops, padding, flips, colour changes)."""
from __future__ import annotations

from pathlib import Path
from typing import List, Sequence

import cv2
import numpy as np

from .readers import build_dataset
from .transforms import train_transform


def overlay(image: np.ndarray, mask: np.ndarray, palette: Sequence[Sequence[int]], ignore_index: int,
            alpha: float = 0.5) -> np.ndarray:
    """RGB uint8: class colours blended over the image; ignored pixels keep the image under a white hatch."""
    lut = np.zeros((max(len(palette), 1), 3), np.uint8)
    lut[: len(palette)] = np.asarray(palette, np.uint8).reshape(-1, 3)
    labelled = (mask != ignore_index) & (mask >= 0) & (mask < len(palette))
    colours = lut[np.where(labelled, mask, 0)]
    out = image.astype(np.float32)
    out[labelled] = (1 - alpha) * out[labelled] + alpha * colours[labelled]
    yy, xx = np.mgrid[: mask.shape[0], : mask.shape[1]]
    hatch = ~labelled & ((yy + xx) % 8 < 2)
    out[hatch] = 255
    return out.round().astype(np.uint8)


def _caption(cell: np.ndarray, text: str) -> None:
    for colour, width in (((0, 0, 0), 3), ((255, 255, 255), 1)):
        cv2.putText(cell, text, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, colour, width, cv2.LINE_AA)


def _fit(image: np.ndarray, size: int) -> np.ndarray:
    """Scaled to fit a ``size`` x ``size`` box, on a grey background."""
    h, w = image.shape[:2]
    scale = size / max(h, w)
    resized = cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))),
                         interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_NEAREST)
    cell = np.full((size, size, 3), 64, np.uint8)
    cell[: resized.shape[0], : resized.shape[1]] = resized
    return cell


def _legend(class_names: Sequence[str], palette, present: Sequence[int], width: int) -> np.ndarray:
    rows: List[np.ndarray] = []
    row = np.full((22, width, 3), 255, np.uint8)
    x = 4
    for c in present:
        label = f"{c} {class_names[c]}"
        span = 20 + 7 * len(label)
        if x + span > width and x > 4:
            rows.append(row)
            row, x = np.full((22, width, 3), 255, np.uint8), 4
        cv2.rectangle(row, (x, 5), (x + 12, 17), tuple(int(v) for v in palette[c]), -1)
        cv2.putText(row, label, (x + 16, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
        x += span
    rows.append(row)
    return np.concatenate(rows)


def browse_grid(dataset, indices: Sequence[int], cols: int = 4, cell: int = 256) -> np.ndarray:
    """RGB uint8 grid of ``dataset[i]`` overlays (after its transform, if any), captioned with the file
    stem, and a legend of the classes shown."""
    cells, present = [], set()
    for i in indices:
        item = dataset[i]
        image = item["image"].permute(1, 2, 0).numpy()
        mask = item["mask"].numpy()
        present.update(int(v) for v in np.unique(mask) if 0 <= v < dataset.num_classes)
        tile = _fit(overlay(image, mask, dataset.palette, dataset.ignore_index), cell)
        _caption(tile, Path(dataset.pairs[i][0]).stem[:32])
        cells.append(tile)
    cols = max(1, min(cols, len(cells)))
    while len(cells) % cols:
        cells.append(np.full((cell, cell, 3), 255, np.uint8))
    grid = np.concatenate([np.concatenate(cells[r: r + cols], axis=1) for r in range(0, len(cells), cols)])
    return np.concatenate([grid, _legend(dataset.class_names, dataset.palette, sorted(present), grid.shape[1])])


def browse_dataset(cfg, split: str, out: Path, num: int = 16, cols: int = 4, augment: bool = False,
                   seed: int = 0, cell: int = 256) -> Path:
    """Write the grid of ``num`` evenly spaced samples of ``split`` to ``out`` (a PNG)."""
    dataset = build_dataset(cfg.data, split, train_transform(cfg.data, seed=seed) if augment else None)
    indices = np.linspace(0, len(dataset) - 1, min(num, len(dataset))).round().astype(int).tolist()
    grid = browse_grid(dataset, indices, cols, cell)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(out), cv2.cvtColor(grid, cv2.COLOR_RGB2BGR)):
        raise OSError(f"could not write {out}; use a .png or .jpg path in a writable folder")
    return out
