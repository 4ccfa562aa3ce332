"""Reading images and masks, with errors that name the file and what to do."""

from __future__ import annotations

from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import List, Optional, Union

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from segkit.errors import DataError

from .exif import apply_orientation, exif_orientation

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
MASK_SUFFIXES = (".png", ".bmp", ".tif", ".tiff", ".gif")

PathLike = Union[str, Path]


@dataclass
class Issue:
    """A problem found while listing a data set. ``fatal``: training cannot go on with it."""

    message: str
    fatal: bool = True


# said by every reader whose root is missing: shipped configs name a root relative to the working directory
ROOT_HINT = "(data.root, relative to the working directory: pass data.root=/path/to/data or set it in the config)"


def report(issues: Optional[List[Issue]], message: str, fatal: bool = True) -> None:
    """Readers raise on the first fatal problem; ``tools/check_dataset.py`` passes a list to collect them all."""
    if issues is not None:
        issues.append(Issue(message, fatal))
    elif fatal:
        raise DataError(message)


def read_image(path: PathLike, channels: Optional[int] = 3) -> np.ndarray:
    """H x W x ``channels`` in the file's own pixel type (uint8, uint16, int16, float32): never scaled here;
    ``normalize.to_unit`` maps ``data.value_range`` to 0..1. ``channels=3``: RGB as viewers show it (an EXIF
    orientation tag applied, grey replicated, alpha dropped). Other counts: the bands as stored (grey is
    H x W x 1). ``None``: a TIFF's own band count, other formats as RGB (for display, where no model decides).
    TIFF goes through tifffile (any band count, planar or interleaved), the rest through OpenCV."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"image not found: {path}")
    img = _read_tiff(path) if path.suffix.lower() in (".tif", ".tiff") else None
    if img is None:
        img = _read_with_opencv(path)
    if img.dtype == np.float64:
        img = img.astype(np.float32)
    elif img.dtype == bool:
        img = img.astype(np.uint8)
    elif img.dtype not in (np.uint8, np.uint16, np.int16, np.float32):
        raise DataError(
            f"image {path} has unsupported pixel type {img.dtype}; save it as 8- or 16-bit integers or 32-bit float"
        )
    if img.ndim == 2:
        img = img[..., None]
    bands = img.shape[2]
    if channels is None:
        channels = bands if path.suffix.lower() in (".tif", ".tiff") else 3
    if channels == 3 and bands in (1, 2):  # grey (+ alpha)
        return np.ascontiguousarray(np.repeat(img[..., :1], 3, axis=2))
    if channels == 3 and bands == 4 and path.suffix.lower() not in (".tif", ".tiff"):
        return np.ascontiguousarray(img[..., :3])  # RGBA photo: alpha dropped
    if bands != channels:
        raise DataError(
            f"image {path} has {bands} band(s) but data.channels={channels}: set data.channels={bands} "
            f"(model.backbone.in_channels follows it), or re-save the image with {channels} band(s)"
        )
    return np.ascontiguousarray(img)


def _read_with_opencv(path: Path) -> np.ndarray:
    """PNG, JPEG, BMP, WebP (and TIFF tifffile cannot read): native pixel type, RGB(A) order, EXIF-oriented."""
    buf = np.fromfile(path, dtype=np.uint8)
    if buf.size and _truncated(buf, path):  # before decoding it: libpng prints lines of its own on stderr
        raise DataError(
            f"image {path} is truncated (the file ends before the image data does). "
            f"Re-copy or re-download it, or remove it and its mask from the data set."
        )
    img = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED) if buf.size else None
    if img is None:
        raise DataError(
            f"cannot decode image {path}: the file is empty, truncated, corrupt or not an image. "
            f"Re-copy it, or remove it and its mask from the data set."
        )
    img = apply_orientation(img, exif_orientation(buf))
    if img.ndim == 3 and img.shape[2] == 3:
        return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    if img.ndim == 3 and img.shape[2] == 4:
        return cv2.cvtColor(img, cv2.COLOR_BGRA2RGBA)
    return img


def _read_tiff(path: Path) -> Optional[np.ndarray]:
    """The one TIFF reader: H x W x bands from the first series (planar CYX/SYX turned to YXS). An RGB(A) page
    with an alpha sample loses it. None when tifffile cannot decode it (a codec it lacks): OpenCV tries next."""
    try:
        import tifffile
    except ImportError:  # a dependency; an environment without it still reads 3-band TIFFs through OpenCV
        return None
    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            img, axes = series.asarray(), series.axes
            page = tif.pages[0]
            alpha = page.photometric == tifffile.PHOTOMETRIC.RGB and bool(getattr(page, "extrasamples", ()))
    except (ValueError, OSError, KeyError, IndexError, NotImplementedError, RuntimeError) as exc:
        if "imagecodecs" in str(exc) or "codec" in str(exc).lower():
            return None
        raise DataError(
            f"cannot read TIFF {path} ({exc}): the file is corrupt, truncated or not a TIFF. "
            f"Re-copy it, or remove it and its mask from the data set."
        ) from exc
    axes = axes.replace("Q", "")
    if img.ndim == 3 and axes and axes[0] in "CS" and axes[1:] == "YX":
        img = np.moveaxis(img, 0, -1)  # planar: bands first
    elif img.ndim not in (2, 3):
        raise DataError(
            f"TIFF {path} holds a {img.ndim}-D array (axes {series.axes}); segkit reads one "
            f"2-D image per file, H x W or H x W x bands"
        )
    if alpha and img.ndim == 3 and img.shape[2] == 4:
        img = img[..., :3]
    return img


def _truncated(buf: np.ndarray, path: Path) -> bool:
    """Older OpenCV decodes a cut-off JPEG into a partly grey image without failing. The end marker
    normally closes the file; where it does not (data may follow it legally), PIL decides."""
    suffix = path.suffix.lower()
    tail = buf[-64:].tobytes()
    if suffix in (".jpg", ".jpeg"):
        if tail.rstrip(b"\x00\r\n ").endswith(b"\xff\xd9"):
            return False
    elif suffix == ".png":
        if b"IEND" in tail[-32:]:
            return False
    else:
        return False
    try:
        im = Image.open(BytesIO(buf.tobytes()))
    except (OSError, SyntaxError, UnidentifiedImageError):
        return False  # not an image at all: the decoder says so
    try:
        with im:
            im.load()
    except (OSError, SyntaxError):
        return True
    return False


def _open_mask(path: PathLike, fix: str, mode: Optional[str] = None) -> Image.Image:
    """A mask file decoded and oriented as viewers show it (EXIF), converted to ``mode`` if given; a missing
    or undecodable file is a DataError naming it, ending with ``fix``."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"mask not found: {path}")
    try:
        with Image.open(path) as im:
            im.load()
            oriented = ImageOps.exif_transpose(im)
            return oriented.convert(mode) if mode else oriented
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DataError(
            f"cannot read mask {path} ({exc}): the file is corrupt, truncated or not an image. {fix}"
        ) from exc


