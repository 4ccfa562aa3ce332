"""The studio's state, without the web: the images, the model's view of each (cached), the labels
being corrected, their undo history, and the atomic writes under the masks folder.

A *label* is the mask a person owns: ``<masks>/<stem>.png`` when it exists (ground truth or an earlier
correction), else it starts as a copy of the model's prediction at the first edit. The prediction
itself is never written; only labels are, each as a palette PNG of the image's size. An image's stem
is the one `segkit infer` names its outputs by (``unique_output_stems``): a/img.png, b/img.png -> a_img, b_img.
"""

from __future__ import annotations

import errno
import os
import re
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np
import torch

from segkit.evaluation.metrics import image_scores
from segkit.visualization.overlays import palette_array, save_index_png

from ..annotations.regions import unique_output_stems
from ..data import DataError, read_mask
from ..errors import OutputError, SegkitError, current_umask
from ..errors import atomic_write as errors_atomic_write

HISTORY = 50  # undo steps kept per image
SPLIT_FILE = "labelled.txt"  # the stems with a label, for data.split_file when fine-tuning
TEMP_PREFIX = ".segkit-studio-"  # temporary files: .segkit-studio-<pid>-<stem>.<random>.tmp
_LEGACY_TEMP = re.compile(r"\.(?P<stem>.+)\.[a-z0-9_]{8}\.(png|txt)")  # what studios before the prefix left
Box = Tuple[int, int, int, int]  # y0, x0, h, w


class StudioError(SegkitError, ValueError):
    """A request the studio refuses (bad stem, class or coordinates); nothing was changed."""


class LabelNotSaved(OutputError):
    """A label could not be written (a full disk, no permission); the studio's state stays what is on disk."""

    def __init__(self, message: str, full: bool = False):
        super().__init__(message)
        self.full = full


class Analysis:
    """What the model says about one image: class ids, the winning probability (0..255) and the
    mean pixel entropy (0 = certain, 1 = uniform over the classes)."""

    def __init__(self, logits: torch.Tensor):
        probs = torch.softmax(logits.float(), 0)
        conf, pred = probs.max(0)
        entropy = -(probs * torch.log(probs.clamp(min=1e-12))).sum(0) / np.log(max(probs.shape[0], 2))
        self.pred = pred.to(torch.uint8).numpy()
        self.confidence = torch.round(conf * 255).to(torch.uint8).numpy()
        self.uncertainty = float(entropy.mean())


