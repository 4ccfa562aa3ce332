"""Segment images with a trained checkpoint: an index mask and a labelled overlay per image.

    segkit infer INPUT... [--checkpoint CKPT] [--out DIR] [--slide] [--tta] [--device D]
                  [--backend eager|onnxruntime|auto] [--export coco|labelstudio OUT] [--coco-polygons]
                  [--skip-classes background,...] [--alpha A] [--no-outlines] [--no-labels] [--no-legend]
                  [--min-area N]
    python tools/infer.py INPUT ...   (the same, from a checkout)

INPUT: image files, folders (every file in them) or globs ("data/*.jpg"). For each image:
<out>/<stem>_mask.png (palette PNG of class ids, the input's size) and <out>/<stem>_overlay.png
(colours, region outlines, class names, a legend inside a corner; the input's size); inputs
sharing a stem keep their extension in it (shot_png_mask.png, shot_jpg_mask.png), as the exports
keep names apart. Files that cannot be read are reported and skipped; the exit code is 1 if any
were. Without --checkpoint the newest best.pth under work_dirs/ is used. --export writes the
predictions for annotation tools (see segkit/exports/).
"""
import argparse
import glob
import shutil
import sys
import time
from collections import deque
from pathlib import Path


import torch
from tqdm import tqdm

from segkit.checkpoint import CheckpointError, model_from_checkpoint
from segkit.config import ConfigError
from segkit.data import DataError, read_image
from segkit.exports.coco import DATASET_IMAGES, CocoExport
from segkit.exports.labelstudio import DEFAULT_IMAGE_ROOT, LabelStudioExport
from segkit.cli.arg_types import output_folder, positive_int
from segkit.exports.regions import unique_file_names, unique_output_stems
from segkit.inference.predictor import Predictor
from segkit.cli.visualize import add_overlay_options, overlay_options
from segkit.visualization.overlays import palette_array, render, save_index_png, save_rgb

NO_CHECKPOINT = ("no --checkpoint given and no best.pth under work_dirs/. Train one first: "
                 "`segkit sample-data && segkit train sample/deeplabv3plus_r18` (from a checkout: `make demo`), "
                 "or pass --checkpoint PATH.")


def newest_checkpoint() -> Path | None:
    """The most recently written work_dirs/**/best.pth under the current directory."""
    found = {p.resolve() for p in (Path.cwd() / "work_dirs").glob("**/best.pth")}
    return max(found, key=lambda p: p.stat().st_mtime) if found else None


def checkpoint_to_use(given) -> Path | None:
    """``given`` (--checkpoint), else the newest one under work_dirs/; None, after saying why, if neither."""
    checkpoint = given or newest_checkpoint()
    if checkpoint is None:
        print(f"error: {NO_CHECKPOINT}", file=sys.stderr)
    elif not given:
        print(f"using the newest checkpoint under work_dirs/: {checkpoint}")
    return checkpoint


def expand(inputs) -> tuple[list[Path], list[str]]:
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


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders or globs")
    parser.add_argument("--checkpoint", help="segkit checkpoint (default: newest work_dirs/**/best.pth)")
    parser.add_argument("--out", default="outputs/infer", type=output_folder, help="output folder (default outputs/infer)")
    parser.add_argument("--slide", action="store_true", help="sliding-window inference, for images larger than "
                                                             "memory allows in one pass")
    parser.add_argument("--crop-size", type=positive_int, nargs=2, metavar=("H", "W"),
                        help="slide window, with --slide (default eval.crop_size)")
    parser.add_argument("--stride", type=positive_int, nargs=2, metavar=("H", "W"),
                        help="slide step, with --slide (default eval.stride)")
    parser.add_argument("--tta", action="store_true", help="test-time augmentation: flip and scales")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--backend", default="eager", choices=["eager", "onnxruntime", "auto"],
                        help="eager PyTorch; onnxruntime (CPU; the checkpoint exported once, cached beside it); "
                             "auto: the faster of the two on this machine, measured once and cached")
    parser.add_argument("--batch-size", type=positive_int, default=4, help="images of one size per forward pass")
    parser.add_argument("--export", nargs=2, action="append", default=[], metavar=("FORMAT", "PATH"),
                        help="also write the predictions (repeatable): 'coco out.json' (RLE masks, category_id = "
                             "class id + 1; a folder gets datumaro's annotations/instances_default.json layout) or "
                             "'labelstudio tasks.json' (pre-annotations, with tasks.label_config.xml beside)")
    parser.add_argument("--coco-polygons", action="store_true",
                        help="exports hold polygons (cv2 contours, holes filled) instead of RLE / brush masks, "
                             "for polygon-only importers such as Label Studio's COCO importer")
    parser.add_argument("--image-root", default=DEFAULT_IMAGE_ROOT,
                        help=f"URL prefix of the images in the labelstudio export (default {DEFAULT_IMAGE_ROOT})")
    add_overlay_options(parser)  # its --skip-classes also leaves those classes out of the exports
    args = parser.parse_args(argv)
    if (args.crop_size or args.stride) and not args.slide:
        parser.error("--crop-size and --stride set the sliding window, which only --slide uses: add --slide")
    return args


