"""The studio's HTTP interface (FastAPI): the page, the images, the model's layers and the edits.

Layers travel as raw bytes (one class id or confidence per pixel, row-major) rather than PNGs: the
page needs the ids themselves for hovering and for drawing its own colours, and gzip shrinks masks
far below a PNG's encoding cost. Edits answer with the changed box and its new ids only.
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path
from typing import Optional, Sequence

import cv2
import numpy as np
from fastapi import FastAPI, HTTPException, Request
from fastapi.middleware.gzip import GZipMiddleware
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

from ..data import DataError, read_image
from ..data.normalize import to_display
from .security import MAX_BODY, Guard, new_token
from .session import SPLIT_FILE, Box, LabelNotSaved, Studio, StudioError

STATIC = Path(__file__).with_name("static")
BROWSER_IMAGES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif"}  # served as they are; others re-encoded


def create_app(
    studio: Studio,
    token: Optional[str] = None,
    host: str = "127.0.0.1",
    allow_hosts: Sequence[str] = (),
    max_body: int = MAX_BODY,
) -> FastAPI:
    """The studio's app; only requests carrying ``token`` (a fresh one when None: ``app.state.token``)
    from an allowed Host get through (see ``security.Guard``). ``host`` is the address it listens on."""
    app = FastAPI(title="segkit studio", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.token = token or new_token()
    app.add_middleware(GZipMiddleware, minimum_size=1024, compresslevel=1)
    app.add_middleware(Guard, token=app.state.token, bound=host, allow_hosts=allow_hosts, max_body=max_body)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.exception_handler(StudioError)
    async def refused(_request, exc: StudioError):
        return JSONResponse({"detail": str(exc)}, status_code=400)

    @app.exception_handler(DataError)
    async def unreadable(_request, exc: DataError):
        return JSONResponse({"detail": str(exc)}, status_code=422)

    @app.exception_handler(LabelNotSaved)
    async def not_saved(_request, exc: LabelNotSaved):
        return JSONResponse({"detail": str(exc), "saved": False}, status_code=507 if exc.full else 500)

    register_read_routes(app, studio)
    register_edit_routes(app, studio)
    return app


def known(studio: Studio, stem: str) -> Path:
    """The image of ``stem``, or a 404: only the files given to the studio are ever served."""
    try:
        return studio.path(stem)
    except KeyError as exc:
        raise HTTPException(404, str(exc.args[0])) from None


def register_read_routes(app: FastAPI, studio: Studio) -> None:
    """The page, the meta data, the review order, an image and the model's layers of it."""

    @app.get("/")
    def page():
        return FileResponse(STATIC / "index.html")

    @app.get("/api/meta")
    def meta():
        return {
            "class_names": studio.predictor.class_names,
            "palette": studio.palette.tolist(),
            "ignore_index": studio.ignore_index,
            "images": len(studio.images),
            "corrected": studio.corrected_since_checkpoint(),
            "finetune": finetune_command(studio),
        }

    @app.get("/api/images")
    def images(gt: Optional[int] = None, pred: Optional[int] = None):
        cell = None
        if gt is not None or pred is not None:
            if gt is None or pred is None or not (0 <= gt < studio.num_classes and 0 <= pred < studio.num_classes):
                raise HTTPException(400, f"gt and pred must both be class ids in 0..{studio.num_classes - 1}")
            cell = (gt, pred)
        confusion = studio.confusion()
        return {
            "order": studio.order(cell),
            "scored": len(studio.summaries),
            "total": len(studio.images),
            "summaries": {s: {k: v for k, v in d.items() if k != "confusion"} for s, d in studio.summaries.items()},
            "confusion": None if confusion is None else confusion.tolist(),
        }

    @app.get("/api/image/{stem}")
    def image(stem: str):
        path = known(studio, stem)
        if studio.display_bands is None and path.suffix.lower() in BROWSER_IMAGES and eight_bit(path):
            return FileResponse(path)
        shown = to_display(read_image(path, studio.predictor.channels), studio.display_bands)
        ok, png = cv2.imencode(".png", cv2.cvtColor(shown, cv2.COLOR_RGB2BGR))
        if not ok:
            raise HTTPException(
                500, f"{path}: OpenCV could not encode it as PNG for the page; convert it to PNG or JPEG"
            )
        return Response(png.tobytes(), media_type="image/png")

    @app.get("/api/layers/{stem}")
    def layers(stem: str):
        """prediction | confidence (0..255) | label (when there is one), each H*W bytes."""
        known(studio, stem)
        found = studio.analysis(stem)
        label = studio.label(stem)
        h, w = found.pred.shape
        parts = [found.pred, found.confidence] + ([label] if label is not None else [])
        return Response(
            b"".join(np.ascontiguousarray(p).tobytes() for p in parts),
            media_type="application/octet-stream",
            headers={"X-Width": str(w), "X-Height": str(h), "X-Labelled": str(int(label is not None))},
        )


