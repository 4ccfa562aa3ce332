"""The benchmarks' timing helpers: interleaved rounds and the ratio spread the tables print."""

from __future__ import annotations

import os

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


@pytest.mark.skipif(
    "avx2" not in (open("/proc/cpuinfo").read() if os.path.exists("/proc/cpuinfo") else ""),
    reason="the emulation caps an x86 CPU with AVX2 or more",
)
def test_the_avx2_only_emulation_takes_native_bf16_away():
    # bench --avx2-only stands in for a CPU without AVX-512: train.amp=auto must pick fp32 under it
    import subprocess
    import sys

    from bench._common import AVX2_ONLY, ROOT

    code = (
        "import torch; from segkit.runtime import amp_dtype; "
        "print(torch.backends.cpu.get_cpu_capability(), amp_dtype('auto', torch.device('cpu')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, **AVX2_ONLY},
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert out == ["AVX2", "None"]
