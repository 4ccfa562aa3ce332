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
