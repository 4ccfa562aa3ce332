"""Arguments every config-taking command shares: the config (a path or a shipped name) and overrides.

mmsegmentation habits are aliases: ``--cfg-options k=v ...`` adds dotted overrides, ``--amp`` sets the command's
precision key to auto (train.amp for train, eval.amp for eval).
"""
from __future__ import annotations

import argparse
from typing import List, Optional


def add_config_args(parser: argparse.ArgumentParser, example: str = "sample/deeplabv3plus_r18",
                    amp_key: Optional[str] = None) -> None:
    parser.add_argument("config", help=f"YAML config: a path or a shipped name (`segkit configs`), e.g. {example}")
    add_override_args(parser, amp_key)


def add_override_args(parser: argparse.ArgumentParser, amp_key: Optional[str] = None) -> None:
    """``amp_key``: the config key ``--amp`` sets to auto (the one the command reads); None: no ``--amp``."""
    parser.add_argument("overrides", nargs="*", help="dotted overrides, e.g. train.lr=0.02 data.root=/data/x; "
                                                     "{} or null clears an inherited mapping or list")
    parser.add_argument("--cfg-options", nargs="+", default=[], action="extend", metavar="KEY=VALUE",
                        help="mmsegmentation's spelling of the same dotted overrides")
    if amp_key:
        scaler = " with a grad scaler" if amp_key == "train.amp" else ""
        parser.add_argument("--amp", action="store_const", const=f"{amp_key}=auto",
                            help=f"mixed precision: {amp_key}=auto (bf16, or fp16{scaler}, as the device "
                                 f"supports); {amp_key}=bf16|fp16|none picks one")


def overrides_of(args: argparse.Namespace) -> List[str]:
    """Positional overrides, then --cfg-options, then --amp: later ones win."""
    overrides = list(args.overrides) + list(args.cfg_options)
    if getattr(args, "amp", None):
        overrides.append(args.amp)  # "<amp_key>=auto"
    return overrides
