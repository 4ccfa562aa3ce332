"""The built-in sample data set: textured shapes over textured backgrounds, in the ``folder`` layout.

Deterministic (image i of a split always comes from the same seed) and written in seconds:

    segkit sample-data data/sample   (or: python -m segkit.data.sample data/sample)

Six classes: background plus five shapes of varied sizes that overlap. Each class has its own
texture family (stripes, checks, dots, speckle, outlined flat) in random colours, so a model has to
use texture and shape, not colour alone.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Tuple

import cv2
import numpy as np

CLASS_NAMES = ["background", "disc", "box", "triangle", "ring", "bar"]
SPLITS = {"train": 240, "val": 60}
SIZE = 128


def _hsv_colour(rng: np.random.Generator, hue: float, value: Tuple[float, float], spread: float = 25.0) -> np.ndarray:
    h = (hue + rng.uniform(-spread, spread)) % 180
    s, v = rng.uniform(60, 255), rng.uniform(*value)
    return cv2.cvtColor(np.uint8([[[h, s, v]]]), cv2.COLOR_HSV2RGB)[0, 0].astype(np.float32)


def _colours(rng: np.random.Generator, contrast: bool) -> Tuple[np.ndarray, np.ndarray]:
    """Two colours of independent random hues. A shape's pair always differs clearly in brightness,
    so its pattern stays visible whatever the hues; the colours say nothing about the class."""
    if not contrast:
        return _hsv_colour(rng, rng.uniform(0, 180), (80, 255)), _hsv_colour(rng, rng.uniform(0, 180), (80, 255))
    light, dark = _hsv_colour(rng, rng.uniform(0, 180), (170, 255)), _hsv_colour(rng, rng.uniform(0, 180), (30, 110))
    return (light, dark) if rng.random() < 0.5 else (dark, light)


def _texture(rng: np.random.Generator, cls: int, h: int, w: int, region: np.ndarray | None = None) -> np.ndarray:
    """An H x W x 3 float texture typical of ``cls``: its pattern fixed, its colours random.
    ``region`` (the shape's mask) is for patterns that follow the outline."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    a, b = _colours(rng, contrast=cls != 0)
    if cls == 0:  # background: smooth blotches
        noise = cv2.GaussianBlur(rng.random((h, w)).astype(np.float32), (0, 0), sigmaX=8)
        t = (noise - noise.min()) / (np.ptp(noise) + 1e-6)
    elif cls == 1:  # disc: stripes at a random angle
        ang, period = rng.uniform(0, np.pi), rng.uniform(6, 10)
        t = (np.sin((xx * np.cos(ang) + yy * np.sin(ang)) * 2 * np.pi / period) > 0).astype(np.float32)
    elif cls == 2:  # box: checkerboard
        p = int(rng.integers(3, 7))
        t = (((xx // p) + (yy // p)) % 2).astype(np.float32)
    elif cls == 3:  # triangle: dots on a grid
        p = rng.uniform(6, 9)
        t = ((np.mod(xx, p) - p / 2) ** 2 + (np.mod(yy, p) - p / 2) ** 2 < (p / 3.5) ** 2).astype(np.float32)
    elif cls == 4:  # ring: speckle in 2x2 blocks (survives the downscaling of augmentation)
        t = np.kron(rng.random(((h + 1) // 2, (w + 1) // 2)) > 0.5, np.ones((2, 2)))[:h, :w].astype(np.float32)
    else:  # bar: flat, with an outline in the other colour (the only untextured shape)
        inner = cv2.erode(region.astype(np.uint8), np.ones((3, 3), np.uint8), iterations=2)
        t = (region & (inner == 0)).astype(np.float32)
    return a[None, None] * t[..., None] + b[None, None] * (1 - t[..., None])


def _shape_mask(rng: np.random.Generator, cls: int, size: int) -> np.ndarray:
    m = np.zeros((size, size), np.uint8)
    cx, cy = (int(v) for v in rng.integers(10, size - 10, 2))
    r = int(rng.integers(8, size // 3))
    if cls == 1:
        cv2.circle(m, (cx, cy), r, 1, -1)
    elif cls == 2:
        rect = ((float(cx), float(cy)), (float(r * 2), float(r * rng.uniform(1.0, 2.0))), float(rng.uniform(0, 90)))
        cv2.fillPoly(m, [cv2.boxPoints(rect).astype(np.int32)], 1)
    elif cls == 3:
        angles = rng.uniform(0, 2 * np.pi) + np.array([0, 2.1, 4.2]) + rng.uniform(-0.3, 0.3, 3)
        pts = np.stack([cx + r * 1.2 * np.cos(angles), cy + r * 1.2 * np.sin(angles)], 1).astype(np.int32)
        cv2.fillPoly(m, [pts], 1)
    elif cls == 4:
        cv2.circle(m, (cx, cy), r, 1, max(3, r // 3))
    else:
        length, width = int(rng.integers(size // 3, size)), int(rng.integers(6, 14))
        rect = ((float(cx), float(cy)), (float(length), float(width)), float(rng.uniform(0, 180)))
        cv2.fillPoly(m, [cv2.boxPoints(rect).astype(np.int32)], 1)
    return m.astype(bool)


def make_sample(seed: int, size: int = SIZE) -> Tuple[np.ndarray, np.ndarray]:
    """One (RGB uint8 image, uint8 mask) pair, fully determined by ``seed``."""
    rng = np.random.default_rng(seed)
    image = _texture(rng, 0, size, size)
    mask = np.zeros((size, size), np.uint8)
    for _ in range(int(rng.integers(2, 6))):  # later shapes occlude earlier ones
        cls = int(rng.integers(1, len(CLASS_NAMES)))
        region = _shape_mask(rng, cls, size)
        image[region] = _texture(rng, cls, size, size, region)[region]
        mask[region] = cls
    image += rng.normal(0, 6, image.shape).astype(np.float32)  # sensor noise
    return np.clip(image, 0, 255).astype(np.uint8), mask


def generate(root: str | Path = "data/sample", splits: dict = SPLITS, size: int = SIZE, force: bool = False) -> Path:
    """Write ``root/images/<split>/*.png`` and ``root/masks/<split>/*.png``; skip if already complete."""
    root = Path(root)
    marker = root / "sample.json"
    meta = {"classes": CLASS_NAMES, "splits": splits, "size": size, "version": 4}
    if not force and marker.is_file() and json.loads(marker.read_text()) == meta:
        return root
    for split_index, (split, count) in enumerate(splits.items()):
        (root / "images" / split).mkdir(parents=True, exist_ok=True)
        (root / "masks" / split).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            image, mask = make_sample(seed=split_index * 1_000_000 + i, size=size)
            stem = f"{split}_{i:04d}"
            cv2.imwrite(str(root / "images" / split / f"{stem}.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
            cv2.imwrite(str(root / "masks" / split / f"{stem}.png"), mask)
    marker.write_text(json.dumps(meta))
    return root


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("root", nargs="?", default="data/sample")
    parser.add_argument("--force", action="store_true", help="rewrite even if the set is already there")
    args = parser.parse_args(argv)
    root = generate(args.root, force=args.force)
    print(f"sample data set in {root}: " + ", ".join(f"{n} {s}" for s, n in SPLITS.items()) + " images")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
