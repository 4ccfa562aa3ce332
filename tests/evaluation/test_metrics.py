"""Metrics against a brute-force NumPy reference written from the definitions, on random data."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from segkit.evaluation.metrics import ConfusionMatrix, format_table, metrics_from_confusion


def reference(preds, targets, num_classes, ignore_index):
    """Per-class TP/FP/FN counted with boolean masks, pixel by pixel, over all images."""
    tp, fp, fn = (np.zeros(num_classes, np.int64) for _ in range(3))
    for pred, target in zip(preds, targets):
        keep = target != ignore_index
        p, t = pred[keep], target[keep]
        for c in range(num_classes):
            tp[c] += np.sum((p == c) & (t == c))
            fp[c] += np.sum((p == c) & (t != c))
            fn[c] += np.sum((p != c) & (t == c))
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = tp / (tp + fp + fn)
        acc = tp / (tp + fn)
        dice = 2 * tp / (2 * tp + fp + fn)
    total = (tp + fn).sum()
    present = ~np.isnan(iou)

    def nanmean(x):
        return float(np.nanmean(x)) if (~np.isnan(x)).any() else float("nan")

    return {
        "IoU": iou,
        "Acc": acc,
        "Dice": dice,
        "mIoU": nanmean(iou),
        "mAcc": nanmean(acc),
        "mDice": nanmean(dice),
        "aAcc": tp.sum() / total if total else float("nan"),
        "fwIoU": float(((tp + fn)[present] / total * iou[present]).sum()) if total else float("nan"),
        "pixels": tp + fn,
    }


def same(a, b):
    return (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-15)


@settings(max_examples=60, deadline=None)
@given(
    num_classes=st.integers(1, 9),
    images=st.integers(1, 3),
    h=st.integers(1, 17),
    w=st.integers(1, 17),
    ignore_fraction=st.sampled_from([0.0, 0.2, 1.0]),
    ignore_index=st.sampled_from([255, -1]),
    seed=st.integers(0, 2**31 - 1),
)
def test_matches_bruteforce_reference(num_classes, images, h, w, ignore_fraction, ignore_index, seed):
    rng = np.random.default_rng(seed)
    # A narrower range of predicted classes leaves some classes absent from one side or both.
    preds = [rng.integers(0, rng.integers(1, num_classes + 1), (h, w)) for _ in range(images)]
    targets = [rng.integers(0, num_classes, (h, w)) for _ in range(images)]
    for t in targets:
        t[rng.random((h, w)) < ignore_fraction] = ignore_index
    cm = ConfusionMatrix(num_classes, ignore_index)
    for p, t in zip(preds, targets):
        cm.update(torch.from_numpy(p), torch.from_numpy(t))
    got, want = cm.compute(), reference(preds, targets, num_classes, ignore_index)
    assert got["pixels"] == want["pixels"].tolist()
    for key in ("mIoU", "mAcc", "mDice", "aAcc", "fwIoU"):
        assert same(got[key], float(want[key])), key
    for key in ("IoU", "Acc", "Dice"):
        assert all(same(a, float(b)) for a, b in zip(got[key], want[key])), key


def test_absent_classes_are_left_out_and_one_sided_classes_count():
    # class 0 right everywhere, class 1 only predicted (IoU 0, counts), class 2 absent from both (left out)
    target = torch.tensor([[0, 0, 0, 0]])
    pred = torch.tensor([[0, 0, 0, 1]])
    cm = ConfusionMatrix(3)
    cm.update(pred, target)
    r = cm.compute()
    assert r["IoU"][0] == 0.75 and r["IoU"][1] == 0.0 and math.isnan(r["IoU"][2])
    assert r["mIoU"] == pytest.approx(0.375)
    assert r["mAcc"] == 0.75  # class 1 has no ground truth: its accuracy is undefined and left out
    assert r["confusion"] == [[3, 1, 0], [0, 0, 0], [0, 0, 0]]


def test_predictions_under_ignored_pixels_never_count_even_out_of_range():
    cm = ConfusionMatrix(2, ignore_index=255)
    cm.update(torch.tensor([7, 1, 0]), torch.tensor([255, 1, 0]))
    assert cm.matrix.tolist() == [[1, 0], [0, 1]]


def test_out_of_range_values_are_errors():
    cm = ConfusionMatrix(3, ignore_index=255)
    with pytest.raises(ValueError, match="target has values outside 0..2"):
        cm.update(torch.tensor([0, 1]), torch.tensor([0, 3]))
    with pytest.raises(ValueError, match="prediction has values outside"):
        cm.update(torch.tensor([0, 5]), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="differ in shape"):
        cm.update(torch.zeros(2, 3), torch.zeros(3, 2))
    assert int(cm.matrix.sum()) == 0  # a refused batch leaves the matrix as it was


def test_empty_matrix_gives_nan_not_zero():
    r = metrics_from_confusion(torch.zeros(2, 2, dtype=torch.int64))
    assert all(math.isnan(r[k]) for k in ("mIoU", "mAcc", "mDice", "aAcc", "fwIoU"))


def test_format_table_lists_every_class_and_the_means():
    cm = ConfusionMatrix(2)
    cm.update(torch.tensor([0, 1, 1]), torch.tensor([0, 1, 0]))
    table = format_table(cm.compute(), ["road", "sky"])
    assert "road" in table and "sky" in table and "mIoU 50.00" in table and "mAcc 75.00" in table
