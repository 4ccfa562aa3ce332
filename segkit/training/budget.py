"""``train.time_budget``: train for a wall-clock time instead of a number of iterations.

The first steps carry one-time costs (memory allocation, kernel selection, loader workers
starting), so they are left out; the next ones measure the step time, and the LR schedule is
then fixed to span the iterations that fit in what remains (``train.iterations`` is the upper
bound). The run ends at that iteration with a validation and a checkpoint, like any run.
Once a quarter and once half of the budget are spent the speed is measured again over the steps
since the last fit, and the span moves if it is off by more than a fifth: a start slowed by other
work on the machine (or a machine that got busy later) must not decide the whole run.
The budget counts training steps (with their data loading); validations and checkpoints come on top.
"""

from __future__ import annotations

import math
import re
from typing import Optional

from segkit.config import ConfigError

UNITS = {"s": 1, "m": 60, "h": 3600}
WARMUP_STEPS = 3  # steps with one-time costs, not measured
MIN_MEASURED_STEPS = 3
REFIT_AT = (0.25, 0.5)  # fractions of the budget at which the speed is measured again
REFIT_CHANGE = 0.2  # a re-measured span within this fraction of the current one keeps the current one


def parse_duration(text) -> float:
    """Seconds of ``4m``, ``30s``, ``1h``, ``1h30m`` or a bare number of seconds."""
    value = str(text).strip().lower()
    parts = re.findall(r"(\d+(?:\.\d+)?)\s*([smh]?)", value)
    if not parts or re.sub(r"(\d+(?:\.\d+)?)\s*([smh]?)", "", value).strip():
        raise ConfigError(f"train.time_budget={text!r}: write a duration like 30s, 4m, 1h or 1h30m")
    seconds = sum(float(n) * UNITS[u or "s"] for n, u in parts)
    if seconds <= 0:
        raise ConfigError(f"train.time_budget={text!r} must be longer than 0 s")
    return seconds


class TimeBudget:
    """Feed it each step's duration; once it has measured enough, ``observe`` returns the schedule's length."""

    def __init__(self, seconds: float, start: int, cap: int):
        self.seconds, self.start, self.cap = seconds, start, cap
        self.spent, self.measured, self.measured_steps = 0.0, 0.0, 0
        self.fixed: Optional[int] = None
        self.step_seconds = math.nan
        self.refits = list(REFIT_AT)
        self.window, self.window_steps = 0.0, 0  # steps since the last fit, for the next re-measurement

    def observe(self, done: int, step_seconds: float) -> Optional[int]:
        """After iteration ``done`` took ``step_seconds``: the iterations that fit when they are first
        measured or change on a re-measurement, else None."""
        self.spent += step_seconds
        if self.fixed is not None:
            return self._refit(done, step_seconds)
        if done - self.start <= WARMUP_STEPS:
            return None
        self.measured += step_seconds
        self.measured_steps += 1
        window = min(0.05 * self.seconds, 10.0)  # long enough to average out noise, short next to the budget
        if self.measured_steps < MIN_MEASURED_STEPS or self.measured < window:
            return None
        self.step_seconds = self.measured / self.measured_steps
        fit = done + math.floor(max(self.seconds - self.spent, 0.0) / self.step_seconds)
        self.fixed = max(done, min(fit, self.cap))
        return self.fixed

    def _refit(self, done: int, step_seconds: float) -> Optional[int]:
        self.window += step_seconds
        self.window_steps += 1
        if not self.refits or self.spent < self.refits[0] * self.seconds:
            return None
        self.refits.pop(0)
        step, self.window, self.window_steps = self.window / self.window_steps, 0.0, 0
        fit = max(done, min(done + math.floor(max(self.seconds - self.spent, 0.0) / step), self.cap))
        if abs(fit - self.fixed) <= REFIT_CHANGE * self.fixed:
            return None
        self.step_seconds, self.fixed = step, fit
        return fit
