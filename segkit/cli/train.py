"""Train a segmentation model.

segkit train CONFIG [key=value ...] [--cfg-options k=v ...] [--amp] [--work-dir DIR] [--resume [auto|none|PATH]]
             [--init-from PATH]
segkit train sample/deeplabv3plus_r18 train.lr=0.01     (CONFIG: a path or a shipped name, `segkit configs`)
torchrun --nproc_per_node=N -m segkit train CONFIG ...   (DDP, one process per GPU)
python tools/train.py CONFIG ...                         (the same, from a checkout)
"""

import argparse
import signal
import sys
from pathlib import Path

from segkit.cli.common import add_config_args, overrides_of
from segkit.config import load_config
from segkit.training.engine import TrainingInterrupted, train


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_args(parser, amp_key="train.amp")
    parser.add_argument("--work-dir", help="where checkpoints and logs go (default work_dirs/<config name>)")
    parser.add_argument(
        "--resume",
        nargs="?",
        const="auto",
        metavar="auto|none|PATH",
        help="continue a run: 'auto' (the default when the flag is bare) takes the work dir's "
        "last checkpoint, or starts fresh if there is none; 'none' starts fresh (an earlier "
        "run's files move to <work dir>/previous/); or give a checkpoint path",
    )
    parser.add_argument(
        "--init-from",
        metavar="PATH",
        help="start a new run from a checkpoint's weights; layers that do not fit (e.g. the "
        "classifier for another class count) are re-initialised and listed",
    )
    args = parser.parse_intermixed_args(argv)  # overrides may come before or after the options
    if args.resume and "=" in args.resume and not Path(args.resume).exists():
        args.overrides.append(args.resume)  # `--resume key=value`: a bare --resume, then an override
        args.resume = "auto"
    if args.resume and args.init_from:
        parser.error("--resume and --init-from exclude each other: resume continues a run, init-from starts one")
    cfg = load_config(args.config, overrides_of(args))  # a SegkitError here or below: one line (segkit.cli)
    try:
        train(cfg, args.work_dir, args.resume, args.init_from)
    except TrainingInterrupted as exc:
        print(f"stopped: {exc}", file=sys.stderr)
        return 128 + exc.signum  # the shell's convention for "ended by this signal"
    except KeyboardInterrupt:
        print(
            "stopped by a second Ctrl-C without a checkpoint; --resume auto continues from the last one",
            file=sys.stderr,
        )
        return 128 + signal.SIGINT
    return 0
