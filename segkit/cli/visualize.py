"""Draw a mask (a prediction or ground truth) over its image: colours, outlines, class names, legend.

    segkit visualize IMAGE MASK [--checkpoint CKPT | --config CFG | --classes a,b,c] [--out PNG]
                     [--alpha A] [--no-outlines] [--no-labels] [--no-legend] [--min-area N]
                     [--skip-classes background,...]
    python tools/visualize.py IMAGE MASK ...   (the same, from a checkout)

Class names come from a checkpoint, a config, or --classes; colours from the mask's own palette
(index PNGs written by tools/infer.py carry one), else the checkpoint's or config's, else the
VOC colour map. The picture has the image's size (the legend sits inside the corner it hides
least), so other tools can lay it over the image.
"""
import argparse
import sys
from pathlib import Path


import numpy as np
from PIL import Image

from segkit.checkpoint import CheckpointError, load_checkpoint
from segkit.cli.arg_types import opacity
from segkit.config import ConfigError, load_config
from segkit.data import DataError, format_classes, read_image, read_mask
from segkit.visualization.overlays import class_ids, render, save_rgb


def add_overlay_options(parser: argparse.ArgumentParser) -> None:
    """The drawing options that visualize and infer share."""
    parser.add_argument("--alpha", type=opacity, default=0.5, help="opacity of the class colours (0..1)")
    parser.add_argument("--min-area", type=int, help="smallest region (pixels) that gets a label "
                                                     "(default: 1/400 of the image, at least 64)")
    parser.add_argument("--no-labels", action="store_true", help="no class names on the regions")
    parser.add_argument("--no-outlines", action="store_true", help="no region outlines (they hide thin structures)")
    parser.add_argument("--no-legend", action="store_true", help="no legend in the corner")
    parser.add_argument("--skip-classes", default="", help="comma-separated class names or ids left unpainted, "
                                                           "unnamed and out of the legend, e.g. background")


def overlay_options(args, class_names) -> dict:
    """``render`` keywords from the options of ``add_overlay_options``."""
    return {"alpha": args.alpha, "outlines": not args.no_outlines, "labels": not args.no_labels,
            "legend": not args.no_legend, "min_area": args.min_area,
            "skip": class_ids(args.skip_classes, class_names)}


def names_and_palette(args, mask: np.ndarray):
    if args.checkpoint:
        meta = load_checkpoint(args.checkpoint).get("meta", {})
        return list(meta["class_names"]), meta.get("palette")
    if args.config:
        names, palette = format_classes(load_config(args.config).data)
        return names, palette or None
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
    parser.add_argument("--config", help="take class names and palette from this config (a path or a shipped name)")
    parser.add_argument("--classes", help="comma-separated class names, in id order")
    parser.add_argument("--out", help="output PNG (default outputs/visualize/<image stem>.png)")
    add_overlay_options(parser)
    args = parser.parse_args(argv)
    try:
        image, mask = read_image(args.image), read_mask(args.mask).astype(np.int64)
        names, palette = names_and_palette(args, mask)
        palette = mask_palette(Path(args.mask), len(names)) or palette
        picture = render(image, mask, names, palette, **overlay_options(args, names))
    except (DataError, ConfigError, CheckpointError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out = save_rgb(args.out or Path("outputs/visualize") / f"{Path(args.image).stem}.png", picture)
    print(f"wrote {out}")
    return 0

