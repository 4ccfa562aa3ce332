"""List the configs shipped with segkit: segkit configs [--path]

Any listed name works where a config path does: `segkit train sample/deeplabv3plus_r18`.
Copy one (`--path` shows where the files are) to make your own; its `base:` lines are relative to it.
"""

import argparse

from segkit.config.files import shipped_configs, shipped_dir


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--path", action="store_true", help="print the folder that holds them instead")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    root = shipped_dir()
    if root is None:
        print("no shipped configs found beside the segkit package")
        return 1
    if args.path:
        print(root)
        return 0
    for name in shipped_configs():
        print(name)
    return 0
