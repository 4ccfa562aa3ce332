"""Check that a data set can train: segkit check CONFIG [key=value ...] [--splits train val]

(python tools/check_dataset.py in a checkout.)

Counts image/mask pairs per split, lists unpaired, unreadable and mismatched files, shows every label
value found and what it becomes (class or ignored), per-class pixel frequencies and suggested class
weights, image sizes and the training split's channel mean/std; --make-split writes a val split.
Exits 1 when the data set cannot train, 2 on a bad config.
"""

import argparse

from segkit.cli.common import add_config_args, overrides_of
from segkit.config import load_config
from segkit.data.check import check_dataset
from segkit.data.split import make_split


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_config_args(parser, "isbi/unet_r18")
    parser.add_argument("--splits", nargs="+", help="splits to check (default: data.train_split and data.val_split)")
    parser.add_argument("--workers", type=int, help="reader processes (default: data.num_workers)")
    parser.add_argument(
        "--make-split",
        type=float,
        metavar="FRACTION",
        help="first hold out this share of the training pairs as the val split: writes "
        "<root>/splits/{train,val}.txt (data.split_file), then checks",
    )
    args = parser.parse_intermixed_args(argv)
    cfg = load_config(args.config, overrides_of(args))
    if args.make_split is not None:
        lines, settings = make_split(cfg.data, args.make_split)
        print("\n".join(lines))
        for key, value in settings.items():  # check what was written, as training will read it
            setattr(cfg.data, key, value)
    lines, ok = check_dataset(cfg, args.splits, cfg.data.num_workers if args.workers is None else args.workers)
    print("\n".join(lines))
    return 0 if ok else 1
