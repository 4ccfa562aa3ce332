"""Arguments every config-taking command shares: the config (a path or a shipped name) and overrides.

mmsegmentation habits are aliases: ``--cfg-options k=v ...`` adds dotted overrides, ``--amp`` sets train.amp.
"""
from __future__ import annotations

import argparse
from typing import List


def add_config_args(parser: argparse.ArgumentParser, example: str = "sample/deeplabv3plus_r18", amp: bool = False) -> None:
    parser.add_argument("config", help=f"YAML config: a path or a shipped name (`segkit configs`), e.g. {example}")
    add_override_args(parser, amp)


def add_override_args(parser: argparse.ArgumentParser, amp: bool = False) -> None:
    parser.add_argument("overrides", nargs="*", help="dotted overrides, e.g. train.lr=0.02 data.root=/data/x; "
                                                     "{} or null clears an inherited mapping or list")
    parser.add_argument("--cfg-options", nargs="+", default=[], action="extend", metavar="KEY=VALUE",
                        help="mmsegmentation's spelling of the same dotted overrides")
    if amp:
        parser.add_argument("--amp", action="store_const", const="auto",
                            help="mixed precision: train.amp=auto (bf16, or fp16 with a grad scaler, as the device "
                                 "supports); train.amp=bf16|fp16|none picks one")


def overrides_of(args: argparse.Namespace) -> List[str]:
    """Positional overrides, then --cfg-options, then --amp: later ones win."""
    overrides = list(args.overrides) + list(args.cfg_options)
    if getattr(args, "amp", None):
        overrides.append(f"train.amp={args.amp}")
    return overrides
