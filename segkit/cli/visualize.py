"""Draw a mask (a prediction or ground truth) over its image: colours, outlines, class names, legend.

    python tools/visualize.py IMAGE MASK [--checkpoint CKPT | --config CFG | --classes a,b,c] [--out PNG]

Class names come from a checkpoint, a config, or --classes; colours from the mask's own palette
(index PNGs written by tools/infer.py carry one), else the checkpoint's or config's, else the
VOC colour map.
"""
import argparse
import sys
from pathlib import Path


import numpy as np
from PIL import Image

from segkit.checkpoint import CheckpointError, load_checkpoint
from segkit.cli.arg_types import opacity
from segkit.config import ConfigError, load_config
from segkit.data import READERS, DataError, read_image, read_mask
from segkit.visualize import render, save_rgb


def names_and_palette(args, mask: np.ndarray):
    if args.checkpoint:
        meta = load_checkpoint(args.checkpoint).get("meta", {})
        return list(meta["class_names"]), meta.get("palette")
    if args.config:
        data = load_config(args.config).data
        _, names, palette = READERS.get(data.format, (None, [], []))
        return (list(data.class_names) or names or [f"class_{i}" for i in range(data.num_classes)],
                [list(c) for c in data.palette] or palette or None)
    if args.classes:
        return [n.strip() for n in args.classes.split(",")], None
    return [f"class_{i}" for i in range(int(mask[mask < 255].max(initial=0)) + 1)], None


def mask_palette(path: Path, num_classes: int):
    """The palette stored in an index PNG, if the file has one."""
    with Image.open(path) as im:
        flat = im.getpalette() if im.mode == "P" else None
    if not flat or len(flat) < 3 * num_classes:
        return None
    return [flat[3 * i:3 * i + 3] for i in range(num_classes)]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("image")
    parser.add_argument("mask", help="index PNG of class ids (prediction or ground truth)")
    parser.add_argument("--checkpoint", help="take class names and palette from this checkpoint")
    parser.add_argument("--config", help="take class names and palette from this config")
    parser.add_argument("--classes", help="comma-separated class names, in id order")
    parser.add_argument("--out", help="output PNG (default outputs/visualize/<image stem>.png)")
    parser.add_argument("--alpha", type=opacity, default=0.5, help="opacity of the class colours (0..1)")
    parser.add_argument("--min-area", type=int, help="smallest region (pixels) that gets a label")
    parser.add_argument("--no-labels", action="store_true")
    parser.add_argument("--no-outlines", action="store_true")
    args = parser.parse_args(argv)
    try:
        image, mask = read_image(args.image), read_mask(args.mask).astype(np.int64)
        names, palette = names_and_palette(args, mask)
        palette = mask_palette(Path(args.mask), len(names)) or palette
        picture = render(image, mask, names, palette, alpha=args.alpha, outlines=not args.no_outlines,
                         labels=not args.no_labels, min_area=args.min_area)
    except (DataError, ConfigError, CheckpointError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out = save_rgb(args.out or Path("outputs/visualize") / f"{Path(args.image).stem}.png", picture)
    print(f"wrote {out}")
    return 0