def read_color_mask(path: PathLike) -> np.ndarray:
    """A colour-coded mask as H x W x 3 uint8 RGB (palette PNGs as their colours), for ``data.class_colors``."""
    return np.array(_open_mask(path, "Re-export it as a lossless (PNG) colour mask.", "RGB"))


def read_mask(path: PathLike) -> np.ndarray:
    """Class-index mask H x W (uint8, or int32 for 16-bit files). Palette PNGs are read as indices,
    not colours; a colour (RGB) mask is an error, since its colours would need a palette to map."""
    path = Path(path)
    im = _open_mask(path, "Re-export it as an 8-bit index PNG.")  # as its image: oriented as viewers show it
    mode, arr = im.mode, np.array(im)
    if arr.ndim == 3:
        if arr.shape[2] == 2:  # grey + alpha
            return arr[..., 0].copy()
        if (
            arr.shape[2] in (3, 4)
            and np.array_equal(arr[..., 0], arr[..., 1])
            and np.array_equal(arr[..., 0], arr[..., 2])
        ):
            return arr[..., 0].copy()  # grey stored as RGB
        raise DataError(
            f"mask {path} is a colour image (mode {mode}); segkit needs one class index per pixel. "
            f"If its colours are classes, name them with data.class_colors (a name,r,g,b CSV such as "
            f"CamVid's class_dict.csv, or [[r, g, b], ...]); or convert them with "
            f"`segkit convert-masks`. Else save it as an 8-bit grayscale or palette ('P') PNG whose "
            f"values are class ids."
        )
    if arr.dtype == bool:
        return arr.astype(np.uint8)
    if arr.dtype.kind == "f":
        if not np.array_equal(arr, np.round(arr)):
            raise DataError(
                f"mask {path} holds fractional values (mode {mode}); class ids must be whole numbers. "
                f"Re-export it as an 8-bit index PNG (nearest-neighbour, no anti-aliasing)."
            )
        return arr.astype(np.int32)
    if arr.dtype not in (np.uint8, np.int32):
        arr = arr.astype(np.int32)
    return arr
