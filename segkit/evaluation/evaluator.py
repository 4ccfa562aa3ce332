"""The one evaluation path: training-time validation and ``tools/eval.py`` both call ``evaluate``,
so they print the same mIoU for the same checkpoint and data."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import torch

from segkit.data import Normalizer
from segkit.evaluation.metrics import ConfusionMatrix, image_scores
from segkit.inference.modes import infer
from segkit.inference.settings import infer_settings
from segkit.runtime import autocast, inference_channels_last, memory_format


@torch.no_grad()
def evaluate(
    model: torch.nn.Module,
    loader,
    cfg,
    device: torch.device,
    dtype: Optional[torch.dtype] = None,
    on_batch: Optional[Callable[[Dict[str, torch.Tensor], torch.Tensor], None]] = None,
) -> Dict[str, Any]:
    """Metrics of ``model`` on ``loader`` with the inference settings of ``cfg.eval``.

    ``on_batch(batch, pred)`` is called after each batch with the loader's batch (uint8 images,
    masks, indices) and the predicted class ids N x H x W, e.g. to save visualisations.
    With ``eval.batch_size`` > 1 on images of different sizes, the zero padding of ``pad_collate``
    is inside the model's view (and rescaled with ``eval.resize``); batch size 1 is exact.
    """
    was_training = model.training
    model.eval()
    cm = ConfusionMatrix(cfg.data.num_classes, cfg.data.ignore_index, device)
    settings = infer_settings(cfg)
    normalize = Normalizer(
        cfg.data.mean, cfg.data.std, device, memory_format=memory_format(inference_channels_last(cfg))
    )
    for batch in loader:
        images = normalize(batch["image"].to(device, non_blocking=True))
        with autocast(device, dtype):
            logits = infer(model, images, cfg.data.num_classes, **settings)
        pred = logits.argmax(1)
        cm.update(pred, batch["mask"].to(device, non_blocking=True))
        if on_batch is not None:
            on_batch(batch, pred)
    cm.all_reduce()
    model.train(was_training)
    return cm.compute()


class PerImageMetrics:
    """An ``on_batch`` hook collecting each image's stem, mIoU, per-class IoU and pixel accuracy (aAcc),
    in ``rows``. Batch padding is ``ignore_index`` in the masks, so it never counts."""

    def __init__(self, dataset, num_classes: int, ignore_index: int):
        self.dataset, self.num_classes, self.ignore_index = dataset, num_classes, ignore_index
        self.rows: List[Dict[str, Any]] = []

    def __call__(self, batch: Dict[str, torch.Tensor], pred: torch.Tensor) -> None:
        for mask, p, index in zip(batch["mask"], pred, batch["index"].tolist()):
            scores = image_scores(p, mask.to(p.device), self.num_classes, self.ignore_index)
            self.rows.append(
                {
                    "stem": Path(self.dataset.pairs[index][0]).stem,
                    "mIoU": scores["mIoU"],
                    "IoU": scores["IoU"],
                    "aAcc": scores["aAcc"],
                }
            )


def each(*hooks: Optional[Callable]) -> Optional[Callable]:
    """One ``on_batch`` calling every hook given (None ones skipped)."""
    hooks = tuple(h for h in hooks if h is not None)
    return (lambda batch, pred: [h(batch, pred) for h in hooks]) if hooks else None


def json_ready(value: Any) -> Any:
    """NaN -> None (null), recursively: strict JSON has no NaN."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    return value
