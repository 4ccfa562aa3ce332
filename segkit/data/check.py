"""Can this data set train? The logic behind ``tools/check_dataset.py``.

One pass over every pair of each split: list problems (unpaired files, missing folders, bad split
lists), read every image and mask (unreadable files, size mismatches), and histogram the raw mask
values, which answer the questions users ask most: which value is background, and is it a class?
why are my labels 255? which classes are rare, and what weights would balance them?
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

import numpy as np

from segkit.config.checks import ignore_index_problem

from .datasets import OUTSIDE
from .io import DataError, Issue
from .loaders import build_scan_loader
from .normalize import band_ranges, dtype_range, training_range
from .readers import build_dataset
from .scan import PairScanner, mean_std, size_summary
from .stats import class_statistics, class_weights


@dataclass
class SplitCheck:
    split: str
    pairs: int = 0
    issues: List[Issue] = field(default_factory=list)  # listing problems, then per-file read problems
    raw_pixels: Dict[int, int] = field(default_factory=dict)  # raw mask value -> pixels
    raw_images: Dict[int, int] = field(default_factory=dict)  # raw mask value -> images holding it
    class_pixels: Optional[np.ndarray] = None
    class_images: Optional[np.ndarray] = None
    weights: Optional[List[float]] = None
    dataset: Optional[object] = None
    sizes: List[tuple] = field(default_factory=list)  # image H, W of each pair read
    mean: Optional[List[float]] = None  # per band, 0..1 units (the training split only)
    std: Optional[List[float]] = None
    dtypes: Dict[str, int] = field(default_factory=dict)  # pixel type -> images
    band_min: Optional[np.ndarray] = None  # per band, stored units
    band_max: Optional[np.ndarray] = None
    value_range: Optional[np.ndarray] = None  # bands x 2: the range mapped to 0..1 (given, measured or 0..255)
    range_source: str = ""  # where value_range comes from, in words
    unknown: Dict[tuple, list] = field(default_factory=dict)  # colour masks: colour -> [pixels, files]

    @property
    def ok(self) -> bool:
        return self.pairs > 0 and not any(i.fatal for i in self.issues)


def check_split(data, split: str, num_workers: int = 0, train: bool = False) -> SplitCheck:
    """Everything about one split of the data set ``data`` (a DataConfig); ``train``: absent classes are fatal."""
    result = SplitCheck(split)
    try:
        dataset = build_dataset(data, split, issues=result.issues)
    except DataError as exc:  # the config and the data disagree before any file is read
        result.issues.append(Issue(str(exc)))
        return result
    result.pairs = len(dataset)
    histograms = _scan(dataset, result, num_workers, train)
    _value_range(data, dataset, result, train)
    if result.unknown:
        result.issues.append(
            Issue(
                _unknown_message(result.unknown, data.unknown_colors == "ignore"), fatal=data.unknown_colors != "ignore"
            )
        )
    result.class_pixels, result.class_images, _ = class_statistics(dataset, histograms)
    result.weights = class_weights(dataset, histograms)
    invalid = [v for v in result.raw_pixels if _meaning(dataset, v)[1]]
    if invalid:
        result.issues.append(Issue(_invalid_message(dataset, sorted(invalid), sorted(result.raw_pixels))))
    absent = [f"{c} '{n}'" for c, n in enumerate(dataset.class_names) if result.class_pixels[c] == 0]
    if absent and histograms:
        # fatal in the training split only: the model could never learn these classes
        result.issues.append(
            Issue(
                f"class(es) {', '.join(absent[:20])} never appear in split '{split}'"
                + (
                    ": the model cannot learn them. Check data.num_classes and data.label_map "
                    "against the values found below."
                    if train
                    else ""
                ),
                fatal=train,
            )
        )
    result.dataset = dataset
    return result


def _scan(dataset, result: SplitCheck, num_workers: int, image_stats: bool) -> list:
    """Read every pair: problems into ``result``, raw-value counts, sizes, mean/std; the mask histograms."""
    histograms, sums, sq_sums, pixels = [], 0.0, 0.0, 0
    for scan in build_scan_loader(PairScanner(dataset, image_stats), num_workers):
        result.issues.extend(Issue(message, fatal) for message, fatal in scan.problems)
        if scan.size is not None:
            result.sizes.append(scan.size)
            result.dtypes[scan.dtype] = result.dtypes.get(scan.dtype, 0) + 1
            result.band_min = scan.band_min if result.band_min is None else np.minimum(result.band_min, scan.band_min)
            result.band_max = scan.band_max if result.band_max is None else np.maximum(result.band_max, scan.band_max)
        for colour, count in scan.unknown.items():
            seen = result.unknown.setdefault(colour, [0, []])
            seen[0] += count
            seen[1].append(scan.mask_name)
        if scan.channel_sum is not None:
            sums, sq_sums, pixels = sums + scan.channel_sum, sq_sums + scan.channel_sq_sum, pixels + np.prod(scan.size)
        if scan.hist is not None:
            histograms.append(scan.hist)
            for value, count in zip(*scan.hist):
                result.raw_pixels[int(value)] = result.raw_pixels.get(int(value), 0) + int(count)
                result.raw_images[int(value)] = result.raw_images.get(int(value), 0) + 1
    if pixels:
        result.mean, result.std = mean_std(sums, sq_sums, int(pixels))  # stored units: _value_range maps them
    return histograms


def _value_range(data, dataset, result: SplitCheck, train: bool) -> None:
    """The range mapped to 0..1 as training would take it (given; null: 0..255 for 8-bit, else measured on the
    training split), and the split's mean/std in those units."""
    if result.band_min is None:
        return
    bands = len(result.band_min)
    given, result.range_source = band_ranges(data.value_range, bands), "data.value_range"
    deep = next((d for d in result.dtypes if d != "uint8"), None)
    if given is None and train and deep:
        measured = training_range(dataset)
        if measured:
            given = band_ranges(measured[0], bands)
            result.range_source = (
                "this split's 0.5/99.5 percentiles per band (data.value_range is null; "
                "training measures the same and stores it with the run)"
            )
    if given is None:
        given = np.asarray([dtype_range(np.dtype(deep)) if deep else [0.0, 255.0]] * bands)
        result.range_source = (
            "the pixel type's full range (data.value_range is null; the training split's "
            "percentiles are used when training)"
            if deep
            else "8-bit: 0..255"
        )
    result.value_range = given
    if result.mean is not None:
        lo, span = given[:, 0], given[:, 1] - given[:, 0]
        result.mean = [round(float(v), 4) for v in (np.asarray(result.mean) - lo) / span]
        result.std = [round(float(v), 4) for v in np.asarray(result.std) / span]


