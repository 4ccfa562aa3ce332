"""Segment images with a trained checkpoint: an index mask and a labelled overlay per image.

    segkit infer INPUT... [--checkpoint CKPT] [--out DIR] [--slide] [--tta] [--device D]
                  [--backend eager|onnxruntime|auto] [--export coco|labelstudio|datumaro OUT] [--coco-polygons]
                  [--skip-classes background,...] [--alpha A] [--no-outlines] [--no-labels] [--no-legend]
                  [--min-area N]
    python tools/infer.py INPUT ...   (the same, from a checkout)

INPUT: image files, folders (every file in them) or globs ("data/*.jpg"). For each image:
<out>/<stem>_mask.png (palette PNG of class ids, the input's size) and <out>/<stem>_overlay.png
(colours, region outlines, class names, a legend inside a corner; the input's size); inputs
sharing a stem keep their extension in it (shot_png_mask.png, shot_jpg_mask.png), as the exports
keep names apart. Files that cannot be read are reported and skipped; the exit code is 1 if any
were. Without --checkpoint the newest best.pth under work_dirs/ is used. --export writes the
predictions for annotation tools (segkit.annotations.WRITERS).
"""

import argparse
import os
import sys
import time
from collections import deque
from pathlib import Path

import torch
from tqdm import tqdm

from segkit.annotations.regions import unique_file_names, unique_output_stems
from segkit.checkpoint import model_from_checkpoint
from segkit.cli.common import (
    add_export_options,
    add_overlay_options,
    annotation_writers,
    check_exports,
    checkpoint_to_use,
    expand,
    output_folder,
    overlay_options,
    positive_int,
    save_annotations,
)
from segkit.data import DataError, read_image
from segkit.data.normalize import to_display
from segkit.errors import ConfigError, SegkitError
from segkit.inference.modes import windows
from segkit.inference.predictor import Predictor
from segkit.inference.scenes import scene_size
from segkit.visualization.overlays import palette_array, render, save_index_png, save_rgb

RACE_MIN_IMAGES = 200  # --backend auto races the backends in the loop only on folders at least this large


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders or globs")
    parser.add_argument("--checkpoint", help="segkit checkpoint (default: newest work_dirs/**/best.pth)")
    parser.add_argument(
        "--out", default="outputs/infer", type=output_folder, help="output folder (default outputs/infer)"
    )
    parser.add_argument(
        "--slide",
        action="store_true",
        help="sliding-window inference, for images larger than memory allows in one pass",
    )
    parser.add_argument(
        "--crop-size",
        type=positive_int,
        nargs=2,
        metavar=("H", "W"),
        help="slide window, with --slide (default eval.crop_size)",
    )
    parser.add_argument(
        "--stride",
        type=positive_int,
        nargs=2,
        metavar=("H", "W"),
        help="slide step, with --slide (default eval.stride)",
    )
    parser.add_argument(
        "--scene-megapixels",
        type=float,
        default=16.0,
        metavar="MP",
        help="with --slide, an image of more megapixels than this is a scene: read in windows, its mask written "
        "tile by tile to <stem>_mask.tif (no overlay), memory bounded by the crop (default 16; 0: every image)",
    )
    parser.add_argument("--tta", action="store_true", help="test-time augmentation: flip and scales")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument(
        "--backend",
        default="eager",
        choices=["eager", "onnxruntime", "auto"],
        help="eager PyTorch; onnxruntime (CPU; the checkpoint exported once, cached beside it); "
        "auto: the faster of the two on this machine, measured once and cached",
    )
    parser.add_argument("--batch-size", type=positive_int, default=4, help="images of one size per forward pass")
    add_export_options(parser, "also write the predictions")
    add_overlay_options(parser)  # its --skip-classes also leaves those classes out of the exports
    args = parser.parse_args(argv)
    if (args.crop_size or args.stride) and not args.slide:
        parser.error("--crop-size and --stride set the sliding window, which only --slide uses: add --slide")
    return args


def setup(args, checkpoint):
    """(predictor, render keywords, exports) for the arguments; bad ones raise a one-line error."""
    check_exports(args)
    model, cfg, meta = model_from_checkpoint(checkpoint)
    for key, value in (("crop_size", args.crop_size), ("stride", args.stride)):
        if value:  # into the config the Predictor is built from: backend auto times this window, not the default
            cfg.eval[key] = list(value)
    predictor = Predictor(
        model,
        cfg,
        meta,
        args.device,
        slide=True if args.slide else None,
        tta=args.tta,
        backend=args.backend,
        checkpoint=checkpoint,
    )
    drawing = overlay_options(args, predictor.class_names)
    exports = annotation_writers(args, predictor.class_names, predictor.palette, drawing["skip"])
    return predictor, drawing, exports


def shard_of_this_process():
    """(rank, world size) that torchrun gives this process ((0, 1) alone): inputs are split by rank, no
    process group is needed since each output file is written by exactly one process."""
    return int(os.environ.get("RANK", "0")), max(1, int(os.environ.get("WORLD_SIZE", "1")))


def scene_kind(path: Path, megapixels: float, failures: list) -> str:
    """ "scene" where --slide reads ``path`` in windows (more than ``megapixels``), else "image"; "failed" (and
    the reason in ``failures``) where its size cannot be read."""
    try:
        height, width = scene_size(path)
    except (SegkitError, OSError, ValueError) as exc:
        failures.append(f"{path}: {exc}")
        print(f"skipped: {path}: {exc}", file=sys.stderr)
        return "failed"
    return "scene" if height * width > megapixels * 1e6 else "image"


