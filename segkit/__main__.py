"""`python -m segkit COMMAND ...`: the same dispatcher as the installed `segkit` command."""

import sys

from segkit.cli import main

if __name__ == "__main__":
    sys.exit(main())
