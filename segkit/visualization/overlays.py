"""Pictures of masks for region labeling: colours, overlays, outlines, class names on regions, legends.

All images are RGB uint8 H x W x 3 and masks integer H x W class ids. Pixels whose id is not a
class (``ignore_index``, e.g. 255) are left uncoloured. Drawing is OpenCV; the matplotlib charts are
in ``segkit.training.plots``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, List, Optional, Sequence, Tuple

import cv2
import numpy as np
from PIL import Image

from segkit.data import DataError, default_palette
from segkit.errors import ConfigError, OutputError, atomic_write

FONT = cv2.FONT_HERSHEY_SIMPLEX
Box = Tuple[int, int, int, int]


def palette_array(num_classes: int, palette: Optional[Sequence[Sequence[int]]] = None) -> np.ndarray:
    """num_classes x 3 uint8 colours: the given palette, else the VOC colour map."""
    colours = [list(c) for c in palette] if palette is not None and len(palette) else default_palette(num_classes)
    if len(colours) < num_classes:
        raise ConfigError(f"palette has {len(colours)} colours for {num_classes} classes")
    return np.asarray(colours[:num_classes], dtype=np.uint8).reshape(num_classes, 3)


def class_ids(spec: str, class_names: Sequence[str]) -> List[int]:
    """Class ids from a comma-separated list of class names or ids ("background,sky" or "0,3")."""
    ids = []
    for item in (part.strip() for part in spec.split(",") if part.strip()):
        if item in class_names:
            ids.append(list(class_names).index(item))
        elif item.isdigit() and int(item) < len(class_names):
            ids.append(int(item))
        else:
            raise ConfigError(f"--skip-classes: {item!r} is not a class; the classes are {', '.join(class_names)}")
    return ids


def colourise(mask: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """Class ids -> RGB; ids that are not classes (ignore) are black."""
    mask = np.asarray(mask)
    lut = np.zeros((max(int(mask.max(initial=0)) + 1, len(palette)), 3), np.uint8)
    lut[: len(palette)] = palette
    return lut[np.clip(mask, 0, len(lut) - 1)]


def overlay(image: np.ndarray, mask: np.ndarray, palette: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """``alpha`` of the class colour over the image; non-class pixels show the image alone."""
    if image.shape[:2] != mask.shape[:2]:
        raise DataError(
            f"image {image.shape[1]}x{image.shape[0]} and mask {mask.shape[1]}x{mask.shape[0]} (W x H) differ in size"
        )
    is_class = (mask >= 0) & (mask < len(palette))
    blended = image.astype(np.float32) * (1 - alpha) + colourise(mask, palette).astype(np.float32) * alpha
    out = np.where(is_class[..., None], np.rint(blended), image)
    # np.where keeps a square view's channel-first strides (a tensor's permute); OpenCV draws on C order only
    return np.ascontiguousarray(out, dtype=np.uint8)


def hatched_overlay(image: np.ndarray, mask: np.ndarray, palette: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """``overlay``, with a white diagonal hatch over the pixels of no class (ignored), so they stand out."""
    out = overlay(image, mask, palette, alpha)
    yy, xx = np.mgrid[: mask.shape[0], : mask.shape[1]]
    out[~((mask >= 0) & (mask < len(palette))) & ((yy + xx) % 8 < 2)] = 255
    return out


def draw_outlines(
    canvas: np.ndarray,
    mask: np.ndarray,
    colour: Tuple[int, int, int] = (255, 255, 255),
    thickness: int = 1,
    num_classes: Optional[int] = None,
) -> np.ndarray:
    """Draw the outline of every region (connected pixels of one class) on ``canvas``, in place; with
    ``num_classes``, only regions of ids 0..num_classes-1 (not ignored or hidden pixels)."""
    for cls in np.unique(mask):
        if num_classes is not None and not 0 <= cls < num_classes:
            continue
        region = (mask == cls).astype(np.uint8)
        contours, _ = cv2.findContours(region, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(canvas, contours, -1, colour, thickness, lineType=cv2.LINE_8)
    return canvas


def font_scale(shape: Tuple[int, ...]) -> float:
    return float(np.clip(min(shape[:2]) / 720, 0.35, 1.2))


def _ascii(text: str) -> str:
    return text.encode("ascii", "replace").decode()  # OpenCV's Hershey fonts draw ASCII only


def _thickness(scale: float) -> int:
    return max(1, round(scale * 2))


def draw_text(canvas: np.ndarray, text: str, org: Tuple[int, int], scale: float) -> None:
    """White text with a dark edge, readable on any colour. The edge is the same text shifted by a
    pixel each way, not a thicker stroke: Hershey glyphs advance further the thicker they are, so
    a thick outline drifts off the thin text (a stray letter at the end of a long word)."""
    thick = _thickness(scale)
    x, y = org
    for dx, dy in ((-1, -1), (0, -1), (1, -1), (-1, 0), (1, 0), (-1, 1), (0, 1), (1, 1)):
        cv2.putText(canvas, text, (x + dx, y + dy), FONT, scale, (0, 0, 0), thick, cv2.LINE_AA)
    cv2.putText(canvas, text, org, FONT, scale, (255, 255, 255), thick, cv2.LINE_AA)


def label_points(mask: np.ndarray, num_classes: int, min_area: int) -> List[Tuple[int, int, int, int]]:
    """(class, x, y, area) for each connected region of at least ``min_area`` pixels, largest first.
    (x, y) is the region's pole of inaccessibility (the maximum of its distance transform): always
    inside the region and as far from its edge as possible, unlike the centroid of a ring or a C."""
    points = []
    for cls in np.unique(mask):
        if not 0 <= cls < num_classes:
            continue
        count, labels, stats, _ = cv2.connectedComponentsWithStats((mask == cls).astype(np.uint8), connectivity=8)
        for k in range(1, count):
            x, y, w, h, area = stats[k]
            if area < min_area:
                continue
            # zero border, so the box edge counts as the region's edge
            region = np.pad((labels[y : y + h, x : x + w] == k).astype(np.uint8), 1)
            dist = cv2.distanceTransform(region, cv2.DIST_L2, 5)
            py, px = np.unravel_index(int(np.argmax(dist)), dist.shape)
            points.append((int(cls), int(x + px - 1), int(y + py - 1), int(area)))
    return sorted(points, key=lambda p: -p[3])


def label_regions(
    canvas: np.ndarray,
    mask: np.ndarray,
    class_names: Sequence[str],
    min_area: Optional[int] = None,
    avoid: Sequence[Box] = (),
) -> np.ndarray:
    """Write the class name on every region large enough, centred on a point inside it; a label
    that would cover one already written (larger regions go first) or an ``avoid`` box is skipped. In place."""
    h, w = mask.shape[:2]
    min_area = min_area if min_area is not None else max(64, h * w // 400)
    scale = font_scale(canvas.shape)
    taken: List[Box] = list(avoid)
    for cls, x, y, _ in label_points(mask, len(class_names), min_area):
        text = _ascii(class_names[cls])
        (tw, th), base = cv2.getTextSize(text, FONT, scale, _thickness(scale))
        tw, th = tw + 2, th + 1  # the one-pixel edge around the glyphs
        x0 = int(np.clip(x - tw // 2, 1, max(w - tw, 1)))
        y0 = int(np.clip(y + th // 2, th, max(h - base, th)))
        box = (x0, y0 - th, x0 + tw, y0 + base)
        if any(box[0] < b[2] and b[0] < box[2] and box[1] < b[3] and b[1] < box[3] for b in taken):
            continue
        taken.append(box)
        draw_text(canvas, text, (x0, y0), scale)
    return canvas


def add_legend(
    canvas: np.ndarray,
    classes: Iterable[int],
    class_names: Sequence[str],
    palette: np.ndarray,
    background: Tuple[int, int, int] = (255, 255, 255),
) -> np.ndarray:
    """A new image: ``canvas`` with a panel on the right listing a swatch and name per class."""
    classes = [int(c) for c in classes]
    scale = font_scale(canvas.shape) * 0.9
    (_, th), _ = cv2.getTextSize("Ag", FONT, scale, 1)
    row, pad = th + 10, 8
    names = [_ascii(class_names[c]) for c in classes]
    width = pad * 3 + row + max([cv2.getTextSize(n, FONT, scale, 1)[0][0] for n in names] + [0])
    height = max(canvas.shape[0], pad * 2 + row * len(classes))
    out = np.full((height, canvas.shape[1] + width, 3), background, np.uint8)
    out[: canvas.shape[0], : canvas.shape[1]] = canvas
    x = canvas.shape[1] + pad
    for i, (cls, name) in enumerate(zip(classes, names)):
        y = pad + i * row
        cv2.rectangle(out, (x, y), (x + row - 4, y + row - 4), tuple(int(v) for v in palette[cls]), -1)
        cv2.rectangle(out, (x, y), (x + row - 4, y + row - 4), (0, 0, 0), 1)
        cv2.putText(out, name, (x + row + pad, y + row - 8), FONT, scale, (0, 0, 0), 1, cv2.LINE_AA)
    return out


def draw_legend(
    canvas: np.ndarray,
    classes: Iterable[int],
    class_names: Sequence[str],
    palette: np.ndarray,
    mask: Optional[np.ndarray] = None,
) -> Optional[Box]:
    """In place: a swatch and name per class on a light panel inside the corner of ``canvas`` that
    hides the fewest pixels of ``mask``'s classes but its commonest, so the picture keeps the input's size. Rows that do
    not fit the height are summed up in a last "+N more" row. Returns the panel's box (x0, y0, x1, y1)."""
    classes = [int(c) for c in classes]
    h, w = canvas.shape[:2]
    scale = font_scale(canvas.shape) * 0.8
    row, pad = cv2.getTextSize("Ag", FONT, scale, 1)[0][1] + 8, 4
    fit = max(1, (h - 2 * pad) // row)
    if not classes:
        return None
    rows = [(c, _ascii(class_names[c])) for c in classes]
    if len(rows) > fit:
        rows = rows[: fit - 1] + [(None, f"+{len(rows) - fit + 1} more")]
    width = min(w, pad * 3 + row + max(cv2.getTextSize(n, FONT, scale, 1)[0][0] for _, n in rows))
    height = min(h, pad * 2 + row * len(rows))
    corners = [(w - width, 0), (0, 0), (w - width, h - height), (0, h - height)]
    if mask is not None:  # hide the fewest pixels of classes other than the commonest (the background)
        is_class = (mask >= 0) & (mask < len(palette))
        counts = np.bincount(mask[is_class].ravel())
        if np.count_nonzero(counts) > 1:
            is_class &= mask != counts.argmax()
        corners.sort(key=lambda c: int(is_class[c[1] : c[1] + height, c[0] : c[0] + width].sum()))
    x0, y0 = corners[0]
    panel = canvas[y0 : y0 + height, x0 : x0 + width]
    panel[:] = np.rint(panel * 0.25 + 255 * 0.75).astype(np.uint8)  # the picture shows faintly through
    for i, (cls, name) in enumerate(rows):
        x, y = x0 + pad, y0 + pad + i * row
        if cls is not None:
            cv2.rectangle(canvas, (x, y + 2), (x + row - 6, y + row - 4), tuple(int(v) for v in palette[cls]), -1)
            cv2.rectangle(canvas, (x, y + 2), (x + row - 6, y + row - 4), (0, 0, 0), 1)
        cv2.putText(canvas, name, (x + row, y + row - 7), FONT, scale, (0, 0, 0), 1, cv2.LINE_AA)
    return x0, y0, x0 + width, y0 + height


def hide_classes(mask: np.ndarray, skip: Iterable[int]) -> np.ndarray:
    """``mask`` with the pixels of the ``skip`` classes set to -1 (no class): not painted, outlined or named."""
    skip = [int(c) for c in skip]
    return np.where(np.isin(mask, skip), -1, mask) if skip else mask


def present_classes(*masks: np.ndarray, num_classes: int) -> List[int]:
    ids = np.unique(np.concatenate([np.unique(m) for m in masks]))
    return [int(c) for c in ids if 0 <= c < num_classes]


def render(
    image: np.ndarray,
    mask: np.ndarray,
    class_names: Sequence[str],
    palette=None,
    alpha: float = 0.5,
    outlines: bool = True,
    labels: bool = True,
    legend: bool = True,
    min_area: Optional[int] = None,
    skip: Iterable[int] = (),
) -> np.ndarray:
    """The region-labeling picture at the image's size, so it lays over the image: colour overlay,
    region outlines, class names on the regions and a legend of the classes present inside a corner.
    ``skip`` classes (e.g. background) are left as the image: no colour, outline, name or legend row."""
    colours = palette_array(len(class_names), palette)
    shown = hide_classes(mask, skip)
    canvas = overlay(image, shown, colours, alpha)
    if outlines:
        draw_outlines(canvas, shown, num_classes=len(class_names))
    box = None
    if legend:  # before the labels, which then keep off its panel
        box = draw_legend(canvas, present_classes(shown, num_classes=len(class_names)), class_names, colours, shown)
    if labels:
        label_regions(canvas, shown, class_names, min_area, avoid=[box] if box else [])
    return canvas


def error_map(pred: np.ndarray, target: np.ndarray, ignore_index: int) -> np.ndarray:
    """Black where right, red where wrong, grey where the ground truth is ignored."""
    out = np.zeros(pred.shape + (3,), np.uint8)
    out[pred != target] = (220, 30, 30)
    out[target == ignore_index] = (110, 110, 110)
    return out


def comparison(
    image: np.ndarray,
    target: np.ndarray,
    pred: np.ndarray,
    class_names: Sequence[str],
    palette,
    ignore_index: int,
    alpha: float = 0.6,
) -> np.ndarray:
    """image | ground truth | prediction | error map, titled, with one legend for both masks."""
    colours = palette_array(len(class_names), palette)
    image = np.ascontiguousarray(image)  # e.g. a batch tensor's permute(1, 2, 0) view
    tiles = [image.copy()]
    for mask in (target, pred):
        tile = overlay(image, mask, colours, alpha)
        label_regions(draw_outlines(tile, mask), mask, class_names)
        tiles.append(tile)
    tiles.append(error_map(pred, target, ignore_index))
    titles = ["image", "ground truth", "prediction", "errors (red)"]
    scale = font_scale(image.shape)
    bar = cv2.getTextSize("Ag", FONT, scale, 1)[0][1] + 12
    gap = np.full((image.shape[0] + bar, 4, 3), 255, np.uint8)
    columns = []
    for tile, title in zip(tiles, titles):
        column = np.full((image.shape[0] + bar, image.shape[1], 3), 255, np.uint8)
        column[bar:] = tile
        cv2.putText(column, title, (4, bar - 6), FONT, scale, (0, 0, 0), 1, cv2.LINE_AA)
        columns += [column, gap]
    return add_legend(
        np.hstack(columns[:-1]), present_classes(target, pred, num_classes=len(class_names)), class_names, colours
    )


def save_rgb(path, image: np.ndarray) -> Path:
    """Encoded in memory, then written through ``atomic_write``: a full disk is an OutputError naming
    ``path`` and saying so, and an earlier file there stays whole."""
    path = Path(path)
    try:
        written, data = cv2.imencode(path.suffix or ".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    except cv2.error as exc:  # no encoder for the extension
        written, why = False, f" ({str(exc).strip().splitlines()[-1]})"
    else:
        why = ""
    if not written:
        raise OutputError(f"could not write {path}{why}; use a .png or .jpg path in a writable folder")
    with atomic_write(path) as tmp:
        tmp.write_bytes(data.tobytes())
    return path


def save_index_png(path, mask: np.ndarray, palette: np.ndarray, compress_level: int = 6, atomic: bool = True) -> Path:
    """A palette ('P') PNG whose pixel values are the class ids, so tools read ids and viewers see colours.
    More than 256 classes do not fit a palette: those are written as 16-bit grey PNGs. ``compress_level``
    (zlib, 0-9) trades size for speed: the studio saves at 1 on every stroke. ``atomic=False`` writes
    ``path`` directly, for callers that already write to a temporary file of their own (the studio)."""
    path = Path(path)
    if len(palette) > 256 or int(mask.max(initial=0)) > 255:
        im, options = Image.fromarray(mask.astype(np.uint16)), {}
    else:
        im, options = Image.fromarray(mask.astype(np.uint8)), {"compress_level": compress_level}  # L; P below
        flat = np.zeros((256, 3), np.uint8)
        flat[: len(palette)] = palette
        im.putpalette(flat.reshape(-1).tolist())
    if not atomic:
        im.save(path, format="PNG", **options)
        return path
    with atomic_write(path) as tmp:  # an earlier mask stays whole if the disk fills
        im.save(tmp, format="PNG", **options)
    return path
