"""Checks of the config itself, before the first training step: a typo in a setting that is first used
at iteration 1000 (``eval.mode=slid``) must not cost the 999 iterations before it."""

from __future__ import annotations

from typing import List, Optional

from segkit.config.schema import EVAL_MODES as MODES


def _pair(values: Optional[list], key: str) -> List[str]:
    ok = values is not None and len(values) == 2 and all(isinstance(v, int) and v > 0 for v in values)
    return [] if ok else [f"{key} must be two positive integers [H, W], not {values}"]


def ignore_index_problem(num_classes: int, ignore_index: int) -> Optional[str]:
    """The ignore label must not be a class id: that class would never be trained or scored."""
    if 0 <= ignore_index < num_classes:
        return (
            f"data.ignore_index={ignore_index} is a class id (data.num_classes={num_classes}, classes 0.."
            f"{num_classes - 1}): that class would never be trained or scored. Use an ignore value outside "
            f"the classes (255, or {num_classes}), and map the mask's ignore value to it with data.label_map"
        )
    return None


def config_problems(cfg) -> List[str]:
    """Every setting of ``cfg.data`` and ``cfg.eval`` that would fail later, named by its key."""
    d, e = cfg.data, cfg.eval
    problems = _pair(list(d.crop_size), "data.crop_size") + _pair(list(e.crop_size), "eval.crop_size")
    problems += _pair(list(e.stride), "eval.stride")
    if e.resize is not None:
        problems += _pair(list(e.resize), "eval.resize")
    if e.mode not in MODES:
        problems.append(f"eval.mode={e.mode!r} is not a mode; choose {' or '.join(MODES)}")
    elif e.mode == "slide" and not problems and any(s > c for s, c in zip(e.stride, e.crop_size)):
        problems.append(
            f"eval.stride {list(e.stride)} must be no larger than eval.crop_size {list(e.crop_size)}, "
            f"or some pixels would never be seen"
        )
    if not e.scales or any(not isinstance(s, (int, float)) or s <= 0 for s in e.scales):
        problems.append(f"eval.scales must be positive numbers (TTA scales, e.g. [1.0]), not {list(e.scales)}")
    problems += [
        f"{key} must be >= 1, not {value}"
        for key, value in (
            ("eval.batch_size", e.batch_size),
            ("eval.crop_batch", e.crop_batch),
            ("data.num_classes", d.num_classes),
        )
        if value < 1
    ]
    if d.num_workers < 0:
        problems.append(f"data.num_workers must be >= 0, not {d.num_workers}")
    problems += [p for p in [ignore_index_problem(d.num_classes, d.ignore_index)] if p]
    return problems
