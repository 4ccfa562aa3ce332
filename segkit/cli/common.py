"""What several commands share, so that no command module imports another: the config and its overrides,
argparse value types, the overlay drawing options (visualize, infer), and the inputs, checkpoint and
annotation exports of the commands that predict (infer, studio).

mmsegmentation habits are aliases: ``--cfg-options k=v ...`` adds dotted overrides, ``--amp`` sets the command's
precision key to auto (train.amp for train, eval.amp for eval).
"""

from __future__ import annotations

import argparse
import glob
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from segkit.annotations import WRITERS, AnnotationWriter, WriterOptions, check_formats, make_writer
from segkit.annotations.writer import DEFAULT_IMAGE_ROOT
from segkit.errors import CheckpointError, ConfigError
from segkit.visualization.overlays import class_ids, palette_array

NO_CHECKPOINT = (
    "no --checkpoint given and no best.pth under work_dirs/. Train one first: "
    "`segkit sample-data && segkit train sample/deeplabv3plus_r18` (from a checkout: `make demo`), "
    "or pass --checkpoint PATH."
)


def add_config_args(
    parser: argparse.ArgumentParser, example: str = "sample/deeplabv3plus_r18", amp_key: Optional[str] = None
) -> None:
    parser.add_argument("config", help=f"YAML config: a path or a shipped name (`segkit configs`), e.g. {example}")
    add_override_args(parser, amp_key)


def add_override_args(parser: argparse.ArgumentParser, amp_key: Optional[str] = None) -> None:
    """``amp_key``: the config key ``--amp`` sets to auto (the one the command reads); None: no ``--amp``."""
    parser.add_argument(
        "overrides",
        nargs="*",
        help="dotted overrides, e.g. train.lr=0.02 data.root=/data/x; {} or null clears an inherited mapping or list",
    )
    parser.add_argument(
        "--cfg-options",
        nargs="+",
        default=[],
        action="extend",
        metavar="KEY=VALUE",
        help="mmsegmentation's spelling of the same dotted overrides",
    )
    if amp_key:
        scaler = " with a grad scaler" if amp_key == "train.amp" else ""
        parser.add_argument(
            "--amp",
            action="store_const",
            const=f"{amp_key}=auto",
            help=f"mixed precision: {amp_key}=auto (bf16, or fp16{scaler}, as the device "
            f"supports); {amp_key}=bf16|fp16|none picks one",
        )


def overrides_of(args: argparse.Namespace) -> List[str]:
    """Positional overrides, then --cfg-options, then --amp: later ones win."""
    overrides = list(args.overrides) + list(args.cfg_options)
    if getattr(args, "amp", None):
        overrides.append(args.amp)  # "<amp_key>=auto"
    return overrides


# argparse types for values that must be checked before any work starts: a bad one is a one-line usage
# error naming the option, not a traceback (or a silent clamp) after the model has run.


def opacity(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 (invisible) and 1 (opaque), not {text}")
    return value


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {text}")
    return value


def add_display_bands_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--display-bands",
        type=band_numbers,
        metavar="R,G,B",
        help="1-based bands shown as red, green, blue (e.g. 3,2,1 or 4,3,2), or one band shown as grey "
        "(default: the first three, or the single band as grey); for display only, the model sees all bands",
    )


def band_numbers(text: str) -> Tuple[int, ...]:
    try:
        bands = tuple(int(b) for b in text.split(","))
    except ValueError:
        bands = ()
    if len(bands) not in (1, 3) or min(bands) < 1:
        raise argparse.ArgumentTypeError(f"give three 1-based band numbers such as 3,2,1, or one (grey), not {text}")
    return bands


def check_display_bands(bands: Optional[Sequence[int]], count: int, source: str) -> None:
    """``--display-bands`` against the ``count`` bands of ``source`` (the images, or one image)."""
    if bands is not None and max(bands) > count:
        raise ConfigError(
            f"--display-bands {','.join(map(str, bands))}: {source} has {count} band(s); give band numbers in 1..{count}"
        )


def output_folder(text: str) -> str:
    if Path(text).exists() and not Path(text).is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a file; give a folder (it is made if missing)")
    return text


def add_overlay_options(parser: argparse.ArgumentParser) -> None:
    """The drawing options that visualize and infer share."""
    parser.add_argument("--alpha", type=opacity, default=0.5, help="opacity of the class colours (0..1)")
    parser.add_argument(
        "--min-area",
        type=int,
        help="smallest region (pixels) that gets a label (default: 1/400 of the image, at least 64)",
    )
    parser.add_argument("--no-labels", action="store_true", help="no class names on the regions")
    parser.add_argument("--no-outlines", action="store_true", help="no region outlines (they hide thin structures)")
    parser.add_argument("--no-legend", action="store_true", help="no legend in the corner")
    parser.add_argument(
        "--skip-classes",
        default="",
        help="comma-separated class names or ids left unpainted, unnamed and out of the legend, e.g. background",
    )


