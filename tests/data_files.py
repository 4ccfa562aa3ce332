"""Writers for the small data sets the data tests build on disk (not a test module)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import cv2
import numpy as np
from PIL import Image

from segkit.config import load_config


def write_image(path: Path, image: np.ndarray) -> Path:
    """RGB (or grey) uint8 array -> file, format from the suffix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR) if image.ndim == 3 else image
    assert cv2.imwrite(str(path), bgr), path
    return path


def write_mask(path: Path, mask: np.ndarray, palette: Optional[Sequence[Sequence[int]]] = None) -> Path:
    """Class ids -> an index file: a palette ('P') image when ``palette`` is given, else grey (16-bit if needed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if palette is not None:
        im = Image.fromarray(mask.astype(np.uint8), mode="P")
        flat = [v for colour in palette for v in colour]
        im.putpalette(flat + [0] * (768 - len(flat)))
    elif mask.max() > 255:
        im = Image.fromarray(mask.astype(np.uint16))
    else:
        im = Image.fromarray(mask.astype(np.uint8))
    im.save(path)
    return path


def random_pair(rng: np.random.Generator, h: int = 24, w: int = 32, values: Sequence[int] = (0, 1, 2)):
    image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    mask = rng.choice(np.asarray(values), size=(h, w))
    return image, mask


def folder_set(root: Path, splits=(("train", 4), ("val", 2)), values=(0, 1, 2), seed: int = 0) -> Path:
    """root/images/<split>/<split>_i.png and root/masks/<split>/<split>_i.png."""
    rng = np.random.default_rng(seed)
    for split, n in splits:
        for i in range(n):
            image, mask = random_pair(rng, values=values)
            write_image(root / "images" / split / f"{split}_{i}.png", image)
            write_mask(root / "masks" / split / f"{split}_{i}.png", mask)
    return root


def data_cfg(**fields):
    """A DataConfig from the defaults with ``fields`` set (validated by the schema)."""
    cfg = load_config(None, [f"data.num_classes={fields.pop('num_classes', 3)}"]).data
    for key, value in fields.items():
        setattr(cfg, key, value)
    return cfg


def write_grey_gif(path: Path, values: np.ndarray) -> Path:
    """0..255 values -> a GIF whose palette is the grey ramp, so readers see the values themselves (as DRIVE's)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    im = Image.fromarray(values.astype(np.uint8), mode="P")
    im.putpalette([v for i in range(256) for v in (i, i, i)])
    im.save(path, optimize=False)
    return path


def drive_set(
    root: Path, n: int = 6, h: int = 40, w: int = 48, first: int = 21, seed: int = 0, split: str = "training"
) -> Path:
    """A DRIVE-like layout, nothing renamed: training/images/NN_training.tif, training/1st_manual/NN_manual1.gif
    (vessels 255, background 0) and training/mask/NN_training_mask.gif (field of view 255, outside 0);
    ``split="test"`` writes test/images/NN_test.tif and so on."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:h, :w]
    fov = (yy - h / 2) ** 2 / (h / 2 - 2) ** 2 + (xx - w / 2) ** 2 / (w / 2 - 2) ** 2 <= 1
    for i in range(first, first + n):
        vessels = np.zeros((h, w), np.uint8)
        for _ in range(3):
            x0, x1 = rng.integers(0, w, 2)
            cv2.line(vessels, (int(x0), 0), (int(x1), h - 1), 255, 2)
        vessels[~fov] = 0
        image = np.where(vessels[..., None] > 0, 60, 170).astype(np.uint8) + rng.integers(
            0, 40, (h, w, 3), dtype=np.uint8
        )
        image[~fov] = 0
        write_image(root / split / "images" / f"{i:02d}_{split}.tif", image)
        write_grey_gif(root / split / "1st_manual" / f"{i:02d}_manual1.gif", vessels)
        write_grey_gif(root / split / "mask" / f"{i:02d}_{split}_mask.gif", fov.astype(np.uint8) * 255)
    return root