def eight_bit(path: Path) -> bool:
    """Whether the page may get the file as it is: not a 16-bit PNG (a browser scales it to its
    65535 range, 12-bit data looks black). The other browser formats hold 8 bits a sample."""
    if path.suffix.lower() != ".png":
        return True
    with open(path, "rb") as f:
        header = f.read(25)
    return len(header) < 25 or header[12:16] != b"IHDR" or header[24] <= 8  # IHDR bit depth


def register_edit_routes(app: FastAPI, studio: Studio) -> None:
    """Edits, undo / redo and accepting a label; each answers with the changed box (see ``patch``)."""

    @app.post("/api/edit/{stem}")
    async def edit(stem: str, request: Request):
        known(studio, stem)
        body = await json_object(request)
        op = body.get("op")
        if op == "region":
            work = (studio.fill_region, body.get("x"), body.get("y"), body.get("cls"))
        elif op == "brush":
            work = (studio.paint, body.get("points"), body.get("radius"), body.get("cls"))
        else:
            raise HTTPException(400, f"op {op!r} is not an edit; use 'region' or 'brush'")
        # the model may have to run (an image evicted from the cache): off the event loop, so that
        # every other request keeps being answered meanwhile
        box = await run_in_threadpool(work[0], stem, *work[1:])
        return await run_in_threadpool(patch, studio, stem, box)

    @app.post("/api/undo/{stem}")
    def undo(stem: str):
        known(studio, stem)
        return patch(studio, stem, studio.step(stem, back=True))

    @app.post("/api/redo/{stem}")
    def redo(stem: str):
        known(studio, stem)
        return patch(studio, stem, studio.step(stem, back=False))

    @app.post("/api/save/{stem}")
    def save(stem: str):
        known(studio, stem)
        return {"saved": str(studio.accept(stem)), "corrected": studio.corrected_since_checkpoint()}


async def json_object(request: Request) -> dict:
    try:
        body = await request.json()
    except ValueError:
        raise HTTPException(400, "the request body is not JSON") from None
    except RecursionError:
        raise HTTPException(400, "the request body is nested too deeply") from None
    if not isinstance(body, dict):
        raise HTTPException(400, "the request body must be a JSON object")
    return body


def patch(studio: Studio, stem: str, box: Optional[Box]) -> Response:
    """The label's new ids inside ``box`` (row-major bytes), the box in X-Box ('' when nothing changed)."""
    headers = {"X-Box": "", "X-Corrected": str(studio.corrected_since_checkpoint())}
    if box is None:
        return Response(b"", media_type="application/octet-stream", headers=headers)
    y0, x0, h, w = box
    headers["X-Box"] = f"{y0},{x0},{h},{w}"
    data = np.ascontiguousarray(studio.label(stem)[y0 : y0 + h, x0 : x0 + w]).tobytes()
    return Response(data, media_type="application/octet-stream", headers=headers)


def finetune_command(studio: Studio) -> str:
    """The `segkit train` line that fine-tunes the checkpoint on the labelled images. Paths are named as the
    user gave them (relative ones stay relative: the page shows no more of the file system than that)."""
    images = {p.parent.resolve(): p.parent for p in studio.images.values()}
    image_dir = images.popitem()[1] if len(images) == 1 else None
    ckpt = studio.checkpoint or Path("CHECKPOINT")
    config = ckpt.parent / "config.yaml"
    if image_dir is None:
        return "(the images come from several folders: put them in one folder to train on them)"
    renamed = sorted(f"{p.name} -> {stem}.png" for stem, p in studio.images.items() if stem != p.stem)
    if renamed:  # data.format=folder pairs <stem>.<ext> with <stem>.png: these masks would not pair
        return f"(images share a stem, so their labels are {', '.join(renamed)}: rename them apart to train on them)"
    # data.mask_dir and data.split_file are read relative to data.root
    masks = studio.masks_dir
    if not masks.is_absolute():
        masks = Path(os.path.relpath(masks.resolve(), image_dir.resolve()))
    parts = [
        "segkit",
        "train",
        str(config if config.is_file() else "CONFIG"),
        "data.format=folder",
        f"data.root={image_dir}",
        "data.image_dir=.",
        f"data.mask_dir={masks}",
        "data.train_split=labelled",
        "data.val_split=labelled",
        # the studio's masks hold class ids already: no raw-value mapping of the original data set
        "data.label_map={}",
        "data.reduce_zero_label=false",
        # and they are named <stem>.png beside <stem>.<ext>: no naming rules or ignore masks of its own
        "data.image_suffix=",
        "data.mask_suffix=",
        "data.pair_pattern=null",
        "data.ignore_mask_dir=null",
        "data.ignore_mask_suffix=",
        f"data.split_file={masks / SPLIT_FILE}",
        "--init-from",
        str(ckpt),
    ]
    return " ".join(shlex.quote(p) for p in parts)
