"""Review a model's predictions in the browser and correct them region by region.

    segkit studio IMAGES... [--checkpoint CKPT] [--masks DIR] [--port 8765] [--host 127.0.0.1]
    segkit studio IMAGES... --masks DIR --export coco OUT.json     # the labels for annotation tools, no server

IMAGES: files, folders or globs, as for `segkit infer`. Labels are read from and saved to
<masks>/<stem>.png (palette PNGs of class ids, the layout `data.format=folder` trains on), with
<masks>/labelled.txt listing the labelled stems; the model's own prediction is never written.
<stem> is the one `segkit infer` names outputs by: a/img.png and b/img.png are a_img and b_img.
"""

import argparse
import ipaddress
import sys
import threading
from pathlib import Path

from segkit.annotations.regions import unique_file_names, unique_output_stems
from segkit.cli.common import (
    add_export_options,
    annotation_writers,
    check_exports,
    checkpoint_to_use,
    expand,
    save_annotations,
)
from segkit.data import read_mask
from segkit.errors import DataError, optional_import
from segkit.inference.predictor import Predictor


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("inputs", nargs="+", metavar="IMAGES", help="image files, folders or globs")
    parser.add_argument("--checkpoint", help="segkit checkpoint (default: newest work_dirs/**/best.pth)")
    parser.add_argument(
        "--masks",
        default="masks",
        help="folder of labels: read where present, corrections saved here (default ./masks)",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: this machine only)")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--cache", type=int, default=16, help="images whose model outputs stay in memory")
    add_export_options(parser, "write the labels under --masks and exit (no server)")
    return parser.parse_args(argv)


def export_labels(args, files, predictor: Predictor) -> int:
    writers = annotation_writers(args, predictor.class_names, predictor.palette)
    names, stems = unique_file_names(files), unique_output_stems(files)  # as the Studio keys its labels
    labelled = {}
    for path in files:
        label = Path(args.masks) / f"{stems[path]}.png"
        if label.is_file():
            mask = read_mask(label)
            for _, _, writer in writers:
                writer.add(names[path], mask)
            labelled[names[path]] = path
    save_annotations(writers, labelled, "labels")
    return 0


def main(argv=None) -> int:
    args = parse_args(argv)
    check_exports(args)
    checkpoint = checkpoint_to_use(args.checkpoint)
    files, problems = expand(args.inputs)
    for problem in problems:
        print(f"skipped: {problem}", file=sys.stderr)
    if not files:
        raise DataError("no images to review (IMAGES names no file)")
    predictor = Predictor.from_checkpoint(checkpoint, args.device)
    if args.export:
        return export_labels(args, files, predictor)
    studio = optional_import("segkit.studio", "studio", "segkit studio")  # the web stack only when serving
    session = studio.Studio(predictor, files, Path(args.masks), args.cache, Path(checkpoint))
    return serve(session, studio.create_app(session), args.host, args.port)


def serve(studio, app, host: str, port: int) -> int:
    import uvicorn

    if not _loopback(host):
        print(
            f"warning: listening on {host}: anyone who can reach this machine can read these images and "
            f"change the labels (there is no login)",
            file=sys.stderr,
        )
    stop = threading.Event()
    threading.Thread(target=studio.score_all, args=(stop,), daemon=True, name="studio-scoring").start()
    print(
        f"segkit studio: {len(studio.images)} image(s), labels in {studio.masks_dir}\n"
        f"  open http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}/  (Ctrl+C stops)",
        flush=True,
    )
    try:
        uvicorn.run(app, host=host, port=port, log_level="warning")
    finally:
        stop.set()
    return 0


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"