def overlay_options(args: argparse.Namespace, class_names: Sequence[str]) -> dict:
    """``render`` keywords from the options of ``add_overlay_options``."""
    return {
        "alpha": args.alpha,
        "outlines": not args.no_outlines,
        "labels": not args.no_labels,
        "legend": not args.no_legend,
        "min_area": args.min_area,
        "skip": class_ids(args.skip_classes, class_names),
    }


def newest_checkpoint() -> Optional[Path]:
    """The most recently written work_dirs/**/best.pth under the current directory."""
    found = {p.resolve() for p in (Path.cwd() / "work_dirs").glob("**/best.pth")}
    return max(found, key=lambda p: p.stat().st_mtime) if found else None


def checkpoint_to_use(given: Optional[str]) -> Path:
    """``given`` (--checkpoint), else the newest one under work_dirs/ (said so); a CheckpointError if neither."""
    if given:
        return Path(given)
    checkpoint = newest_checkpoint()
    if checkpoint is None:
        raise CheckpointError(NO_CHECKPOINT)
    print(f"using the newest checkpoint under work_dirs/: {checkpoint}")
    return checkpoint


def expand(inputs: Sequence[str]) -> Tuple[List[Path], List[str]]:
    """Files named by the inputs (folders: every file in them, sorted; globs expanded), each once in the
    order first named (``photos/ photos/x.jpg`` predicts x once), and problems."""
    files, problems = [], []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            files += sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
        elif path.is_file():
            files.append(path)
        elif glob.has_magic(item):
            matches = sorted(Path(p) for p in glob.glob(item, recursive=True) if Path(p).is_file())
            files += matches
            if not matches:
                problems.append(f"{item}: the pattern matches no file")
        else:
            problems.append(f"{item}: no such file or folder")
    unique: dict = {}  # resolved path -> the path as first named (dicts keep insertion order)
    for path in files:
        unique.setdefault(path.resolve(), path)
    return list(unique.values()), problems


Writers = List[Tuple[str, str, AnnotationWriter]]  # (format, path, writer) for each --export


def add_export_options(parser: argparse.ArgumentParser, what: str) -> None:
    """``--export FORMAT PATH`` (repeatable, any format in segkit.annotations.WRITERS) and its two options."""
    parser.add_argument(
        "--export",
        nargs=2,
        action="append",
        default=[],
        metavar=("FORMAT", "PATH"),
        help=f"{what} (repeatable): 'coco out.json' (RLE masks, category_id = class id + 1; a folder "
        f"gets datumaro's annotations/instances_default.json layout), 'datumaro DIR' (that "
        f"folder, images included) or 'labelstudio tasks.json' (pre-annotations, with "
        f"tasks.label_config.xml beside); formats: {', '.join(WRITERS)}",
    )
    parser.add_argument(
        "--coco-polygons",
        action="store_true",
        help="exports hold polygons (cv2 contours, holes filled) instead of RLE / brush masks, "
        "for polygon-only importers such as Label Studio's COCO importer",
    )
    parser.add_argument(
        "--image-root",
        default=DEFAULT_IMAGE_ROOT,
        help=f"URL prefix of the images in the labelstudio export (default {DEFAULT_IMAGE_ROOT})",
    )


def check_exports(args: argparse.Namespace) -> None:
    """A ConfigError for an --export format without a writer, before any work is done."""
    check_formats(kind for kind, _ in args.export)


def annotation_writers(
    args: argparse.Namespace, class_names: Sequence[str], palette, skip: Sequence[int] = ()
) -> Writers:
    """A writer for each --export, leaving out the ``skip`` classes."""
    options = WriterOptions(
        list(class_names),
        palette_array(len(class_names), palette).tolist(),
        list(skip),
        args.coco_polygons,
        args.image_root,
    )
    return [(kind, path, make_writer(kind, options)) for kind, path in args.export]


def save_annotations(writers: Writers, sources: Dict[str, Path], what: str) -> None:
    """Write each export; ``sources``: the image of each file name added, for the layouts that hold images."""
    for kind, path, writer in writers:
        print(f"{kind} {what}: {writer.save(path, sources)} ({len(sources)} image(s))")
        if writer.note:
            print(f"  ({writer.note})")
