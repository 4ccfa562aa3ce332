#!/usr/bin/env python
"""Checkout form of `segkit convert-masks`: the same command as the installed one."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from segkit.cli import run  # noqa: E402


def main(argv=None) -> int:
    """`segkit convert-masks` with ``argv``: bad input is one 'error:' line and exit 2, as the installed command."""
    return run("convert-masks", argv)


if __name__ == "__main__":
    sys.exit(main())
