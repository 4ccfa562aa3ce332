"""The studio's HTTP interface (FastAPI): the page, the images, the model's layers and the edits.

Layers travel as raw bytes (one class id or confidence per pixel, row-major) rather than PNGs: the
page needs the ids themselves for hovering and for drawing its own colours, and gzip shrinks masks
far below a PNG's encoding cost. Edits answer with the changed box and its new ids only.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Optional

import cv2
import numpy as np
from fastapi import FastAPI, HTTPException, Request
from fastapi.middleware.gzip import GZipMiddleware
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles

from ..data import DataError, read_image
from ..data.normalize import to_display
from .session import SPLIT_FILE, Box, Studio, StudioError

STATIC = Path(__file__).with_name("static")
BROWSER_IMAGES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif"}  # served as they are; others re-encoded


def create_app(studio: Studio) -> FastAPI:
    app = FastAPI(title="segkit studio", docs_url=None, redoc_url=None, openapi_url=None)
    app.add_middleware(GZipMiddleware, minimum_size=1024, compresslevel=1)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.exception_handler(StudioError)
    async def refused(_request, exc: StudioError):
        return JSONResponse({"detail": str(exc)}, status_code=400)

    @app.exception_handler(DataError)
    async def unreadable(_request, exc: DataError):
        return JSONResponse({"detail": str(exc)}, status_code=422)

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
        if path.suffix.lower() in BROWSER_IMAGES:
            return FileResponse(path)
        ok, png = cv2.imencode(
            ".png", cv2.cvtColor(to_display(read_image(path, studio.predictor.channels)), cv2.COLOR_RGB2BGR)
        )
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


def register_edit_routes(app: FastAPI, studio: Studio) -> None:
    """Edits, undo / redo and accepting a label; each answers with the changed box (see ``patch``)."""

    @app.post("/api/edit/{stem}")
    async def edit(stem: str, request: Request):
        known(studio, stem)
        body = await json_object(request)
        op = body.get("op")
        if op == "region":
            box = studio.fill_region(stem, body.get("x"), body.get("y"), body.get("cls"))
        elif op == "brush":
            box = studio.paint(stem, body.get("points"), body.get("radius"), body.get("cls"))
        else:
            raise HTTPException(400, f"op {op!r} is not an edit; use 'region' or 'brush'")
        return patch(studio, stem, box)

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
    """The `segkit train` line that fine-tunes the checkpoint on the labelled images."""
    images = {p.parent.resolve() for p in studio.images.values()}
    image_dir = images.pop() if len(images) == 1 else None
    ckpt = studio.checkpoint or Path("CHECKPOINT")
    config = ckpt.parent / "config.yaml"
    if image_dir is None:
        return "(the images come from several folders: put them in one folder to train on them)"
    renamed = sorted(f"{p.name} -> {stem}.png" for stem, p in studio.images.items() if stem != p.stem)
    if renamed:  # data.format=folder pairs <stem>.<ext> with <stem>.png: these masks would not pair
        return f"(images share a stem, so their labels are {', '.join(renamed)}: rename them apart to train on them)"
    parts = [
        "segkit",
        "train",
        str(config if config.is_file() else "CONFIG"),
        "data.format=folder",
        f"data.root={image_dir}",
        "data.image_dir=.",
        f"data.mask_dir={studio.masks_dir.resolve()}",
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
        f"data.split_file={studio.masks_dir.resolve() / SPLIT_FILE}",
        "--init-from",
        str(ckpt),
    ]
    return " ".join(shlex.quote(p) for p in parts)
