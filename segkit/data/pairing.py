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
from typing import Dict, List, Optional, Sequence, Tuple

from .io import IMAGE_SUFFIXES, MASK_SUFFIXES, DataError, Issue, report

Pair = Tuple[Path, Path]
SEPARATORS = "_-. "


@dataclass(frozen=True)
class NameRule:
    suffix: str = ""  # ends the name before the extension ('_leftImg8bit') or with it ('_manual1.gif')
    pattern: Optional[re.Pattern] = None  # wins over suffix: group 'key' of pattern.match(name)
    extensions: Tuple[str, ...] = IMAGE_SUFFIXES

    def key(self, name: str) -> Optional[str]:
        """The key of file ``name``, or None when the file is not one this rule pairs."""
        stem, ext = os.path.splitext(name)
        if ext.lower() not in self.extensions:
            return None
        if self.pattern is not None:
            found = self.pattern.match(name)
            return found.group("key") if found else None
        if os.path.splitext(self.suffix)[1].lower() in self.extensions:  # the suffix names the extension too
            return name[: len(name) - len(self.suffix)] if name.endswith(self.suffix) else None
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
            raise DataError(f"data.pair_pattern '{cfg.pair_pattern}' has no group named 'key': write the shared "
                            f"part as (?P<key>...), e.g. '(?P<key>\\d+)_'")
    return (NameRule(cfg.image_suffix, pattern, IMAGE_SUFFIXES), NameRule(cfg.mask_suffix, pattern, MASK_SUFFIXES),
            NameRule(cfg.ignore_mask_suffix, pattern, MASK_SUFFIXES))


def _walk(directory: Path, recursive: bool):
    """(sub-folder relative to ``directory``, file names) per folder, without a stat per file."""
    if not recursive:
        with os.scandir(directory) as entries:
            yield "", [e.name for e in entries if e.is_file()]
        return
    for folder, _, files in os.walk(directory):
        yield os.path.relpath(folder, directory).replace(os.sep, "/"), files


def list_files(directory: Path, rule: NameRule, recursive: bool = False,
               issues: Optional[List[Issue]] = None) -> Dict[str, Path]:
    """``key -> path`` for the files in ``directory`` that ``rule`` pairs, sorted by key.
    Recursive keys keep the sub-folder: ``city/name``."""
    found: Dict[str, Path] = {}
    for sub, names in _walk(directory, recursive):
        base = directory / sub if sub not in ("", ".") else directory
        for name in names:
            key = rule.key(name)
            if key is None:
                continue
            if sub not in ("", "."):
                key = f"{sub}/{key}"
            if key in found:
                report(issues, f"two files in {base} share the name '{key}': {found[key].name} and {name}; "
                               f"segkit pairs images and masks by name, so rename or remove one.")
                continue
            found[key] = base / name
    return dict(sorted(found.items()))


def name_list(items: Sequence[str], issues: Optional[List[Issue]]) -> str:
    """The first few names (many more when collecting issues for check_dataset, whose job is to list them)."""
    limit = 8 if issues is None else 50
    return ", ".join(items[:limit]) + (f" ... ({len(items) - limit} more)" if len(items) > limit else "")


def _common_suffix(a: str, b: str) -> str:
    return os.path.commonprefix([a[::-1], b[::-1]])[::-1]


def _split_difference(a: str, b: str, at_end: bool) -> Tuple[str, str]:
    """The parts of ``a`` and ``b`` after their common start (``at_end``) or before their common end,
    a separator ('_', '-') next to the shared part going with them: ('_training', '_manual1')."""
    if at_end:
        shared = os.path.commonprefix([a, b])
        head, tail_a, tail_b = shared, a[len(shared):], b[len(shared):]
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
            options = [f"data.{side}_suffix={part + rule.suffix}" for side, part, rule in
                       (("image", end_a, image_rule), ("mask", end_b, mask_rule)) if part]
            return (f" The names differ by a constant suffix: set {' '.join(options)} "
                    f"({paired} of {len(images)} images pair then).")
    start_a, start_b = _split_difference(a, b, at_end=False)
    if start_a != a and start_b != b and not image_rule.suffix and not mask_rule.suffix:
        paired = sum(k.startswith(start_a) and start_b + k[len(start_a):] in mask_set for k in images)
        if paired:
            heads = "|".join(re.escape(h) for h in (start_a, start_b))
            return (f" The names differ by a constant prefix: set data.pair_pattern='^(?:{heads})(?P<key>.+)\\.[^.]+$' "
                    f"({paired} of {len(images)} images pair then).")
    return ""