EXPORTS = ("coco", "labelstudio")


def build_exports(args, predictor, skip) -> list:
    """(format, path, exporter) for each --export, leaving out the ``skip`` classes."""
    made = []
    for kind, path in args.export:
        if kind == "coco":
            made.append((kind, path, CocoExport(predictor.class_names, skip, args.coco_polygons)))
        else:
            palette = palette_array(predictor.num_classes, predictor.palette)
            made.append((kind, path, LabelStudioExport(predictor.class_names, palette.tolist(), skip,
                                                       args.coco_polygons, args.image_root)))
    return made


def save_exports(exports, exported, names, polygons: bool) -> None:
    """Write each export; a COCO data set folder also gets the images, under the names it uses."""
    for kind, path, exporter in exports:
        print(f"{kind} predictions: {exporter.save(path)}")
        if kind == "coco" and Path(path).suffix.lower() != ".json":
            for image in exported:
                target = Path(path) / DATASET_IMAGES / names[image]
                target.parent.mkdir(parents=True, exist_ok=True)
                if target.resolve() != image.resolve():
                    shutil.copy2(image, target)
        if kind == "coco" and not polygons:
            print("  (RLE masks: Label Studio's COCO importers read polygons only; for Label Studio use "
                  "--export labelstudio, or --coco-polygons)")


def setup(args, checkpoint):
    """(predictor, render keywords, exports) for the arguments; bad ones raise a one-line error."""
    bad = [kind for kind, _ in args.export if kind not in EXPORTS]
    if bad:
        raise ValueError(f"--export {bad[0]}: the formats are {', '.join(EXPORTS)}")
    model, cfg, meta = model_from_checkpoint(checkpoint)
    for key, value in (("crop_size", args.crop_size), ("stride", args.stride)):
        if value:  # into the config the Predictor is built from: backend auto times this window, not the default
            cfg.eval[key] = list(value)
    predictor = Predictor(model, cfg, meta, args.device, slide=True if args.slide else None, tta=args.tta,
                          backend=args.backend, checkpoint=checkpoint)
    drawing = overlay_options(args, predictor.class_names)
    return predictor, drawing, build_exports(args, predictor, drawing["skip"])


def main(argv=None) -> int:
    args = parse_args(argv)
    checkpoint = checkpoint_to_use(args.checkpoint)
    if checkpoint is None:
        return 2
    try:
        predictor, drawing, exports = setup(args, checkpoint)
    except (CheckpointError, ConfigError, ValueError, ImportError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.backend != "eager":
        record = predictor.backend_record
        print(f"backend: {predictor.backend}" + (f" (auto: {record['seconds']} s per image here, cached)" if record else ""))

    files, failures = expand(args.inputs)
    for problem in failures:
        print(f"skipped: {problem}", file=sys.stderr)
    out, stems = Path(args.out), unique_output_stems(files)
    palette = palette_array(predictor.num_classes, predictor.palette)
    export_names = unique_file_names(files)
    waiting: deque = deque()  # (path, image) read but not yet predicted, in order

    def readable():
        for path in files:
            try:
                image = read_image(path)
            except (DataError, OSError) as exc:
                failures.append(str(exc))
                tqdm.write(f"skipped: {exc}", file=sys.stderr)
                continue
            waiting.append((path, image))
            yield image

    start, exported = time.perf_counter(), []
    results = predictor.predict_many(readable(), args.batch_size, with_confidence=bool(exports))
    try:
        for result in tqdm(results, total=len(files), unit="image", disable=len(files) < 2, file=sys.stderr):
            mask, confidence = result if exports else (result, None)
            path, image = waiting.popleft()
            stem = stems[path]
            save_index_png(out / f"{stem}_mask.png", mask, palette)
            save_rgb(out / f"{stem}_overlay.png", render(image, mask, predictor.class_names, palette, **drawing))
            for _, _, exporter in exports:
                exporter.add(export_names[path], mask, confidence)
            exported.append(path)
    except (torch.OutOfMemoryError, MemoryError):
        where = waiting[0][0] if waiting else "an image"
        print(f"error: out of memory on {where}: use --slide (with a smaller --crop-size) for large images, "
              f"or --batch-size 1", file=sys.stderr)
        return 1
    seconds, done = time.perf_counter() - start, len(exported)
    print(f"{done} image(s) in {seconds:.1f} s ({done / max(seconds, 1e-9):.2f} images/s) -> {out}/<stem>_mask.png, "
          f"<stem>_overlay.png")
    save_exports(exports, exported, export_names, args.coco_polygons)
    if failures:
        print(f"{len(failures)} input(s) failed (listed above as 'skipped')", file=sys.stderr)
        return 1
    return 0

