"""tools/eval.py prints the mIoU that training logged for the same checkpoint, and writes its reports."""

import json
import os
import subprocess

import numpy as np
import pytest

from tests.eval_oracle import reference_scores
from tests.tool_loader import load_tool
from tests.train_helpers import ROOT
from tests.training.test_ddp import _torchrun


def last_val_miou(work_dir):
    lines = [json.loads(line) for line in (work_dir / "metrics.jsonl").read_text().splitlines()]
    return [line["val"]["mIoU"] for line in lines if "val" in line][-1]


def test_eval_mIoU_equals_the_one_logged_at_the_end_of_training(sample_run, tmp_path, capsys):
    out = tmp_path / "results.json"
    assert (
        load_tool("eval").main([str(sample_run / "last.pth"), "--out", str(out), "--show-dir", str(tmp_path / "show")])
        == 0
    )
    printed = capsys.readouterr().out
    logged = last_val_miou(sample_run)
    results = json.loads(out.read_text())
    assert results["mIoU"] == logged
    assert f"mIoU {100 * logged:.2f}" in printed
    assert results["split"] == "val" and results["images"] == 6 and len(results["IoU"]) == 6
    assert (tmp_path / "results_confusion.png").stat().st_size > 0
    assert (tmp_path / "results_iou.png").stat().st_size > 0
    assert len(list((tmp_path / "show").glob("*.png"))) == 6  # every image, not every 50th


def test_overrides_and_bad_input_are_one_line_errors(sample_run, tmp_path, capsys):
    tool = load_tool("eval")
    assert tool.main([str(sample_run / "last.pth"), "data.root=/nowhere"]) == 2
    assert "/nowhere" in capsys.readouterr().err
    assert tool.main([str(sample_run / "last.pth"), "eval.nope=1"]) == 2
    assert "nope" in capsys.readouterr().err
    (tmp_path / "x.pth").write_bytes(b"\x00" * 100)
    assert tool.main([str(tmp_path / "x.pth")]) == 2
    assert "x.pth" in capsys.readouterr().err


def test_slide_and_tta_flags_reach_the_evaluation(sample_run, tmp_path):
    out = tmp_path / "r.json"
    small = ["eval.crop_size=[48,48]", "eval.stride=[32,32]", "eval.scales=[0.5,0.25]"]  # few, small passes
    assert load_tool("eval").main([str(sample_run / "last.pth"), "--out", str(out), "--slide", "--tta", *small]) == 0
    results = json.loads(out.read_text())
    assert results["eval"]["mode"] == "slide" and results["eval"]["flip"] and results["eval"]["scales"] == [0.5, 0.25]
    reference = reference_scores(sample_run / "last.pth", slide=True, tta=True, overrides=small)
    assert np.array_equal(results["confusion"], reference["confusion"])  # the Predictor's slide + TTA, counted here
    assert results["mIoU"] == pytest.approx(reference["mIoU"], abs=1e-12)


@pytest.mark.slow
def test_two_torchrun_processes_print_the_mIoU_of_one(sample_run, tmp_path, capsys):
    """7 images over 2 ranks (4 + 3): each counted once, so the summed confusion matrix, the mIoU and the
    per-image rows are those of one process."""
    from segkit.data.sample import generate

    root = generate(tmp_path / "data", splits={"train": 1, "val": 7})
    ckpt, one, two = str(sample_run / "last.pth"), tmp_path / "one.json", tmp_path / "two.json"
    assert load_tool("eval").main([ckpt, f"data.root={root}", "--out", str(one), "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    cmd = [_torchrun(), "--standalone", "--nproc_per_node=2", "-m", "segkit", "eval", ckpt, f"data.root={root}"]
    run = subprocess.run([*cmd, "--out", str(two), "--device", "cpu"], env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    single, double = json.loads(one.read_text()), json.loads(two.read_text())
    assert double["confusion"] == single["confusion"] and double["mIoU"] == single["mIoU"]
    assert sum(map(sum, double["confusion"])) == 7 * 128 * 128  # every pixel of the 7 images, once
    assert [r["stem"] for r in double["per_image"]] == [r["stem"] for r in single["per_image"]]
    table = [line for line in printed.splitlines() if "mIoU" in line]
    assert table and all(line in run.stdout for line in table)  # the same mIoU line, printed once
    assert run.stdout.count("2 processes, 7 images") == 1
