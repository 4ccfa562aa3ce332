"""Review a model's predictions in the browser and correct them region by region.

    segkit studio IMAGES... [--checkpoint CKPT] [--masks DIR] [--port 8765] [--host 127.0.0.1]
                  [--allow-host NAME] [--certfile CERT --keyfile KEY] [--display-bands 3,2,1]
    segkit studio IMAGES... --masks DIR --export coco OUT.json     # the labels for annotation tools, no server

IMAGES: files, folders or globs, as for `segkit infer`. Labels are read from and saved to
<masks>/<stem>.png (palette PNGs of class ids, the layout `data.format=folder` trains on), with
<masks>/labelled.txt listing the labelled stems; the model's own prediction is never written.
<stem> is the one `segkit infer` names outputs by: a/img.png and b/img.png are a_img and b_img.

Only the person who started it gets in: it prints http://HOST:PORT/?token=T with a new random T (or
$SEGKIT_STUDIO_TOKEN); opening that address once logs the browser in (see docs/studio.md, Security).
"""

import argparse
import ipaddress
import os
import socket
import sys
import threading
from pathlib import Path

from segkit.annotations.regions import unique_file_names, unique_output_stems
from segkit.cli.common import (
    add_display_bands_option,
    add_export_options,
    annotation_writers,
    check_display_bands,
    check_exports,
    checkpoint_to_use,
    expand,
    save_annotations,
)
from segkit.data import read_mask
from segkit.errors import ConfigError, DataError, optional_import
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
    parser.add_argument(
        "--token",
        default=os.environ.get("SEGKIT_STUDIO_TOKEN"),
        help="the secret in the printed address (default: $SEGKIT_STUDIO_TOKEN, else a new random one; "
        "on the command line other users see it in `ps`)",
    )
    parser.add_argument(
        "--allow-host",
        action="append",
        default=[],
        metavar="NAME",
        help="another name the page may be opened by (besides the --host address and localhost); repeatable",
    )
    parser.add_argument("--certfile", help="serve over HTTPS with this certificate (PEM), with --keyfile")
    parser.add_argument("--keyfile", help="the certificate's private key (PEM)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--cache", type=int, default=16, help="images whose model outputs stay in memory")
    add_display_bands_option(parser)
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


def check_serving(args) -> None:
    if args.token is not None and len(args.token) < 16:
        raise ConfigError(
            "--token (or SEGKIT_STUDIO_TOKEN) must be at least 16 characters; leave it out for a random one"
        )
    if bool(args.certfile) != bool(args.keyfile):
        raise ConfigError("--certfile and --keyfile go together: give both to serve over HTTPS")
    for name in ("certfile", "keyfile"):
        path = getattr(args, name)
        if path and not Path(path).is_file():
            raise ConfigError(f"--{name} {path}: no such file")


def main(argv=None) -> int:
    args = parse_args(argv)
    check_exports(args)
    check_serving(args)
    checkpoint = checkpoint_to_use(args.checkpoint)
    files, problems = expand(args.inputs)
    for problem in problems:
        print(f"skipped: {problem}", file=sys.stderr)
    if not files:
        raise DataError("no images to review (IMAGES names no file)")
    predictor = Predictor.from_checkpoint(checkpoint, args.device)
    if args.export:
        return export_labels(args, files, predictor)
    # every image reaches the page with the checkpoint's data.channels bands (read_image refuses others)
    check_display_bands(args.display_bands, predictor.channels, f"each image (data.channels of {checkpoint})")
    studio = optional_import("segkit.studio", "studio", "segkit studio")  # the web stack only when serving
    session = studio.Studio(predictor, files, Path(args.masks), args.cache, Path(checkpoint), args.display_bands)
    for path in session.removed_temporaries:
        print(f"removed {path}: a temporary file of a studio stopped while saving", file=sys.stderr)
    app = studio.create_app(session, token=args.token, host=args.host, allow_hosts=args.allow_host)
    return serve(session, app, args)


def serve(studio, app, args) -> int:
    import uvicorn

    host, port, tls = args.host, args.port, bool(args.certfile)
    scheme = "https" if tls else "http"
    wildcard = host in ("0.0.0.0", "::", "")
    shown = socket.gethostname() if wildcard else (f"[{host}]" if ":" in host else host)
    stop = threading.Event()
    threading.Thread(target=studio.score_all, args=(stop,), daemon=True, name="studio-scoring").start()
    print(
        f"segkit studio: {len(studio.images)} image(s), labels in {studio.masks_dir}\n"
        f"  open {scheme}://{shown}:{port}/?token={app.state.token}  (Ctrl+C stops)",
        flush=True,
    )
    if wildcard:
        print(f"  on this machine: {scheme}://127.0.0.1:{port}/?token={app.state.token}", flush=True)
    if not _loopback(host):
        print(
            f"warning: listening on {host}: other machines can reach the studio; it lets in only those "
            f"holding the token above"
            + (
                ""
                if tls
                else ", which travels unencrypted over http. Serve over TLS with --certfile CERT --keyfile KEY, "
                f"or keep the default 127.0.0.1 and use an SSH tunnel (ssh -L {port}:127.0.0.1:{port} THIS_MACHINE)"
            ),
            file=sys.stderr,
        )
    try:
        uvicorn.run(
            app, host=host, port=port, log_level="warning", ssl_certfile=args.certfile, ssl_keyfile=args.keyfile
        )
    finally:
        stop.set()
    return 0


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"
