"""Pairing image, mask (and ignore-mask) files by the key their names share.

A ``NameRule`` turns a file name into its key: the name less its extension and a constant suffix
(``21_training.tif`` -> ``21`` with suffix ``_training`` or ``_training.tif``, mmseg's ``img_suffix``),
or the named group ``key`` of a regex matched from the start of the name (``data.pair_pattern``).
Listing uses ``os.scandir`` only: no file is stat'ed or opened until it is read.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

from .filetable import FileTable, PairList, TableRows, encoded, first_of_each_key, lookup, merge, scan, texts
from .io import IMAGE_SUFFIXES, MASK_SUFFIXES, DataError, Issue, report

Pair = Tuple[Path, Path]
SEPARATORS = "_-. "


@dataclass(frozen=True)
class NameRule:
    suffix: str = ""  # ends the name before the extension ('_leftImg8bit') or with it ('_manual1.gif')
    pattern: Optional[re.Pattern] = None  # wins over suffix: group 'key' of pattern.match(name)
    extensions: Tuple[str, ...] = IMAGE_SUFFIXES

    def __post_init__(self):
        # computed once: key() runs for every file listed
        object.__setattr__(self, "_whole_suffix", os.path.splitext(self.suffix)[1].lower() in self.extensions)

    def key(self, name: str) -> Optional[str]:
        """The key of file ``name``, or None when the file is not one this rule pairs."""
        dot = name.rfind(".")
        if dot <= 0 or name[dot:].lower() not in self.extensions:
            return None
        if self.pattern is not None:
            found = self.pattern.match(name)
            return found.group("key") if found else None
        if self._whole_suffix:  # the suffix names the extension too
            return name[: len(name) - len(self.suffix)] if name.endswith(self.suffix) else None
        stem = name[:dot]
        return stem[: len(stem) - len(self.suffix)] if stem.endswith(self.suffix) else None


def folder_rules(cfg) -> Tuple[NameRule, NameRule, NameRule]:
    """(image, mask, ignore-mask) rules from data.image_suffix, mask_suffix, ignore_mask_suffix, pair_pattern."""
    pattern = None
    if cfg.pair_pattern:
        try:
            pattern = re.compile(cfg.pair_pattern)
        except re.error as exc:
            raise DataError(f"data.pair_pattern '{cfg.pair_pattern}' is not a valid regex ({exc})") from exc
        if "key" not in pattern.groupindex:
            raise DataError(
                f"data.pair_pattern '{cfg.pair_pattern}' has no group named 'key': write the shared "
                f"part as (?P<key>...), e.g. '(?P<key>\\d+)_'"
            )
    return (
        NameRule(cfg.image_suffix, pattern, IMAGE_SUFFIXES),
        NameRule(cfg.mask_suffix, pattern, MASK_SUFFIXES),
        NameRule(cfg.ignore_mask_suffix, pattern, MASK_SUFFIXES),
    )


def list_files(
    directory: Path, rule: NameRule, recursive: bool = False, issues: Optional[List[Issue]] = None
) -> FileTable:
    """The files in ``directory`` that ``rule`` pairs, sorted by key; two files with one key are reported
    (the first by name is kept). Recursive keys keep the sub-folder: ``city/name``."""
    table, dropped = first_of_each_key(scan(directory, recursive, rule.key))
    kept = lookup(table, dropped.keys[:50])
    for i, row in enumerate(kept):
        report(
            issues,
            f"two files in {directory} share the name '{os.fsdecode(dropped.keys[i])}': "
            f"{os.fsdecode(table.names[row])} and {os.fsdecode(dropped.names[i])}; segkit pairs images and "
            f"masks by name, so rename or remove one.",
        )
    return table


def name_list(items: Sequence[str], issues: Optional[List[Issue]], total: Optional[int] = None) -> str:
    """The first few names (many more when collecting issues for check_dataset, whose job is to list them);
    ``total``: how many there are when ``items`` holds only the first ones."""
    limit, total = 8 if issues is None else 50, len(items) if total is None else total
    return ", ".join(items[:limit]) + (f" ... ({total - limit} more)" if total > limit else "")


def _common_suffix(a: str, b: str) -> str:
    return os.path.commonprefix([a[::-1], b[::-1]])[::-1]


def _split_difference(a: str, b: str, at_end: bool) -> Tuple[str, str]:
    """The parts of ``a`` and ``b`` after their common start (``at_end``) or before their common end,
    a separator ('_', '-') next to the shared part going with them: ('_training', '_manual1')."""
    if at_end:
        shared = os.path.commonprefix([a, b])
        head, tail_a, tail_b = shared, a[len(shared) :], b[len(shared) :]
        while head and head[-1] in SEPARATORS and tail_a and tail_b:
            head, tail_a, tail_b = head[:-1], head[-1] + tail_a, head[-1] + tail_b
        return tail_a, tail_b
    shared = _common_suffix(a, b)
    head_a, head_b, tail = a[: len(a) - len(shared)], b[: len(b) - len(shared)], shared
    while tail and tail[0] in SEPARATORS and head_a and head_b:
        head_a, head_b, tail = head_a + tail[0], head_b + tail[0], tail[1:]
    return head_a, head_b


def propose_rule(images: Sequence[str], masks: Sequence[str], image_rule: NameRule, mask_rule: NameRule) -> str:
    """The options that pair these keys, when image and mask keys differ by a constant suffix or prefix."""
    if not images or not masks or image_rule.pattern is not None:
        return ""
    mask_set = set(masks)
    a, b = images[0], masks[0]
    end_a, end_b = _split_difference(a, b, at_end=True)
    if end_a != a and end_b != b:
        paired = sum(k.endswith(end_a) and k[: len(k) - len(end_a)] + end_b in mask_set for k in images)
        if paired:
            options = [
                f"data.{side}_suffix={part + rule.suffix}"
                for side, part, rule in (("image", end_a, image_rule), ("mask", end_b, mask_rule))
                if part
            ]
            return (
                f" The names differ by a constant suffix: set {' '.join(options)} "
                f"({paired} of {len(images)} images pair then)."
            )
    start_a, start_b = _split_difference(a, b, at_end=False)
    if start_a != a and start_b != b and not image_rule.suffix and not mask_rule.suffix:
        paired = sum(k.startswith(start_a) and start_b + k[len(start_a) :] in mask_set for k in images)
        if paired:
            heads = "|".join(re.escape(h) for h in (start_a, start_b))
            return (
                f" The names differ by a constant prefix: set data.pair_pattern='^(?:{heads})(?P<key>.+)\\.[^.]+$' "
                f"({paired} of {len(images)} images pair then)."
            )
    return ""


def _nothing_pairs(
    image_dir: Path,
    mask_dirs: Sequence[Path],
    images: Sequence[str],
    masks: Sequence[str],
    rules: Optional[Tuple[NameRule, NameRule]],
) -> str:
    message = (
        f"no image in {image_dir} pairs with a mask in {', '.join(map(str, mask_dirs))}: image keys are e.g. "
        f"{', '.join(repr(k) for k in images[:2])}, mask keys e.g. {', '.join(repr(k) for k in masks[:2])} "
        f"(a key is the file name less its extension and data.image_suffix / data.mask_suffix)."
    )
    return message + (propose_rule(images, masks, *rules) if rules else "")


def pair_by_stem(
    image_dir: Path,
    mask_dirs: Path | Sequence[Path],
    stems: Optional[Sequence[str]] = None,
    layout_hint: str = "",
    image_rule: NameRule = NameRule(),
    mask_rule: NameRule = NameRule(extensions=MASK_SUFFIXES),
    recursive: bool = False,
    propose: bool = False,
    issues: Optional[List[Issue]] = None,
) -> Sequence[Pair]:
    """Pair the files of ``image_dir`` with those of ``mask_dirs`` (the first folder holding a key wins)
    whose names give the same key. Every problem is reported: a missing or empty folder, an image with no
    mask, a listed key with no file. Masks with no image are a warning only. ``propose``: when nothing
    pairs, name the data.image_suffix / mask_suffix / pair_pattern that would."""
    mask_dirs = [mask_dirs] if isinstance(mask_dirs, Path) else list(mask_dirs)
    present = [d for d in mask_dirs if d.is_dir()]
    if not image_dir.is_dir():
        report(issues, f"image folder not found: {image_dir}.{layout_hint}")
        return []
    if not present:
        report(issues, f"mask folder not found: {' or '.join(map(str, mask_dirs))}.{layout_hint}")
        return []
    images = list_files(image_dir, image_rule, recursive, issues)
    masks = merge([list_files(d, mask_rule, recursive, issues) for d in present])  # the first folder wins
    if not len(images):
        report(
            issues,
            f"no images ({', '.join(image_rule.extensions)}) named by the pairing rule in {image_dir}.{layout_hint}",
        )
        return []
    if not len(masks):
        report(
            issues,
            f"no masks ({', '.join(mask_rule.extensions)}) named by the pairing rule in "
            f"{', '.join(map(str, present))}.{layout_hint}",
        )
        return []
    if stems is not None:
        wanted = encoded(stems)
        image_rows, mask_rows = lookup(images, wanted), lookup(masks, wanted)
        found = (image_rows >= 0) & (mask_rows >= 0)
        if not found.all():
            missing = texts(wanted[~found])
            report(
                issues,
                f"the split list names {len(missing)} file(s) with no image in {image_dir} or no mask in "
                f"{', '.join(map(str, present))}: {name_list(missing, issues)}. "
                f"Fix the list or restore the files.",
            )
        return PairList(images.take(image_rows[found]), masks.take(mask_rows[found]))
    mask_rows = lookup(masks, images.keys)
    paired = mask_rows >= 0
    if not paired.any():
        report(
            issues,
            _nothing_pairs(
                image_dir, present, texts(images.keys), texts(masks.keys), (image_rule, mask_rule) if propose else None
            ),
        )
        return []
    if not paired.all():
        unpaired = images.keys[~paired]
        report(
            issues,
            f"{len(unpaired)} image(s) in {image_dir} have no mask in {', '.join(map(str, present))}: "
            f"{name_list(texts(unpaired[:50]), issues, len(unpaired))}. "
            f"Add the masks, remove the images, or name the images to use in a split list.",
        )
    orphans = masks.keys[lookup(images, masks.keys) < 0]
    if len(orphans):
        report(
            issues,
            f"{len(orphans)} mask(s) have no image in {image_dir} (not used): "
            f"{name_list(texts(orphans[:50]), issues, len(orphans))}",
            fatal=False,
        )
    return PairList(images.take(paired), masks.take(mask_rows[paired]))


def read_split_file(path: Path, issues: Optional[List[Issue]] = None) -> Optional[List[str]]:
    """One key per line (a file name is cut to its stem); blank lines and ``#`` comments skipped."""
    if not path.is_file():
        report(issues, f"split list not found: {path}")
        return None
    stems = [
        line.strip() for line in path.read_text().splitlines() if line.strip() and not line.lstrip().startswith("#")
    ]
    if not stems:
        report(issues, f"split list {path} is empty: list one image name (stem) per line")
        return None
    return [s[: -len(Path(s).suffix)] if Path(s).suffix.lower() in IMAGE_SUFFIXES else s for s in stems]


def ignore_masks(
    directory: Path, rule: NameRule, image_rule: NameRule, pairs: Sequence[Pair], issues: Optional[List[Issue]] = None
) -> Sequence[Optional[Path]]:
    """The ignore mask of each pair (data.ignore_mask_dir), found by its image's key; a missing one is an error."""
    if not directory.is_dir():
        report(issues, f"ignore mask folder not found: {directory} (data.ignore_mask_dir)")
        return [None] * len(pairs)
    found = list_files(directory, rule, issues=issues)
    keys = pairs.keys if isinstance(pairs, PairList) else encoded([image_rule.key(i.name) for i, _ in pairs])
    rows = lookup(found, keys)
    missing = keys[rows < 0]
    if len(missing):
        report(
            issues,
            f"{len(missing)} image(s) have no ignore mask in {directory} (data.ignore_mask_dir, "
            f"data.ignore_mask_suffix='{rule.suffix}'): {name_list(texts(missing[:50]), issues, len(missing))}. "
            f"Add them, or set data.ignore_mask_suffix to the part of their names after the key.",
        )
    return TableRows(found, rows)
