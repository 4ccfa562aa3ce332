"""EXIF orientation: images are read as viewers show them. A phone stores a portrait photo as a
landscape one plus a rotation tag; masks drawn on the displayed photo match it only once the tag is
applied. Applied in reading, so training, ``check`` and ``infer`` see the same pixels."""

from __future__ import annotations

from io import BytesIO

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

ORIENTATION_TAG = 0x0112
# tag value -> the cv2 operations that undo it, in order (PIL's ImageOps.exif_transpose, on arrays)
_UNDO = {
    2: ("flip_lr",),
    3: ("rot180",),
    4: ("flip_ud",),
    5: ("transpose",),
    6: ("rot90_cw",),
    7: ("transpose", "rot180"),
    8: ("rot90_ccw",),
}
_OPS = {
    "flip_lr": lambda a: cv2.flip(a, 1),
    "flip_ud": lambda a: cv2.flip(a, 0),
    "rot180": lambda a: cv2.rotate(a, cv2.ROTATE_180),
    "transpose": cv2.transpose,
    "rot90_cw": lambda a: cv2.rotate(a, cv2.ROTATE_90_CLOCKWISE),
    "rot90_ccw": lambda a: cv2.rotate(a, cv2.ROTATE_90_COUNTERCLOCKWISE),
}


def exif_orientation(buf: np.ndarray) -> int:
    """The orientation tag (1..8) of an encoded image; 1 (as stored) where there is none."""
    head = buf[:65536].tobytes()
    if b"exif" not in head.lower() and head[:4] not in (b"II*\x00", b"MM\x00*"):  # no EXIF block, not a TIFF
        return 1
    try:
        with Image.open(BytesIO(buf.tobytes())) as im:
            value = im.getexif().get(ORIENTATION_TAG, 1)
    except (OSError, SyntaxError, UnidentifiedImageError, ValueError):
        return 1
    return int(value) if value in _UNDO else 1


def apply_orientation(image: np.ndarray, orientation: int) -> np.ndarray:
    """``image`` (H x W or H x W x C) turned as the tag says, as viewers display it."""
    for op in _UNDO.get(orientation, ()):
        image = _OPS[op](image)
    return np.ascontiguousarray(image)