def _band_lines(result: SplitCheck) -> List[str]:
    """Each band's pixel type and range, and a warning where the data fill a small part of the range in use."""
    if result.band_min is None or result.value_range is None:
        return []
    types = ", ".join(f"{d} ({n} images)" for d, n in result.dtypes.items())
    lines = [f"  bands: {len(result.band_min)} of {types}; mapped to 0..1 from {result.range_source}:"]
    for b, (lo, hi, (rlo, rhi)) in enumerate(zip(result.band_min, result.band_max, result.value_range)):
        bits = ""
        deep = next((d for d in result.dtypes if np.dtype(d).kind in "ui" and d != "uint8"), None)
        if deep and hi > 0:
            bits = f", needs {int(np.ceil(np.log2(hi + 1)))} of {np.dtype(deep).itemsize * 8} bits"
        lines.append(f"    band {b + 1}: min {lo:g} max {hi:g}{bits}; range {rlo:g}..{rhi:g}")
        if (hi - lo) < 0.125 * (rhi - rlo):
            lines.append(
                f"  warning: band {b + 1} fills {100 * (hi - lo) / (rhi - rlo):.1f}% of the range "
                f"{rlo:g}..{rhi:g}, so the model sees a nearly flat image: set "
                f"data.value_range=[{lo:g}, {hi:g}] (or null to measure it on the training split)"
            )
    return lines


def _unknown_message(unknown: Dict[tuple, list], ignored: bool) -> str:
    listed = "; ".join(
        f"{list(c)}: {n} px in {len(files)} file(s), e.g. {', '.join(files[:3])}"
        for c, (n, files) in sorted(unknown.items(), key=lambda kv: -kv[1][0])[:20]
    )
    more = f" ... and {len(unknown) - 20} more" if len(unknown) > 20 else ""
    what = (
        "they are ignored (data.unknown_colors=ignore)"
        if ignored
        else "training refuses them. Anti-aliased edges look like this: re-export the masks without smoothing, "
        "add real classes to data.class_colors and the rest to data.ignore_colors, or set "
        "data.unknown_colors=ignore"
    )
    return (
        f"{len(unknown)} mask colour(s) are neither a class (data.class_colors) nor in data.ignore_colors: "
        f"{listed}{more}. {what[0].upper()}{what[1:]}."
    )


def _meaning(dataset, value: int):
    """(what raw ``value`` becomes, whether that is invalid)."""
    if value == OUTSIDE and dataset.ignore_masks is not None:
        return "ignored (outside the ignore mask)", False
    target = int(dataset.lut[value]) if 0 <= value < len(dataset.lut) else None
    if target == dataset.ignore_index:
        return f"ignored (ignore_index={dataset.ignore_index})", False
    if target is not None and 0 <= target < dataset.num_classes:
        return f"class {target} '{dataset.class_names[target]}'", False
    return f"INVALID: not a class (0..{dataset.num_classes - 1}) nor ignore_index", True