def _nothing_pairs(image_dir: Path, mask_dirs: Sequence[Path], images: Sequence[str], masks: Sequence[str],
                   rules: Optional[Tuple[NameRule, NameRule]]) -> str:
    message = (f"no image in {image_dir} pairs with a mask in {', '.join(map(str, mask_dirs))}: image keys are e.g. "
               f"{', '.join(repr(k) for k in images[:2])}, mask keys e.g. {', '.join(repr(k) for k in masks[:2])} "
               f"(a key is the file name less its extension and data.image_suffix / data.mask_suffix).")
    return message + (propose_rule(images, masks, *rules) if rules else "")


def pair_by_stem(image_dir: Path, mask_dirs: Path | Sequence[Path], stems: Optional[Sequence[str]] = None,
                 layout_hint: str = "", image_rule: NameRule = NameRule(),
                 mask_rule: NameRule = NameRule(extensions=MASK_SUFFIXES), recursive: bool = False,
                 propose: bool = False, issues: Optional[List[Issue]] = None) -> List[Pair]:
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
    masks: Dict[str, Path] = {}
    for d in reversed(present):  # the first folder wins
        masks.update(list_files(d, mask_rule, recursive, issues))
    if not images:
        report(issues, f"no images ({', '.join(image_rule.extensions)}) named by the pairing rule in {image_dir}."
                       f"{layout_hint}")
        return []
    if not masks:
        report(issues, f"no masks ({', '.join(mask_rule.extensions)}) named by the pairing rule in "
                       f"{', '.join(map(str, present))}.{layout_hint}")
        return []
    if stems is not None:
        missing = [s for s in stems if s not in images or s not in masks]
        if missing:
            report(issues, f"the split list names {len(missing)} file(s) with no image in {image_dir} or no mask in "
                           f"{', '.join(map(str, present))}: {name_list(missing, issues)}. "
                           f"Fix the list or restore the files.")
        return [(images[s], masks[s]) for s in stems if s in images and s in masks]
    if images.keys().isdisjoint(masks):
        report(issues, _nothing_pairs(image_dir, present, list(images), sorted(masks),
                                      (image_rule, mask_rule) if propose else None))
        return []
    unpaired = [k for k in images if k not in masks]
    if unpaired:
        report(issues, f"{len(unpaired)} image(s) in {image_dir} have no mask in {', '.join(map(str, present))}: "
                       f"{name_list(unpaired, issues)}. "
                       f"Add the masks, remove the images, or name the images to use in a split list.")
    orphans = sorted(set(masks) - set(images))
    if orphans:
        report(issues, f"{len(orphans)} mask(s) have no image in {image_dir} (not used): {name_list(orphans, issues)}",
               fatal=False)
    return [(path, masks[k]) for k, path in images.items() if k in masks]


def read_split_file(path: Path, issues: Optional[List[Issue]] = None) -> Optional[List[str]]:
    """One key per line (a file name is cut to its stem); blank lines and ``#`` comments skipped."""
    if not path.is_file():
        report(issues, f"split list not found: {path}")
        return None
    stems = [line.strip() for line in path.read_text().splitlines() if line.strip() and not line.lstrip().startswith("#")]
    if not stems:
        report(issues, f"split list {path} is empty: list one image name (stem) per line")
        return None
    return [s[: -len(Path(s).suffix)] if Path(s).suffix.lower() in IMAGE_SUFFIXES else s for s in stems]


def ignore_masks(directory: Path, rule: NameRule, image_rule: NameRule, pairs: Sequence[Pair],
                 issues: Optional[List[Issue]] = None) -> List[Optional[Path]]:
    """The ignore mask of each pair (data.ignore_mask_dir), found by its image's key; a missing one is an error."""
    if not directory.is_dir():
        report(issues, f"ignore mask folder not found: {directory} (data.ignore_mask_dir)")
        return [None] * len(pairs)
    found = list_files(directory, rule, issues=issues)
    keys = [image_rule.key(image.name) for image, _ in pairs]
    missing = [k for k in keys if k not in found]
    if missing:
        report(issues, f"{len(missing)} image(s) have no ignore mask in {directory} (data.ignore_mask_dir, "
                       f"data.ignore_mask_suffix='{rule.suffix}'): {name_list(missing, issues)}. Add them, or set "
                       f"data.ignore_mask_suffix to the part of their names after the key.")
    return [found.get(k) for k in keys]
