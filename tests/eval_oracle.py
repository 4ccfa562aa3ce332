"""An independent reference for `segkit eval`'s numbers (not a test module).

The checkpoint goes through the public ``Predictor`` one image at a time, with the same --slide / --tta
options, and the confusion matrix and IoU are counted here with numpy from their definitions, so a slip in
the eval tool's loader, batching, option wiring or metric code shows up as a different number.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from segkit.data import build_dataset
from segkit.inference.predictor import Predictor


def reference_scores(
    checkpoint, slide: bool = False, tta: bool = False, overrides: Sequence[str] = (), split: Optional[str] = None
) -> dict:
    """{"confusion": C x C ints (rows = ground truth), "IoU": per class (NaN: in neither), "mIoU", "preds"}
    of ``checkpoint`` on its own validation split (or ``split``), ``overrides`` (key=value) applied first."""
    from segkit.config import apply_overrides

    predictor = Predictor.from_checkpoint(checkpoint, device="cpu", slide=slide, tta=tta)
    cfg = apply_overrides(predictor.cfg, list(overrides)) if overrides else predictor.cfg
    if overrides:
        from segkit.inference.settings import apply_inference_options, infer_settings

        predictor.settings = infer_settings(apply_inference_options(cfg, True if slide else None, tta))
    dataset = build_dataset(cfg.data, split or cfg.data.val_split)
    n, ignore = cfg.data.num_classes, cfg.data.ignore_index
    confusion = np.zeros((n, n), np.int64)
    preds = []
    for i in range(len(dataset)):
        image, mask = dataset.read(i)
        pred = predictor.predict(image)
        preds.append(pred)
        keep = mask != ignore
        np.add.at(confusion, (mask[keep], pred[keep]), 1)  # one count per labelled pixel
    iou = []
    for c in range(n):
        tp, fn, fp = confusion[c, c], confusion[c].sum() - confusion[c, c], confusion[:, c].sum() - confusion[c, c]
        iou.append(tp / (tp + fn + fp) if tp + fn + fp else float("nan"))
    return {"confusion": confusion, "IoU": iou, "mIoU": float(np.nanmean(iou)), "preds": preds}
