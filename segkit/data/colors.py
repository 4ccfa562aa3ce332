"""Colour-coded masks: RGB masks whose colours are classes (labelme, CVAT, Kaggle's CamVid ``*_L.png``).

``data.class_colors`` names the colours: a CSV (``name,r,g,b``, CamVid's ``class_dict.csv``; relative to
``data.root``) or a list of ``[r, g, b]`` in class order. ``data.ignore_colors`` become ``ignore_index`` (a CSV
row whose colour is there is not a class, so a ``Void`` row can be ignored). Any other colour is unknown: an
error naming it, or ``ignore_index`` with ``data.unknown_colors: ignore``. ``segkit check`` lists them all.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from .io import DataError

Colour = Tuple[int, int, int]


def colour_keys(rgb: np.ndarray) -> np.ndarray:
    """H x W x 3 uint8 -> H x W int32 keys r<<16 | g<<8 | b."""
    rgb = rgb.astype(np.int32)
    return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]


def key_colour(key: int) -> Colour:
    return (key >> 16) & 255, (key >> 8) & 255, key & 255


def _colour(value, where: str) -> Colour:
    try:
        r, g, b = (int(v) for v in value)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{where}: colour {value!r} is not [r, g, b]") from exc
    if not all(0 <= c <= 255 for c in (r, g, b)):
        raise DataError(f"{where}: colour {[r, g, b]} has a value outside 0..255")
    return r, g, b


def read_class_csv(path: Path) -> List[Tuple[str, Colour]]:
    """(name, colour) rows of a ``name,r,g,b`` CSV (a header row naming the columns is skipped)."""
    if not path.is_file():
        raise DataError(f"data.class_colors: {path} not found (a CSV path is relative to data.root)")
    rows = []
    with open(path, newline="", encoding="utf-8-sig") as f:
        for n, row in enumerate(csv.reader(f), 1):
            row = [c.strip() for c in row]
            if not row or not any(row):
                continue
            if n == 1 and not row[-1].lstrip("-").isdigit():
                continue  # header: name,r,g,b
            if len(row) != 4:
                raise DataError(f"{path} line {n}: expected name,r,g,b, got {','.join(row)}")
            rows.append((row[0], _colour(row[1:], f"{path} line {n}")))
    if not rows:
        raise DataError(f"{path}: no name,r,g,b rows (data.class_colors)")
    return rows


class ColorTable:
    """Class colours -> class ids. ``names`` come from a CSV (None for a list), ``palette`` is the class colours."""

    def __init__(
        self,
        colours: Sequence[Colour],
        ignore: Sequence[Colour] = (),
        ignore_index: int = 255,
        unknown: str = "error",
        names: Optional[List[str]] = None,
    ):
        self.palette = [list(c) for c in colours]
        self.names, self.ignore_index, self.unknown_ignored = names, ignore_index, unknown == "ignore"
        keys = [(c[0] << 16) | (c[1] << 8) | c[2] for c in colours]
        ids = list(range(len(keys)))
        for c in ignore:
            keys.append((c[0] << 16) | (c[1] << 8) | c[2])
            ids.append(ignore_index)
        twice = [key_colour(k) for k in sorted(set(keys)) if keys.count(k) > 1]
        if twice:
            raise DataError(f"data.class_colors / ignore_colors: colour {list(twice[0])} is listed twice")
        order = np.argsort(keys)
        self.keys = np.asarray(keys, np.int32)[order]
        self.ids = np.asarray(ids, np.int32)[order]

    @classmethod
    def from_config(cls, data) -> Optional["ColorTable"]:
        """From a ``DataConfig``; None without ``data.class_colors``."""
        spec = data.class_colors
        if spec is None or (not isinstance(spec, str) and len(spec) == 0):
            return None
        ignore = [_colour(c, "data.ignore_colors") for c in data.ignore_colors]
        if isinstance(spec, str):
            path = Path(spec) if Path(spec).is_absolute() else Path(data.root) / spec
            rows = [(n, c) for n, c in read_class_csv(path) if c not in ignore]
            names, colours = [n for n, _ in rows], [c for _, c in rows]
            source = str(path)
        else:
            names, colours, source = None, [_colour(c, "data.class_colors") for c in spec], "data.class_colors"
        if len(colours) != data.num_classes:
            raise DataError(
                f"{source} names {len(colours)} class colours (besides data.ignore_colors) but "
                f"data.num_classes={data.num_classes}: set data.num_classes={len(colours)}, or list "
                f"the colours to leave out in data.ignore_colors"
            )
        return cls(colours, ignore, data.ignore_index, data.unknown_colors, names)

    def to_index(self, rgb: np.ndarray, source: object = "", unknown: Optional[Dict[Colour, int]] = None) -> np.ndarray:
        """H x W x 3 colours -> H x W int32 class ids (ignore colours: ignore_index). An unknown colour is an
        error naming it, unless ``data.unknown_colors: ignore`` or ``unknown`` collects them (colour -> pixels)."""
        keys = colour_keys(rgb)
        at = np.minimum(np.searchsorted(self.keys, keys), len(self.keys) - 1)
        known = self.keys[at] == keys
        out = np.where(known, self.ids[at], self.ignore_index).astype(np.int32)
        if not known.all():
            values, counts = np.unique(keys[~known], return_counts=True)
            found = {key_colour(int(k)): int(c) for k, c in zip(values, counts)}
            if unknown is not None:
                for colour, count in found.items():
                    unknown[colour] = unknown.get(colour, 0) + count
            elif not self.unknown_ignored:
                listed = ", ".join(f"{list(c)} ({n} px)" for c, n in sorted(found.items(), key=lambda kv: -kv[1])[:8])
                raise DataError(
                    f"mask {source} has colour(s) that are neither a class (data.class_colors) nor in "
                    f"data.ignore_colors: {listed}. Anti-aliased edges look like this: re-export "
                    f"the masks without smoothing, add the colours to data.ignore_colors, or set "
                    f"data.unknown_colors=ignore (segkit check lists every such colour)."
                )
        return out
