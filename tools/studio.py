#!/usr/bin/env python
"""Checkout form of `segkit studio`: the same main(argv) as the installed command."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from segkit.cli.studio import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