def _invalid_message(dataset, invalid: List[int], found: List[int]) -> str:
    hints = []
    if min(invalid) >= dataset.num_classes and found == list(range(max(found) + 1)):
        hints.append(f"if values 0..{max(found)} are all classes, set data.num_classes={max(found) + 1}")
    if 0 not in found and found == list(range(1, max(found) + 1)) and max(found) == dataset.num_classes:
        hints.append("classes are numbered from 1: set data.reduce_zero_label=true (or label_map {v: v-1})")
    if set(found) == {0, 255} or set(found) == {0, 1, 255}:
        hints.append("for binary masks saved as 0/255, set data.label_map={255: 1}")
    hints.append(f"map each value with data.label_map, e.g. {{{invalid[0]}: {dataset.ignore_index}}} to ignore it")
    return (
        f"mask value(s) {invalid[:20]} are neither a class (0..{dataset.num_classes - 1}) nor "
        f"ignore_index={dataset.ignore_index}: training would stop at the first such mask. Fix: " + "; or ".join(hints)
    )


def _pct(part: float, whole: float) -> str:
    return f"{100.0 * part / whole:.2f}%" if whole else "-"


def format_split(result: SplitCheck, is_train: bool) -> List[str]:
    lines = [f"split '{result.split}': {result.pairs} image/mask pairs"]
    for issue in result.issues:
        lines.append(f"  {'ERROR' if issue.fatal else 'warning'}: {issue.message}")
    dataset = result.dataset
    if dataset is None or not result.raw_pixels:
        return lines
    if result.sizes:
        lines.append(f"  image sizes (W x H): {size_summary(result.sizes)}")
    lines.extend(_band_lines(result))
    if result.mean is not None:
        lines.append(
            f"  channel mean/std (per band, 0..1 units after the value range) of this split, for the "
            f"config: data.mean={result.mean} data.std={result.std}"
        )
    total = sum(result.raw_pixels.values())
    lines.append(
        f"  label values found ({len(result.raw_pixels)}), as stored in the masks -> what segkit makes of them:"
    )
    for value in sorted(result.raw_pixels)[:60]:
        lines.append(
            f"    {value:>5} -> {_meaning(dataset, value)[0]:<44} {_pct(result.raw_pixels[value], total):>8} "
            f"of pixels, in {result.raw_images[value]} images"
        )
    if len(result.raw_pixels) > 60:
        lines.append(f"    ... {len(result.raw_pixels) - 60} more values")
    lines.extend(f"  note: {n}" for n in _notes(result, dataset, total))
    if is_train:
        lines.append(
            "  per class: share of labelled pixels, images holding it, suggested weight (median frequency, SegNet's definition):"
        )
        n_images = result.pairs
        for c, name in enumerate(dataset.class_names):
            lines.append(
                f"    {c:>3} {name[:24]:<24} {_pct(result.class_pixels[c], result.class_pixels.sum()):>8} "
                f"{result.class_images[c]:>6}/{n_images} images   weight {result.weights[c]:.4f}"
            )
        lines.append(
            "  to use them: loss.terms=[{name: ce, class_weights: auto}] (training computes these same numbers)"
        )
    return lines


def _notes(result: SplitCheck, dataset, total: int) -> List[str]:
    """The answers to 'is background a class?' and 'why are my labels 255?'."""
    notes = []
    if 0 in result.raw_pixels:
        meaning, _ = _meaning(dataset, 0)
        if meaning.startswith("class"):
            notes.append(
                f"value 0 (background in most data sets) is {meaning}: it is learned and counts in mIoU. "
                f"If 0 means 'unlabelled', set data.reduce_zero_label=true or data.label_map={{0: {dataset.ignore_index}}}."
            )
        else:
            notes.append("value 0 is ignored: not learned, not scored.")
    ignored = sum(p for v, p in result.raw_pixels.items() if _meaning(dataset, v)[0].startswith("ignored"))
    if ignored:
        notes.append(
            f"{_pct(ignored, total)} of pixels are ignored (value(s) mapping to ignore_index="
            f"{dataset.ignore_index}): not learned, not scored."
        )
        if ignored > 0.3 * total:
            notes.append(
                f"that is a lot: if {dataset.ignore_index} marks a class rather than 'unlabelled' (e.g. binary "
                f"masks saved as 0/255), map it with data.label_map={{{dataset.ignore_index}: 1}}."
            )
    return notes


def check_dataset(cfg, splits: Optional[Sequence[str]] = None, num_workers: int = 0):
    """(report lines, ok) for ``splits`` (default: the train and val splits of ``cfg.data``)."""
    data = cfg.data
    splits = list(dict.fromkeys(splits or [data.train_split, data.val_split]))
    lines = [
        f"data set: format={data.format} root={data.root} num_classes={data.num_classes} "
        f"ignore_index={data.ignore_index}"
        + (f" label_map={dict(data.label_map)}" if data.label_map else "")
        + (" reduce_zero_label=true" if data.reduce_zero_label else "")
    ]
    clash = ignore_index_problem(data.num_classes, data.ignore_index)
    lines += [f"ERROR: {clash}"] if clash else []
    ok = clash is None
    for split in splits:
        result = check_split(data, split, min(num_workers, os.cpu_count() or 1), split == data.train_split)
        lines.extend(format_split(result, split == data.train_split))
        ok &= result.ok
    if ok:
        lines.append("OK: every pair reads, sizes match, every label value is a class or ignored.")
    else:
        lines.append("CANNOT TRAIN: fix the ERROR lines above.")
    return lines, ok
