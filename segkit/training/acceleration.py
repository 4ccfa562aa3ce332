"""Speed choices of a training run that do not change its results: whether to torch.compile.

``train.compile``: true | false | auto. ``auto`` compiles only where it repays its compile time:
on a GPU for runs of at least ``COMPILE_MIN_ITERATIONS["cuda"]`` iterations (compiling takes about
a minute there; a few percent per step repays it within that many steps); on a CPU not at all:
``bench/train_throughput.py --compile`` found the compiled step no faster than the eager one, with or
without AVX-512, after up to a minute of compiling, so a CPU run gains nothing from it (the numbers:
docs/BENCHMARKS.md, the training tables).
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

import torch

from segkit.config import ConfigError

# the shortest run for which `auto` compiles; None: never on this kind of device
COMPILE_MIN_ITERATIONS: Dict[str, Optional[int]] = {"cuda": 2000, "cpu": None}


def use_compile(setting: Any, iterations: int, device: torch.device) -> Tuple[bool, str]:
    """(compile?, why) for ``train.compile`` = true, false or "auto"."""
    if isinstance(setting, bool):
        return setting, "train.compile=" + str(setting).lower()
    if str(setting).lower() != "auto":
        raise ConfigError(f"train.compile={setting!r}: use true, false or auto")
    floor = COMPILE_MIN_ITERATIONS.get(device.type)
    if floor is None:
        return False, f"auto: off on {device.type} (compiled steps were not faster there when measured)"
    if iterations < floor:
        return False, f"auto: off, {iterations} iterations are too few to repay compiling (< {floor})"
    return True, f"auto: on, {iterations} iterations repay compiling (>= {floor})"
