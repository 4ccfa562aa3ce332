"""Pictures of masks for region labeling: colours, overlays, outlines, class names on regions, legends.

All images are RGB uint8 H x W x 3 and masks integer H x W class ids. Pixels whose id is not a
class (``ignore_index``, e.g. 255) are left uncoloured. Drawing is OpenCV; the two charts of
``tools/eval.py`` (confusion matrix, per-class IoU) are matplotlib, imported only when used.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, List, Optional, Sequence, Tuple

import cv2
import numpy as np
from PIL import Image

from .data import default_palette

FONT = cv2.FONT_HERSHEY_SIMPLEX
Box = Tuple[int, int, int, int]


def palette_array(num_classes: int, palette: Optional[Sequence[Sequence[int]]] = None) -> np.ndarray:
    """num_classes x 3 uint8 colours: the given palette, else the VOC colour map."""
    colours = [list(c) for c in palette] if palette is not None and len(palette) else default_palette(num_classes)
    if len(colours) < num_classes:
        raise ValueError(f"palette has {len(colours)} colours for {num_classes} classes")
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
            raise ValueError(f"--skip-classes: {item!r} is not a class; the classes are {', '.join(class_names)}")
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
        raise ValueError(f"image {image.shape[1]}x{image.shape[0]} and mask {mask.shape[1]}x{mask.shape[0]} "
                         f"(W x H) differ in size")
    is_class = (mask >= 0) & (mask < len(palette))
    blended = image.astype(np.float32) * (1 - alpha) + colourise(mask, palette).astype(np.float32) * alpha
    out = np.where(is_class[..., None], np.rint(blended), image)
    return out.astype(np.uint8)


def draw_outlines(canvas: np.ndarray, mask: np.ndarray, colour: Tuple[int, int, int] = (255, 255, 255),
                  thickness: int = 1) -> np.ndarray:
    """Draw the outline of every region (connected pixels of one class) on ``canvas``, in place."""
    for cls in np.unique(mask):
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


def _text(canvas: np.ndarray, text: str, org: Tuple[int, int], scale: float) -> None:
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
            region = np.pad((labels[y:y + h, x:x + w] == k).astype(np.uint8), 1)
            dist = cv2.distanceTransform(region, cv2.DIST_L2, 5)
            py, px = np.unravel_index(int(np.argmax(dist)), dist.shape)
            points.append((int(cls), int(x + px - 1), int(y + py - 1), int(area)))
    return sorted(points, key=lambda p: -p[3])


def label_regions(canvas: np.ndarray, mask: np.ndarray, class_names: Sequence[str],
                  min_area: Optional[int] = None) -> np.ndarray:
    """Write the class name on every region large enough, centred on a point inside it; a label
    that would cover one already written (larger regions go first) is skipped. In place."""
    h, w = mask.shape[:2]
    min_area = min_area if min_area is not None else max(64, h * w // 400)
    scale = font_scale(canvas.shape)
    taken: List[Box] = []
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
        _text(canvas, text, (x0, y0), scale)
    return canvas


def add_legend(canvas: np.ndarray, classes: Iterable[int], class_names: Sequence[str], palette: np.ndarray,
               background: Tuple[int, int, int] = (255, 255, 255)) -> np.ndarray:
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


def present_classes(*masks: np.ndarray, num_classes: int) -> List[int]:
    ids = np.unique(np.concatenate([np.unique(m) for m in masks]))
    return [int(c) for c in ids if 0 <= c < num_classes]


def render(image: np.ndarray, mask: np.ndarray, class_names: Sequence[str], palette=None, alpha: float = 0.5,
           outlines: bool = True, labels: bool = True, legend: bool = True, min_area: Optional[int] = None) -> np.ndarray:
    """The region-labeling picture: colour overlay, region outlines, class names on the regions,
    and a legend of the classes present."""
    colours = palette_array(len(class_names), palette)
    canvas = overlay(image, mask, colours, alpha)
    if outlines:
        draw_outlines(canvas, mask)
    if labels:
        label_regions(canvas, mask, class_names, min_area)
    if legend:
        canvas = add_legend(canvas, present_classes(mask, num_classes=len(class_names)), class_names, colours)
    return canvas


def error_map(pred: np.ndarray, target: np.ndarray, ignore_index: int) -> np.ndarray:
    """Black where right, red where wrong, grey where the ground truth is ignored."""
    out = np.zeros(pred.shape + (3,), np.uint8)
    out[pred != target] = (220, 30, 30)
    out[target == ignore_index] = (110, 110, 110)
    return out


def comparison(image: np.ndarray, target: np.ndarray, pred: np.ndarray, class_names: Sequence[str], palette,
               ignore_index: int, alpha: float = 0.6) -> np.ndarray:
    """image | ground truth | prediction | error map, titled, with one legend for both masks."""
    colours = palette_array(len(class_names), palette)
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
    return add_legend(np.hstack(columns[:-1]), present_classes(target, pred, num_classes=len(class_names)),
                      class_names, colours)


def save_rgb(path, image: np.ndarray) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR)):
        raise OSError(f"could not write {path}")
    return path


def save_index_png(path, mask: np.ndarray, palette: np.ndarray) -> Path:
    """A palette ('P') PNG whose pixel values are the class ids, so tools read ids and viewers see colours.
    More than 256 classes do not fit a palette: those are written as 16-bit grey PNGs."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if len(palette) > 256 or int(mask.max(initial=0)) > 255:
        Image.fromarray(mask.astype(np.uint16)).save(path)
        return path
    im = Image.fromarray(mask.astype(np.uint8))  # mode L; putpalette makes it P
    flat = np.zeros((256, 3), np.uint8)
    flat[: len(palette)] = palette
    im.putpalette(flat.reshape(-1).tolist())
    im.save(path)
    return path


