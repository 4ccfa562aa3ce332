"""The one evaluation path: training-time validation and ``tools/eval.py`` both call ``evaluate``,
so they print the same mIoU for the same checkpoint and data."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import torch

from .data import Normalizer
from .inference import infer
from .metrics import ConfusionMatrix, image_scores
from .runtime import autocast, inference_channels_last, memory_format

TTA_SCALES = (0.75, 1.0, 1.25)  # --tta when the config sets no scales of its own; with flip, six passes


def infer_settings(cfg) -> Dict[str, Any]:
    """The keyword arguments of ``infer`` that ``cfg.eval`` sets (mode, slide window, TTA, resize)."""
    e = cfg.eval
    return {"mode": e.mode, "crop": list(e.crop_size), "stride": list(e.stride), "scales": list(e.scales),
            "flip": bool(e.flip), "resize": list(e.resize) if e.resize else None, "crop_batch": int(e.crop_batch)}


def apply_inference_options(cfg, slide: Optional[bool] = None, tta: bool = False):
    """What --slide and --tta mean, for tools/eval.py, tools/infer.py and the Predictor alike:
    slide -> eval.mode=slide (window eval.crop_size, step eval.stride); tta -> horizontal flip plus
    eval.scales, or TTA_SCALES if the config has a single scale. Changes ``cfg.eval`` in place."""
    if slide is not None:
        cfg.eval.mode = "slide" if slide else "whole"
    if tta:
        if len(cfg.eval.scales) < 2:
            cfg.eval.scales = list(TTA_SCALES)
        cfg.eval.flip = True
    return cfg


@torch.no_grad()
def evaluate(model: torch.nn.Module, loader, cfg, device: torch.device, dtype: Optional[torch.dtype] = None,
             on_batch: Optional[Callable[[Dict[str, torch.Tensor], torch.Tensor], None]] = None) -> Dict[str, Any]:
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
    normalize = Normalizer(cfg.data.mean, cfg.data.std, device,
                           memory_format=memory_format(inference_channels_last(cfg)))
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


class SaveComparisons:
    """An ``on_batch`` hook: writes ``<out_dir>/<image stem>.png`` = image | ground truth | prediction |
    error map, for every image of the data set (cut back to its own size when the batch was padded)."""

    def __init__(self, dataset, out_dir, class_names, palette, ignore_index: int):
        self.dataset, self.out_dir = dataset, Path(out_dir)
        self.class_names, self.palette, self.ignore_index = list(class_names), palette, ignore_index
        self.written = 0

    def __call__(self, batch: Dict[str, torch.Tensor], pred: torch.Tensor) -> None:
        from .visualize import comparison, save_rgb

        for image, mask, p, index, (h, w) in zip(batch["image"], batch["mask"], pred.cpu(), batch["index"].tolist(),
                                                 batch["size"].tolist()):
            path = Path(self.dataset.pairs[index][0])
            # the size pad_collate saw, not the file's: its header gives W x H before EXIF orientation
            picture = comparison(image[:, :h, :w].permute(1, 2, 0).numpy(), mask[:h, :w].numpy(), p[:h, :w].numpy(),
                                 self.class_names, self.palette, self.ignore_index)
            save_rgb(self.out_dir / f"{path.stem}.png", picture)
            self.written += 1


class PerImageMetrics:
    """An ``on_batch`` hook collecting each image's stem, mIoU, per-class IoU and pixel accuracy (aAcc),
    in ``rows``. Batch padding is ``ignore_index`` in the masks, so it never counts."""

    def __init__(self, dataset, num_classes: int, ignore_index: int):
        self.dataset, self.num_classes, self.ignore_index = dataset, num_classes, ignore_index
        self.rows: List[Dict[str, Any]] = []

    def __call__(self, batch: Dict[str, torch.Tensor], pred: torch.Tensor) -> None:
        for mask, p, index in zip(batch["mask"], pred, batch["index"].tolist()):
            scores = image_scores(p, mask.to(p.device), self.num_classes, self.ignore_index)
            self.rows.append({"stem": Path(self.dataset.pairs[index][0]).stem, "mIoU": scores["mIoU"],
                              "IoU": scores["IoU"], "aAcc": scores["aAcc"]})


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
