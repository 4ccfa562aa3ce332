"""The bench scripts in their --quick modes (what `make bench-quick` runs), so a change in segkit that
breaks one shows here rather than at the next `make bench`. Slow: run by .ci/run. Nothing is written
to docs/BENCHMARKS.md (SEGKIT_BENCH_NO_WRITE)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from bench._common import ROOT, default_camvid

pytestmark = pytest.mark.slow


def run_quick(script: str, *args: str, timeout: int = 600) -> str:
    before = (ROOT / "docs" / "BENCHMARKS.md").read_text()
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / script), "--quick", *args],
        cwd=ROOT,
        env={**os.environ, "SEGKIT_BENCH_NO_WRITE": "1"},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (ROOT / "docs" / "BENCHMARKS.md").read_text() == before  # a quick run publishes nothing
    return proc.stdout


def test_training_pairs_run_interleaved():
    out = run_quick("train_throughput.py")
    assert "U-Net-R34" in out and "segkit / reference" in out


def test_step_options_time_every_optimizer_implementation():
    out = run_quick("train_step_options.py")
    for impl in ("default (fused)", "for-loop", "foreach", "fused"):
        assert f"| {impl} |" in out


def test_limits_profile_says_where_each_step_goes():
    out = run_quick("limits.py")
    assert "convolution backward" in out and "reference fp32 ms" in out


def test_startup_lists_pairs():
    assert "1,000" in run_quick("startup.py")


@pytest.mark.skipif(not (default_camvid() / "val").is_dir(), reason="CamVid not found (../shared/data/camvid)")
def test_int8_table_has_mIoU_and_mask_agreement():
    pytest.importorskip("onnxruntime")
    out = run_quick("int8.py", timeout=900)
    assert "onnxruntime int8" in out and "masks = eager fp32's" in out


def test_avx2_only_rows_run_the_fp32_fast_path():
    # --avx2-only re-runs the script under the emulation before torch starts: the "fast" rows lose bf16
    out = run_quick("train_throughput.py", "--avx2-only")
    assert "fast (float32)" in out and "emulating a CPU without AVX-512" in out
