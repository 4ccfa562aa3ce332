"""`eval`'s per-image metrics in its JSON and the static HTML report of --report."""

import json
import re

import numpy as np
import pytest

from segkit.data import read_mask
from segkit.inference.predictor import Predictor
from tests.tool_loader import load_tool


def numpy_iou(pred, target, num_classes, ignore_index):
    """Per-class IoU counted with plain NumPy masks (NaN where a class is in neither)."""
    keep = target != ignore_index
    out = []
    for c in range(num_classes):
        p, t = (pred == c) & keep, (target == c) & keep
        union = (p | t).sum()
        out.append((p & t).sum() / union if union else float("nan"))
    return out


def test_per_image_metrics_and_the_html_report(sample_run, sample_root, tmp_path, capsys):
    out, report = tmp_path / "results.json", tmp_path / "report"
    assert load_tool("eval").main([str(sample_run / "last.pth"), "--out", str(out), "--report", str(report)]) == 0
    results = json.loads(out.read_text())
    rows = results["per_image"]
    masks = sorted((sample_root / "masks" / "val").glob("*.png"))
    assert [r["stem"] for r in rows] == [m.stem for m in masks]

    predictor = Predictor.from_checkpoint(sample_run / "last.pth", device="cpu")
    for row, mask_path in zip(rows, masks):
        target = read_mask(mask_path)
        pred = predictor.predict(sample_root / "images" / "val" / f"{mask_path.stem}.png")
        expected = numpy_iou(pred, target, 6, 255)
        assert row["IoU"] == pytest.approx([None if v != v else v for v in expected], abs=1e-9)
        assert row["mIoU"] == pytest.approx(np.nanmean(expected), abs=1e-9)
        assert row["aAcc"] == pytest.approx(float((pred == target).mean()), abs=1e-9)

    page = (report / "index.html").read_text()
    shown = re.findall(r"<img loading=lazy src='images/([^']+)\.png'", page)
    assert sorted(shown) == sorted(r["stem"] for r in rows)
    by_stem = {r["stem"]: r["mIoU"] for r in rows}
    assert [by_stem[s] for s in shown] == sorted(by_stem[s] for s in shown)  # worst first
    assert all((report / "images" / f"{s}.png").stat().st_size > 0 for s in shown)
    assert "http" not in page  # opens from disk: nothing fetched from elsewhere
    assert str(report / "index.html") in capsys.readouterr().out


def test_per_image_metrics_on_camvid_skip_the_unlabelled_class(camvid_run, camvid_small, tmp_path):
    out = tmp_path / "camvid.json"
    assert (
        load_tool("eval").main(
            [str(camvid_run / "last.pth"), "--out", str(out), "--report", str(tmp_path / "r"), "eval.batch_size=2"]
        )
        == 0
    )
    assert len(list((tmp_path / "r" / "images").glob("*.png"))) == 3
    rows = json.loads(out.read_text())["per_image"]
    assert [r["stem"] for r in rows] == sorted(p.stem for p in (camvid_small / "val").iterdir())
    predictor = Predictor.from_checkpoint(camvid_run / "last.pth", device="cpu")
    for row in rows:
        target = read_mask(camvid_small / "valannot" / f"{row['stem']}.png")
        pred = predictor.predict(next((camvid_small / "val").glob(f"{row['stem']}.*")))
        labelled = target != 11  # CamVid's Unlabelled never counts
        assert row["aAcc"] == pytest.approx(float((pred == target)[labelled].mean()), abs=1e-9)
        assert len(row["IoU"]) == 11
