"""Check that a data set can train: python tools/check_dataset.py CONFIG [key=value ...] [--splits train val]

Counts image/mask pairs per split, lists unpaired, unreadable and mismatched files, shows every label
value found and what it becomes (class or ignored), per-class pixel frequencies and suggested class
weights. Exits 1 when the data set cannot train, 2 on a bad config.
"""
import argparse
import sys
from pathlib import Path


from segkit.cli.common import add_config_args, overrides_of
from segkit.config import ConfigError, load_config
from segkit.data import DataError
from segkit.data.check import check_dataset


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_config_args(parser, "isbi/unet_r18")
    parser.add_argument("--splits", nargs="+", help="splits to check (default: data.train_split and data.val_split)")
    parser.add_argument("--workers", type=int, help="reader processes (default: data.num_workers)")
    args = parser.parse_intermixed_args(argv)
    try:
        cfg = load_config(args.config, overrides_of(args))
        lines, ok = check_dataset(cfg, args.splits, cfg.data.num_workers if args.workers is None else args.workers)
    except (ConfigError, DataError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print("\n".join(lines))
    return 0 if ok else 1