class Studio:
    """Images to review with ``predictor``; labels read from and written to ``masks_dir``. The page shows
    ``display_bands`` of each image (``to_display``); the model sees the bands its checkpoint names."""

    def __init__(
        self,
        predictor,
        images: Sequence[Path],
        masks_dir: Path,
        cache_size: int = 16,
        checkpoint: Optional[Path] = None,
        display_bands: Optional[Sequence[int]] = None,
    ):
        self.predictor, self.masks_dir = predictor, Path(masks_dir)
        self.display_bands = display_bands  # 1-based bands the page shows as R, G, B (None: the first three)
        self.checkpoint = Path(checkpoint) if checkpoint else None
        self.num_classes = predictor.num_classes
        self.ignore_index = int(predictor.cfg.data.ignore_index)
        if self.num_classes > 255 or not 0 <= self.ignore_index <= 255:
            raise StudioError(
                f"the studio stores labels as 8-bit PNGs: {self.num_classes} classes with ignore_index "
                f"{self.ignore_index} do not fit (data.num_classes <= 255, data.ignore_index <= 255)"
            )
        self.palette = palette_array(self.num_classes, predictor.palette)
        # keyed as `segkit infer` names its outputs: a/img.png and b/img.png are a_img and b_img, not one 'img'
        self.images: Dict[str, Path] = {stem: Path(p) for p, stem in unique_output_stems(images).items()}
        self.cache_size = max(1, cache_size)
        self._analyses: "OrderedDict[str, Analysis]" = OrderedDict()
        self._labels: Dict[str, np.ndarray] = {}
        self._undo: Dict[str, List[Tuple[Box, np.ndarray, np.ndarray]]] = {}
        self._redo: Dict[str, List[Tuple[Box, np.ndarray, np.ndarray]]] = {}
        self.summaries: Dict[str, dict] = {}
        self._stale: set = set()
        self._model_lock, self._lock = threading.Lock(), threading.RLock()
        self.file_mode = 0o666 & ~current_umask()  # labels get the permissions any new file would
        self.removed_temporaries = remove_stale_temporaries(self.masks_dir, self.images)

    # ------------------------------------------------------------------ reading
    def path(self, stem: str) -> Path:
        if stem not in self.images:
            raise KeyError(f"no image with the stem '{stem}' was given to the studio")
        return self.images[stem]

    def mask_path(self, stem: str) -> Path:
        self.path(stem)
        return self.masks_dir / f"{stem}.png"

    def analysis(self, stem: str) -> Analysis:
        """The model's prediction for ``stem``, computed once and kept in a bounded LRU."""
        path = self.path(stem)
        with self._model_lock:
            if stem in self._analyses:
                self._analyses.move_to_end(stem)
                return self._analyses[stem]
            found = Analysis(self.predictor.logits([path])[0].cpu())
            self._analyses[stem] = found
            while len(self._analyses) > self.cache_size:
                self._analyses.popitem(last=False)
        self._summarise(stem, found)
        return found

    def label(self, stem: str) -> Optional[np.ndarray]:
        """The person's mask for ``stem`` (uint8, the image's size), or None if there is none yet."""
        with self._lock:
            if stem not in self._labels:
                file = self.mask_path(stem)
                if not file.is_file():
                    return None
                mask = read_mask(file)
                h, w = self.size(stem)
                if mask.shape != (h, w) or mask.max(initial=0) > 255:
                    raise DataError(
                        f"{file}: {mask.shape[1]}x{mask.shape[0]} mask for a {w}x{h} image (or ids > 255); "
                        f"move it out of {self.masks_dir} or fix it"
                    )
                self._labels[stem] = mask.astype(np.uint8)
            return self._labels[stem]

    def size(self, stem: str) -> Tuple[int, int]:
        if stem in self._analyses:
            return self._analyses[stem].pred.shape
        return self.analysis(stem).pred.shape

    # ------------------------------------------------------------------ review order
    def _summarise(self, stem: str, found: Analysis) -> None:
        label = self.label(stem)
        summary = {"stem": stem, "uncertainty": found.uncertainty, "labelled": label is not None}
        if label is not None:
            scores = image_scores(found.pred, label, self.num_classes, self.ignore_index)
            summary.update(mIoU=scores["mIoU"], confusion=np.asarray(scores["confusion"]))
        self.summaries[stem] = summary

    def score_all(self, stop: Optional[threading.Event] = None) -> None:
        """Run the model over every image not yet scored (the review order needs them all)."""
        for stem in list(self.images):
            if stop is not None and stop.is_set():
                return
            if stem not in self.summaries:
                try:
                    self.analysis(stem)
                except (DataError, OSError) as exc:
                    self.summaries[stem] = {"stem": stem, "error": str(exc)}

    def order(self, cell: Optional[Tuple[int, int]] = None) -> List[str]:
        """Stems to review first: with ``cell`` (ground truth, predicted) the images with the most such
        pixels; else labelled images worst mIoU first, then the rest most uncertain first; unscored last."""
        self._refresh()
        scored = [s for s in self.summaries.values() if "error" not in s]
        if cell is not None:
            gt, pred = cell
            ranked = sorted((s for s in scored if "confusion" in s), key=lambda s: -int(s["confusion"][gt, pred]))
            return [s["stem"] for s in ranked if s["confusion"][gt, pred] > 0]

        def key(s):
            miou = s.get("mIoU")
            return (0, miou if miou == miou else 1.0) if miou is not None else (1, -s["uncertainty"])

        ranked = [s["stem"] for s in sorted(scored, key=key)]
        return ranked + [stem for stem in self.images if stem not in set(ranked)]

    def confusion(self) -> Optional[np.ndarray]:
        """The summed confusion of prediction against label over the labelled, scored images."""
        self._refresh()
        found = [s["confusion"] for s in self.summaries.values() if "confusion" in s]
        return np.sum(found, axis=0) if found else None

    def _refresh(self) -> None:
        with self._lock:
            stale, self._stale = self._stale, set()
        for stem in stale:
            self._summarise(stem, self.analysis(stem))

    # ------------------------------------------------------------------ correction
    def _check_class(self, cls) -> int:
        if (
            not isinstance(cls, int)
            or isinstance(cls, bool)
            or not (0 <= cls < self.num_classes or cls == self.ignore_index)
        ):
            raise StudioError(
                f"class {cls!r} is not a class id (0..{self.num_classes - 1}) nor the ignore index {self.ignore_index}"
            )
        return cls

    def _check_point(self, stem: str, x, y) -> Tuple[int, int]:
        h, w = self.size(stem)
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in (x, y)) or not (0 <= x < w and 0 <= y < h):
            raise StudioError(f"point ({x!r}, {y!r}) is outside the {w}x{h} image '{stem}'")
        return x, y

    def working(self, stem: str) -> np.ndarray:
        """The label to edit: the saved one, else a copy of the prediction."""
        label = self.label(stem)
        return label if label is not None else self.analysis(stem).pred.copy()

    def fill_region(self, stem: str, x: int, y: int, cls: int) -> Optional[Box]:
        """Give ``cls`` to the connected region (8-neighbours, one class) under (x, y); saves the label."""
        self.path(stem)
        cls, (x, y) = self._check_class(cls), self._check_point(stem, x, y)
        with self._lock:
            label = self.working(stem)
            after = label.copy()
            cv2.floodFill(after, None, (x, y), cls, 0, 0, 8)
            return self._commit(stem, label, after)

    def paint(self, stem: str, points: Sequence, radius: int, cls: int) -> Optional[Box]:
        """A brush stroke of ``radius`` through ``points`` [[x, y], ...]; ``cls`` = ignore index erases."""
        self.path(stem)
        cls = self._check_class(cls)
        if not isinstance(radius, int) or not 0 <= radius <= 1024:
            raise StudioError(f"brush radius {radius!r} must be a whole number of pixels in 0..1024")
        if (
            not isinstance(points, list)
            or not 0 < len(points) <= 10000
            or not all(isinstance(p, list) and len(p) == 2 for p in points)
        ):
            raise StudioError("points must be a list of 1..10000 [x, y] pairs")
        pts = [self._check_point(stem, *p) for p in points]
        with self._lock:
            label = self.working(stem)
            after = label.copy()
            for a, b in zip(pts, pts[1:] or pts):
                # OpenCV's thick lines have round caps: thickness 2r covers exactly the discs of radius r
                cv2.line(after, a, b, cls, max(1, 2 * radius), cv2.LINE_8)
            return self._commit(stem, label, after)

    def accept(self, stem: str) -> Path:
        """Save the current label (the prediction as it stands if nothing was edited)."""
        with self._lock:
            label = self.working(stem)
            return self._save(stem, label)

    def _commit(self, stem: str, before: np.ndarray, after: np.ndarray) -> Optional[Box]:
        box = changed_box(before, after)
        self._save(stem, after)  # raises LabelNotSaved with nothing below done: memory stays what the disk holds
        if box is not None:
            y0, x0, h, w = box
            window = (slice(y0, y0 + h), slice(x0, x0 + w))
            self._undo.setdefault(stem, []).append((box, before[window].copy(), after[window].copy()))
            del self._undo[stem][:-HISTORY]
            self._redo.pop(stem, None)
        return box

    def step(self, stem: str, back: bool) -> Optional[Box]:
        """Undo (``back``) or redo one edit of ``stem``; saves the result. None when there is nothing to do."""
        self.path(stem)
        with self._lock:
            source, target = (self._undo, self._redo) if back else (self._redo, self._undo)
            if not source.get(stem):
                return None
            box, before, after = source[stem][-1]
            y0, x0, h, w = box
            label = self._labels[stem].copy()
            label[y0 : y0 + h, x0 : x0 + w] = before if back else after
            self._save(stem, label)  # a failed save leaves both stacks as they were
            target.setdefault(stem, []).append(source[stem].pop())
            return box

    def _save(self, stem: str, label: np.ndarray) -> Path:
        """Write the label atomically: a temporary file in the same folder, then one rename (the last
        writer wins, and a reader never sees half a PNG). Only once the PNG is in place does the label in
        memory become ``label``; a failure raises LabelNotSaved naming the cause and the file."""
        target = self.mask_path(stem)
        try:
            self.masks_dir.mkdir(parents=True, exist_ok=True)
            atomic_write(
                target,
                lambda tmp: save_index_png(tmp, label, self.palette, compress_level=1, atomic=False),
                self.file_mode,
            )
        except (OSError, OutputError) as exc:
            raise not_saved(written_error(exc), target) from exc
        self._labels[stem] = label
        self._stale.add(stem)  # re-scored when the order is next asked for, not on every stroke
        split = self.masks_dir / SPLIT_FILE
        labelled = sorted(s for s in self.images if (self.masks_dir / f"{s}.png").is_file())
        try:
            atomic_write(split, lambda tmp: Path(tmp).write_text("\n".join(labelled) + "\n"), self.file_mode)
        except OutputError as exc:
            raise not_saved(
                written_error(exc), split, f" ({target} was saved; {SPLIT_FILE} does not list it yet)"
            ) from exc
        return target

    # ------------------------------------------------------------------ back into training
    def corrected_since_checkpoint(self) -> int:
        """Masks of these images written after the checkpoint was."""
        since = self.checkpoint.stat().st_mtime if self.checkpoint and self.checkpoint.is_file() else 0
        return sum(
            1 for stem in self.images if (p := self.masks_dir / f"{stem}.png").is_file() and p.stat().st_mtime > since
        )


