#!/usr/bin/env python
"""Train a segmentation model: python tools/train.py CONFIG [key=value ...]"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from segkit.config import ConfigError, load_config  # noqa: E402
from segkit.engine import train  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("config", help="YAML config, e.g. configs/sample/deeplabv3plus_r18.yaml")
    parser.add_argument("overrides", nargs="*", help="dotted overrides, e.g. train.lr=0.02")
    parser.add_argument("--work-dir", help="where checkpoints and logs go (default work_dirs/<config name>)")
    parser.add_argument("--resume", help="checkpoint to resume from")
    args = parser.parse_args()
    try:
        cfg = load_config(args.config, args.overrides)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    train(cfg, args.work_dir, args.resume)
    return 0


if __name__ == "__main__":
    sys.exit(main())
