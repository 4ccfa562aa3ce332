#!/usr/bin/env python
"""Metric speed: segkit's ConfusionMatrix vs torchmetrics' MulticlassJaccardIndex vs the per-image NumPy
histograms of mmsegmentation (0.x ``intersect_and_union``), on the same masks, in one run.

    python bench/metrics.py            # the real measurement (CamVid val masks, 360 x 480)
    python bench/metrics.py --quick    # a few images, to check the script

Targets are CamVid's real val labels (random ones if the data is absent); predictions are the
targets with a share of pixels replaced by random classes. Every method sees the images one by
one, as evaluation does, and all three must give the same per-class IoU.
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from bench._common import default_camvid, machine, markdown_table, measure, write_section  # noqa: E402
from segkit.evaluation.metrics import ConfusionMatrix  # noqa: E402

CAMVID = default_camvid()
NUM_CLASSES, IGNORE = 11, 11


def masks(count: int, noise: float = 0.3, seed: int = 0):
    """(predictions, targets): lists of int64 H x W tensors."""
    from segkit.data import read_mask

    rng = np.random.default_rng(seed)
    files = sorted((CAMVID / "valannot").glob("*.png"))[:count] if CAMVID.is_dir() else []
    targets = [read_mask(f).astype(np.int64) for f in files]
    targets += [rng.integers(0, NUM_CLASSES + 1, (360, 480)) for _ in range(count - len(targets))]
    preds = []
    for t in targets:
        p = np.where(t == IGNORE, rng.integers(0, NUM_CLASSES, t.shape), t)
        flip = rng.random(t.shape) < noise
        preds.append(np.where(flip, rng.integers(0, NUM_CLASSES, t.shape), p))
    source = "CamVid val labels" if files else "random labels"
    return [torch.from_numpy(p) for p in preds], [torch.from_numpy(t) for t in targets], source


def segkit_iou(preds, targets, device):
    cm = ConfusionMatrix(NUM_CLASSES, IGNORE, device)
    for p, t in zip(preds, targets):
        cm.update(p.to(device), t.to(device))
    return np.array(cm.compute()["IoU"])


def torchmetrics_iou(preds, targets, device):
    from torchmetrics.classification import MulticlassJaccardIndex

    metric = MulticlassJaccardIndex(NUM_CLASSES, average="none", ignore_index=IGNORE, validate_args=False).to(device)
    for p, t in zip(preds, targets):
        metric.update(p.to(device), t.to(device))
    return metric.compute().double().cpu().numpy()


def mmseg_numpy_iou(preds, targets, device=None):
    """mmsegmentation 0.x: per image, histograms of the intersection, prediction and label."""
    inter, union = np.zeros(NUM_CLASSES), np.zeros(NUM_CLASSES)
    for p, t in zip(preds, targets):
        p, t = p.numpy(), t.numpy()
        keep = t != IGNORE
        p, t = p[keep], t[keep]
        same = p[p == t]
        bins = dict(bins=NUM_CLASSES, range=(0, NUM_CLASSES - 1))
        area_inter = np.histogram(same, **bins)[0]
        area_pred, area_label = np.histogram(p, **bins)[0], np.histogram(t, **bins)[0]
        inter += area_inter
        union += area_pred + area_label - area_inter
    return inter / union


METHODS = {
    "segkit ConfusionMatrix (bincount)": segkit_iou,
    "torchmetrics MulticlassJaccardIndex": torchmetrics_iou,
    "per-image NumPy histogram (mmseg 0.x)": mmseg_numpy_iou,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="8 images, 1 repeat: checks the script, not the speed")
    parser.add_argument("--images", type=int, default=101)
    args = parser.parse_args()
    count, repeats = (8, 1) if args.quick else (args.images, 5)
    preds, targets, source = masks(count)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    rows, reference = [], segkit_iou(preds, targets, "cpu")
    for device in devices:
        base = None
        for name, fn in METHODS.items():
            if device == "cuda" and fn is mmseg_numpy_iou:
                continue  # NumPy runs on the host only
            iou = fn(preds, targets, device)
            diff = float(np.nanmax(np.abs(iou - reference)))
            if diff > 1e-6:
                raise SystemExit(f"{name} on {device} disagrees with segkit: max |IoU difference| {diff:.2e}")
            seconds = measure(lambda: fn(preds, targets, device), warmup=1, repeats=repeats, device=device)["median"]
            base = base or seconds
            rows.append(
                [
                    name,
                    device,
                    f"{count / seconds:,.0f}",
                    f"{1000 * seconds / count:.2f}",
                    f"{seconds / base:.2f}x",
                    f"{diff:.0e}",
                ]
            )
    header = ["method", "device", "images/s", "ms/image", "time vs segkit", "max abs IoU diff vs segkit"]
    h, w = targets[0].shape
    body = (
        f"`python bench/metrics.py{' --quick' if args.quick else ''}`: mIoU over {count} masks of {h} x {w} "
        f"({source}, {NUM_CLASSES} classes, ignore {IGNORE}), one update per image, median of {repeats}.\n"
        f"Machine: {machine()}\n\n" + markdown_table(header, rows)
    )
    if args.quick:
        body += "\n\n(quick mode: a check of the script, not a measurement)"
    write_section("metrics", "## Metrics\n\n" + body)
    print(body)


if __name__ == "__main__":
    main()