def segment_scene(predictor, path: Path, mask: Path, exporting: bool, failures: list) -> None:
    """One scene through ``Predictor.segment_scene``, with a progress bar (windows, ETA)."""
    start = time.perf_counter()
    height, width = scene_size(path)
    s = predictor.settings
    total = len(windows(height, width, s["crop"], s["stride"]))
    stats: dict = {}
    try:
        mask.parent.mkdir(parents=True, exist_ok=True)
        with tqdm(total=total, unit="window", desc=path.name, file=sys.stderr) as bar:
            predictor.segment_scene(path, mask, progress=bar.update, stats=stats)
    except (SegkitError, OSError) as exc:
        failures.append(f"{path}: {exc}")
        print(f"skipped: {path}: {exc}", file=sys.stderr)
        return
    seconds, mp = time.perf_counter() - start, height * width / 1e6
    print(
        f"scene {path} ({width} x {height}): {mp / max(seconds, 1e-9):.3f} megapixels/s, the model alone "
        f"{mp / max(stats['forward_s'], 1e-9):.3f} ({stats['forward_s'] / max(seconds, 1e-9):.0%} of the time) -> {mask}"
        + (" (no overlay for a scene" + ("; left out of the exports)" if exporting else ")"))
    )


def check_sharding(args, world: int) -> None:
    """An --export file holds every image of the run: under torchrun each process would write its own share
    over the same file (the last one wins), so it is refused before any work."""
    if world > 1 and args.export:
        raise ConfigError(
            f"--export {' '.join(args.export[0])} under torchrun ({world} processes): each process would write "
            f"only its share of the images to that one file; run the export in a single process (python -m "
            f"segkit infer ... --export, without torchrun), or leave --export out"
        )


def main(argv=None) -> int:
    args = parse_args(argv)
    check_sharding(args, shard_of_this_process()[1])
    predictor, drawing, exports = setup(args, checkpoint_to_use(args.checkpoint))
    if args.backend != "eager":
        record = predictor.backend_record
        print(
            f"backend: {predictor.backend}"
            + (f" (auto: {record['seconds']} s per image here, cached)" if record else "")
        )

    files, failures = expand(args.inputs)
    for problem in failures:
        print(f"skipped: {problem}", file=sys.stderr)
    out, stems = Path(args.out), unique_output_stems(files)
    rank, world = shard_of_this_process()
    files = files[rank::world]  # under torchrun each process takes every world-th input: each output once
    if args.slide:
        kinds = {path: scene_kind(path, args.scene_megapixels, failures) for path in files}
        files = [path for path in files if kinds[path] == "image"]
        for path in (path for path, kind in kinds.items() if kind == "scene"):
            segment_scene(predictor, path, out / f"{stems[path]}_mask.tif", bool(exports), failures)
    palette = palette_array(predictor.num_classes, predictor.palette)
    export_names = unique_file_names(files)
    waiting: deque = deque()  # (path, image) read but not yet predicted, in order

    def readable():
        for path in files:
            try:
                image = read_image(path, predictor.channels)
            except (DataError, OSError) as exc:
                failures.append(str(exc))
                tqdm.write(f"skipped: {exc}", file=sys.stderr)
                continue
            waiting.append((path, image))
            yield image

    start, exported = time.perf_counter(), []
    # decided on this loop (reading, batching and writing included), where there are enough images to pay for the
    # race: it sends ~12 images through each slower backend (0.89x eager over a 50-image folder, docs/BENCHMARKS.md)
    race = args.backend == "auto" and len(files) >= RACE_MIN_IMAGES
    if args.backend == "auto" and not race:
        predictor.keep_measured_or_eager()
    results = predictor.predict_many(readable(), args.batch_size, with_confidence=bool(exports), race=race)
    try:
        for result in tqdm(results, total=len(files), unit="image", disable=len(files) < 2, file=sys.stderr):
            mask, confidence = result if exports else (result, None)
            path, image = waiting.popleft()
            stem = stems[path]
            save_index_png(out / f"{stem}_mask.png", mask, palette)
            save_rgb(
                out / f"{stem}_overlay.png", render(to_display(image), mask, predictor.class_names, palette, **drawing)
            )
            for _, _, exporter in exports:
                exporter.add(export_names[path], mask, confidence)
            exported.append(path)
    except (torch.OutOfMemoryError, MemoryError):
        where = waiting[0][0] if waiting else "an image"
        print(
            f"error: out of memory on {where}: use --slide (with a smaller --crop-size) for large images, "
            f"or --batch-size 1",
            file=sys.stderr,
        )
        return 1
    seconds, done = time.perf_counter() - start, len(exported)
    if race and predictor.candidates:
        timing = ", ".join(f"{k} {v:.3f}" for k, v in predictor.backend_record["seconds"].items())
        print(f"backend auto kept {predictor.backend} (s per image in this loop: {timing})")
    elif args.backend == "auto" and predictor.candidates:
        print(
            f"backend auto used {predictor.backend}: {len(files)} image(s), fewer than the {RACE_MIN_IMAGES} a race "
            f"of the backends in this loop needs to pay off (an earlier race's choice, else eager)"
        )
    print(
        f"{done} image(s) in {seconds:.1f} s ({done / max(seconds, 1e-9):.2f} images/s) -> {out}/<stem>_mask.png, "
        f"<stem>_overlay.png"
    )
    save_annotations(exports, {export_names[path]: path for path in exported}, "predictions")
    if failures:
        print(f"{len(failures)} input(s) failed (listed above as 'skipped')", file=sys.stderr)
        return 1
    return 0