def atomic_write(target: Path, write, mode: int) -> None:
    """``write(tmp)`` into a temporary file beside ``target`` (``segkit.errors.atomic_write``), given ``mode`` and
    renamed onto ``target``. The temporary name starts with TEMP_PREFIX and this process's id (see
    ``remove_stale_temporaries``). A failed write is an OutputError whose ``cause`` is the OSError."""
    with errors_atomic_write(target, prefix=f"{TEMP_PREFIX}{os.getpid()}-{target.stem}.", mode=mode) as tmp:
        write(tmp)


def written_error(exc: Exception) -> OSError:
    """The OSError of a failed write: itself, or the ``cause`` that atomic_write's OutputError carries."""
    return exc.cause if isinstance(exc, OutputError) else exc


def not_saved(exc: OSError, file: Path, note: str = "") -> LabelNotSaved:
    """'no space left on device: masks/x.png' from the OSError of writing ``file``."""
    cause = (exc.strerror or str(exc)).lower()
    return LabelNotSaved(f"{cause}: {file}{note}", full=exc.errno in (errno.ENOSPC, errno.EDQUOT))


def remove_stale_temporaries(masks_dir: Path, stems) -> List[Path]:
    """Delete the temporary files a studio that was killed mid-save left in ``masks_dir`` (those of a
    process that no longer runs, and the ``.<stem>.<random>.png`` ones of earlier versions); they would
    confuse `segkit check` and training. Temporaries of a studio still running are kept."""
    if not masks_dir.is_dir():
        return []
    removed = []
    for path in masks_dir.glob(".*"):
        pid = re.match(rf"{re.escape(TEMP_PREFIX)}(\d+)-", path.name)
        legacy = _LEGACY_TEMP.fullmatch(path.name)
        if (pid and not _running(int(pid.group(1)))) or (
            legacy and legacy.group("stem") in {*stems, Path(SPLIT_FILE).stem}
        ):
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def changed_box(before: np.ndarray, after: np.ndarray) -> Optional[Box]:
    """The bounding box (y0, x0, h, w) of the pixels that differ, or None."""
    rows = np.flatnonzero((before != after).any(1))
    if not rows.size:
        return None
    cols = np.flatnonzero((before[rows[0] : rows[-1] + 1] != after[rows[0] : rows[-1] + 1]).any(0))
    return int(rows[0]), int(cols[0]), int(rows[-1] - rows[0] + 1), int(cols[-1] - cols[0] + 1)
