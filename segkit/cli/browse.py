"""Draw ground-truth overlays: segkit browse CONFIG [key=value ...] [--augment] [--num 16]

(python tools/browse_dataset.py in a checkout.)

Writes a grid of N samples of a split with their masks blended over the images (ignored pixels
hatched white), optionally after the training augmentation, so you see exactly what the model sees.
"""

import argparse
from pathlib import Path

from segkit.cli.common import add_config_args, overrides_of
from segkit.config import load_config
from segkit.visualization.browse import browse_dataset


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_config_args(parser)
    parser.add_argument("--split", help="split to draw (default: data.train_split)")
    parser.add_argument("--num", type=int, default=16, help="samples, evenly spaced over the split (default 16)")
    parser.add_argument("--cols", type=int, default=4, help="grid columns (default 4)")
    parser.add_argument("--augment", action="store_true", help="apply the training augmentation first")
    parser.add_argument("--seed", type=int, default=0, help="augmentation seed (default 0)")
    parser.add_argument("--cell", type=int, default=256, help="cell size in pixels (default 256)")
    parser.add_argument("--out", help="output PNG (default outputs/browse/<config>_<split>[_aug].png)")
    args = parser.parse_intermixed_args(argv)
    cfg = load_config(args.config, overrides_of(args))
    split = args.split or cfg.data.train_split
    out = args.out or f"outputs/browse/{cfg.name}_{split}{'_aug' if args.augment else ''}.png"
    path = browse_dataset(cfg, split, Path(out), args.num, args.cols, args.augment, args.seed, args.cell)
    print(f"wrote {path}")
    return 0
