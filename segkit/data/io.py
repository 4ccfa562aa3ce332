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


def read_image(path: PathLike) -> np.ndarray:
    """RGB uint8 H x W x 3, as viewers show it: an EXIF orientation tag is applied (``exif.py``).
    Grayscale is replicated, alpha dropped, 16-bit scaled to 8-bit."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"image not found: {path}")
    buf = np.fromfile(path, dtype=np.uint8)
    if buf.size and _truncated(buf, path):  # before decoding it: libpng prints lines of its own on stderr
        raise DataError(f"image {path} is truncated (the file ends before the image data does). "
                        f"Re-copy or re-download it, or remove it and its mask from the data set.")
    img = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED) if buf.size else None
    if img is None:
        raise DataError(f"cannot decode image {path}: the file is empty, truncated, corrupt or not an image. "
                        f"Re-copy it, or remove it and its mask from the data set.")
    img = apply_orientation(img, exif_orientation(buf))
    if img.dtype == np.uint16:
        img = (img >> 8).astype(np.uint8)
    elif img.dtype != np.uint8:
        raise DataError(f"image {path} has unsupported pixel type {img.dtype}; save it as 8-bit")
    if img.ndim == 2:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
    if img.shape[2] == 4:
        return cv2.cvtColor(img, cv2.COLOR_BGRA2RGB)
    if img.shape[2] == 1:
        return cv2.cvtColor(img[..., 0], cv2.COLOR_GRAY2RGB)
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


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


def read_mask(path: PathLike) -> np.ndarray:
    """Class-index mask H x W (uint8, or int32 for 16-bit files). Palette PNGs are read as indices,
    not colours; a colour (RGB) mask is an error, since its colours would need a palette to map."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"mask not found: {path}")
    try:
        with Image.open(path) as im:
            im.load()
            mode = im.mode
            arr = np.array(ImageOps.exif_transpose(im))  # as its image: oriented as viewers show it
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DataError(f"cannot read mask {path} ({exc}): the file is corrupt, truncated or not an image. "
                        f"Re-export it as an 8-bit index PNG.") from exc
    if arr.ndim == 3:
        if arr.shape[2] == 2:  # grey + alpha
            return arr[..., 0].copy()
        if arr.shape[2] in (3, 4) and np.array_equal(arr[..., 0], arr[..., 1]) and np.array_equal(arr[..., 0], arr[..., 2]):
            return arr[..., 0].copy()  # grey stored as RGB
        raise DataError(f"mask {path} is a colour image (mode {mode}); segkit needs one class index per pixel. "
                        f"Save it as an 8-bit grayscale or palette ('P') PNG whose values are class ids.")
    if arr.dtype == bool:
        return arr.astype(np.uint8)
    if arr.dtype.kind == "f":
        if not np.array_equal(arr, np.round(arr)):
            raise DataError(f"mask {path} holds fractional values (mode {mode}); class ids must be whole numbers. "
                            f"Re-export it as an 8-bit index PNG (nearest-neighbour, no anti-aliasing).")
        return arr.astype(np.int32)
    if arr.dtype not in (np.uint8, np.int32):
        arr = arr.astype(np.int32)
    return arr