def plot_confusion(matrix: Sequence[Sequence[int]], class_names: Sequence[str], path) -> Path:
    """Confusion matrix normalised per ground-truth row (the diagonal is each class's accuracy)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    m = np.asarray(matrix, dtype=np.float64)
    rows = m.sum(1, keepdims=True)
    norm = np.divide(m, rows, out=np.zeros_like(m), where=rows > 0)
    n = len(class_names)
    size = max(4.0, 0.45 * n + 2)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(n), class_names, rotation=60, ha="right")
    ax.set_yticks(range(n), class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("ground truth")
    if n <= 30:
        for i in range(n):
            for j in range(n):
                if norm[i, j] >= 0.005:
                    ax.text(j, i, f"{norm[i, j]:.2f}", ha="center", va="center", fontsize=7,
                            color="white" if norm[i, j] > 0.5 else "black")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    ax.set_title("confusion matrix (rows normalised)")
    return _save_figure(fig, path)


def plot_iou(iou: Sequence[float], class_names: Sequence[str], path, miou: Optional[float] = None) -> Path:
    """Horizontal bars of per-class IoU (%); classes with undefined IoU are marked n/a."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    values = np.asarray(iou, dtype=np.float64) * 100
    n = len(class_names)
    fig, ax = plt.subplots(figsize=(7, max(2.5, 0.3 * n + 1)))
    ax.barh(range(n), np.nan_to_num(values), color="tab:blue")
    for i, v in enumerate(values):
        ax.text((0 if np.isnan(v) else v) + 1, i, "n/a" if np.isnan(v) else f"{v:.1f}", va="center", fontsize=8)
    if miou is not None and miou == miou:
        ax.axvline(miou * 100, color="tab:red", linestyle="--", label=f"mIoU {miou * 100:.2f}")
        ax.legend(loc="lower right")
    ax.set_yticks(range(n), class_names)
    ax.invert_yaxis()
    ax.set_xlim(0, 105)
    ax.set_xlabel("IoU (%)")
    ax.set_title("per-class IoU")
    return _save_figure(fig, path)


def _save_figure(fig, path) -> Path:
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
