"""Draw a mask (a prediction or ground truth) over its image: colours, outlines, class names, legend.

    segkit visualize IMAGE MASK [--checkpoint CKPT | --config CFG | --classes a,b,c] [--out PNG]
                     [--alpha A] [--no-outlines] [--no-labels] [--no-legend] [--min-area N]
                     [--skip-classes background,...] [--display-bands 3,2,1]
    python tools/visualize.py IMAGE MASK ...   (the same, from a checkout)

Class names come from a checkpoint, a config, or --classes; colours from the mask's own palette
(index PNGs written by tools/infer.py carry one), else the checkpoint's or config's, else the
VOC colour map. A TIFF is read with all its bands (8/16-bit, float); deep images are stretched for
display and --display-bands picks the bands (1-based, default the first three). The picture has the
image's size (the legend sits inside the corner it hides least), so other tools can lay it over the image.
"""

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

from segkit.checkpoint import load_checkpoint
from segkit.cli.common import add_display_bands_option, add_overlay_options, check_display_bands, overlay_options
from segkit.config import load_config
from segkit.data import format_classes, read_image, read_mask
from segkit.data.normalize import to_display
from segkit.visualization.overlays import render, save_rgb


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
    return [flat[3 * i : 3 * i + 3] for i in range(num_classes)]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("image")
    parser.add_argument("mask", help="index PNG of class ids (prediction or ground truth)")
    parser.add_argument("--checkpoint", help="take class names and palette from this checkpoint")
    parser.add_argument("--config", help="take class names and palette from this config (a path or a shipped name)")
    parser.add_argument("--classes", help="comma-separated class names, in id order")
    parser.add_argument("--out", help="output PNG (default outputs/visualize/<image stem>.png)")
    add_overlay_options(parser)
    add_display_bands_option(parser)
    args = parser.parse_args(argv)
    bands = read_image(args.image, channels=None)  # a TIFF's own band count: no model here to decide it
    check_display_bands(args.display_bands, bands.shape[2], args.image)
    image, mask = to_display(bands, args.display_bands), read_mask(args.mask).astype(np.int64)
    names, palette = names_and_palette(args, mask)
    palette = mask_palette(Path(args.mask), len(names)) or palette
    picture = render(image, mask, names, palette, **overlay_options(args, names))
    out = save_rgb(args.out or Path("outputs/visualize") / f"{Path(args.image).stem}.png", picture)
    print(f"wrote {out}")
    return 0
