"""`segkit <command>`: one module per command, each with its own main(argv); what commands share is in
common.py, and no command module imports another.

Adding a command is one line in COMMANDS: its name, the module holding main(argv), and a one-line help.
tools/<name>.py in a checkout run the same command through ``run``.

A command raises a SegkitError for bad input; ``run`` catches it once and prints one ``error: ...`` line
(exit code 2, or the error's own). Any other exception is a bug in segkit and keeps its traceback.
"""

from __future__ import annotations

import importlib
import sys
from typing import Optional, Sequence

from segkit.errors import SegkitError, one_line

COMMANDS = {
    "train": ("segkit.cli.train", "train a model from a config (a path or a shipped name)"),
    "eval": ("segkit.cli.eval", "evaluate a checkpoint: per-class IoU, confusion matrix, comparisons"),
    "infer": ("segkit.cli.infer", "segment images with a checkpoint: masks and overlays"),
    "export": ("segkit.cli.export", "export a checkpoint to ONNX or TorchScript"),
    "check": ("segkit.cli.check", "check that a data set can train: pairs, labels, class frequencies"),
    "browse": ("segkit.cli.browse", "draw ground-truth overlays of a split, optionally augmented"),
    "visualize": ("segkit.cli.visualize", "draw a mask over its image with class names and a legend"),
    "info": ("segkit.cli.info", "parameters, GFLOPs and feature shapes of a config's model"),
    "sample-data": ("segkit.data.sample", "write the built-in sample data set (default data/sample)"),
    "pretrained": ("segkit.cli.pretrained", "torchvision's COCO-with-VOC-labels segmenters as segkit checkpoints"),
    "configs": ("segkit.cli.configs", "list the configs shipped with segkit"),
    "studio": ("segkit.cli.studio", "label regions in the browser: review predictions, correct them, save masks"),
    "convert-masks": ("segkit.cli.convert_masks", "convert colour-coded masks (class_dict.csv colours) to index PNGs"),
}


def usage() -> str:
    width = max(len(name) for name in COMMANDS)
    lines = [f"  {name:<{width}}  {help_}" for name, (_, help_) in COMMANDS.items()]
    return (
        "usage: segkit COMMAND [args...]   (segkit COMMAND --help for a command's options)\n\n"
        "commands:\n" + "\n".join(lines)
    )


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return 0
    if argv[0] in ("-V", "--version"):
        from segkit import __version__

        print(f"segkit {__version__}")
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"segkit: unknown command '{name}'\n\n{usage()}", file=sys.stderr)
        return 2
    sys.argv[0] = f"segkit {name}"  # argparse takes its usage line's program name from here
    return run(name, rest)


def run(name: str, argv: Optional[Sequence[str]] = None) -> int:
    """Command ``name``'s main(argv) (argv None: sys.argv[1:]); a SegkitError is one line on stderr and its
    exit code."""
    module = importlib.import_module(COMMANDS[name][0])
    try:
        return module.main(None if argv is None else list(argv)) or 0
    except SegkitError as exc:
        print(f"error: {one_line(exc)}", file=sys.stderr)
        return exc.exit_code
