"""``segkit check --make-split 0.2``: split lists for a data set that ships without a validation split."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np

from .filetable import texts
from .io import DataError
from .readers import build_dataset

SPLIT_FILE = "splits/{split}.txt"


def split_settings(data) -> Dict[str, str]:
    """The data.* values that read the written lists: data.split_file, and every folder fixed to the training
    split's (the lists hold keys of that one folder, so 'images/{split}' would look for val keys in images/val)."""
    settings = {} if data.split_file else {"split_file": SPLIT_FILE}
    for key in ("image_dir", "mask_dir", "ignore_mask_dir"):
        value = getattr(data, key)
        if value and "{split}" in value:
            settings[key] = value.format(split=data.train_split)
    return settings


def make_split(data, fraction: float, seed: int = 0) -> Tuple[List[str], Dict[str, str]]:
    """Hold out ``fraction`` of the pairs of data.train_split as data.val_split: one key per line in
    ``<root>/splits/<split>.txt``, an existing list never overwritten. Returns the lines to print and the
    data.* settings (``split_settings``) under which the lists are read."""
    if data.format != "folder":
        raise DataError(
            f"--make-split writes split lists for data.format=folder; the {data.format} reader has its own splits"
        )
    if not 0 < fraction < 1:
        raise DataError(f"--make-split {fraction}: give the share of images to hold out, between 0 and 1 (e.g. 0.2)")
    if "+" in data.train_split:
        raise DataError(
            f"--make-split: data.train_split={data.train_split!r} joins splits, and the lists name keys "
            f"of one folder; give one split (e.g. data.train_split={data.train_split.split('+')[0]})"
        )
    split_file = data.split_file or SPLIT_FILE
    paths = {s: Path(data.root) / split_file.format(split=s) for s in (data.train_split, data.val_split)}
    existing = [str(p) for p in paths.values() if p.exists()]
    if existing:
        raise DataError(f"--make-split: {', '.join(existing)} exists already; remove it to write a new split")
    everything = copy.deepcopy(data)
    everything.split_file = None  # list every pair of the folder, not the lists about to be written
    keys = texts(build_dataset(everything, data.train_split).pairs.keys)
    held = max(1, round(fraction * len(keys)))
    if held >= len(keys):
        raise DataError(f"--make-split {fraction}: {len(keys)} pair(s) leave nothing to train on; lower the share")
    order = np.random.default_rng(seed).permutation(len(keys))
    chosen = {
        data.val_split: sorted(keys[i] for i in order[:held]),
        data.train_split: sorted(keys[i] for i in order[held:]),
    }
    for split, path in paths.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(f"{k}\n" for k in chosen[split]))
    lines = [f"wrote {len(chosen[s])} keys to {paths[s]}" for s in paths]
    settings = split_settings(data)
    if settings:
        lines.append(
            "train and check with these overrides (both splits then list from one folder): "
            + " ".join(f"data.{k}={v}" for k, v in settings.items())
        )
    return lines, settings
