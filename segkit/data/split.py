"""``segkit check --make-split 0.2``: split lists for a data set that ships without a validation split."""
from __future__ import annotations

import copy
from pathlib import Path
from typing import List

import numpy as np

from .filetable import texts
from .io import DataError
from .readers import build_dataset

SPLIT_FILE = "splits/{split}.txt"


def make_split(data, fraction: float, seed: int = 0) -> List[str]:
    """Hold out ``fraction`` of the pairs of data.train_split as data.val_split: one key per line in
    ``<root>/splits/<split>.txt``, an existing list never overwritten. Returns the lines to print."""
    if data.format != "folder":
        raise DataError(f"--make-split writes split lists for data.format=folder; the {data.format} reader "
                        f"has its own splits")
    if not 0 < fraction < 1:
        raise DataError(f"--make-split {fraction}: give the share of images to hold out, between 0 and 1 (e.g. 0.2)")
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
    chosen = {data.val_split: sorted(keys[i] for i in order[:held]),
              data.train_split: sorted(keys[i] for i in order[held:])}
    for split, path in paths.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(f"{k}\n" for k in chosen[split]))
    lines = [f"wrote {len(chosen[s])} keys to {paths[s]}" for s in paths]
    if not data.split_file:
        lines.append(f"use them with data.split_file={SPLIT_FILE} (both splits then list from "
                     f"data.image_dir={data.image_dir.format(split=data.train_split)})")
    return lines
