"""The benchmarks' timing helpers: interleaved rounds and the ratio spread the tables print."""
from __future__ import annotations

import pytest

from bench._common import interleave, ratio_spread


def test_interleave_reverses_the_order_every_other_round():
    calls = []
    fns = {name: (lambda n=name: calls.append(n)) for name in ("a", "b", "c")}
    per_round = interleave(fns, rounds=3, steps=2)
    assert calls == ["a", "a", "b", "b", "c", "c", "c", "c", "b", "b", "a", "a", "a", "a", "b", "b", "c", "c"]
    assert {name: len(times) for name, times in per_round.items()} == {"a": 3, "b": 3, "c": 3}


def test_ratio_spread_is_per_round_not_ratio_of_medians():
    # the reference's times over segkit's, round by round: 2/1, 3/2, 8/2
    r = ratio_spread([2.0, 3.0, 8.0], [1.0, 2.0, 2.0])
    assert r == {"median": pytest.approx(2.0), "min": pytest.approx(1.5), "max": pytest.approx(4.0), "rounds": 3}
