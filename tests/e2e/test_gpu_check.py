"""bench/gpu_check.py --dry-run: every step of the GPU check (CUDA tests, trainings with evaluation on
val and test, interleaved timing beside torchvision and smp) on the CPU at toy sizes, so it cannot rot."""

import sys

import pytest

from tests.train_helpers import ROOT

sys.path.insert(0, str(ROOT))


@pytest.mark.slow  # two trainings, four interleaved model pairs: minutes on the loaded 2-core machine
def test_gpu_check_dry_run_passes_and_records_not_run(tmp_path, capsys):
    from bench import gpu_check

    out = tmp_path / "BENCHMARKS.md"
    assert gpu_check.main(["--dry-run", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "| CUDA tests |" in printed and "passed" in printed
    assert "| train sample |" in printed and "mIoU" in printed
    assert "torchvision deeplabv3_resnet50" in printed and 'smp Unet("resnet34")' in printed
    text = out.read_text()
    assert "<!-- bench:gpu -->" in text and "Not run: no GPU was available" in text and "--dry-run" in text
