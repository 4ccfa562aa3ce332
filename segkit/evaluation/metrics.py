"""Exact segmentation metrics from a confusion matrix accumulated on the device.

``ConfusionMatrix.update`` is one ``bincount`` per batch, on whatever device the predictions
are; under DDP ``all_reduce`` sums the matrices, so every process gets the global result.
Pixels whose target is ``ignore_index`` never count, whatever was predicted there.

Which classes enter each mean (all means are NaN-means, as in mmsegmentation):

- IoU_c = TP / (TP + FP + FN) is undefined (0/0) only when class c is absent from both the
  ground truth and the prediction; such classes are left out of mIoU. A class present in only
  one of them has IoU 0 and counts.
- Acc_c = TP / (TP + FN), the class's recall, is undefined when c is absent from the ground
  truth, so mAcc averages over the classes present in the ground truth.
- Dice_c = 2 TP / (2 TP + FP + FN) (= F1) is undefined exactly where IoU is; mDice averages
  over the same classes as mIoU.
- fwIoU weighs each IoU by the class's share of ground-truth pixels (Long et al., 2015).
- aAcc is the share of labelled pixels predicted right.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence

import torch
import torch.distributed as dist

from segkit.errors import DataError


class ConfusionMatrix:
    """Rows are ground-truth classes, columns predicted classes; ignored pixels never count."""

    def __init__(self, num_classes: int, ignore_index: int = 255, device: Optional[torch.device | str] = None):
        self.num_classes, self.ignore_index = num_classes, ignore_index
        self.matrix = torch.zeros(num_classes, num_classes, dtype=torch.int64, device=device)

    @torch.no_grad()
    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        """``pred`` and ``target``: integer tensors of the same shape (any N, H, W)."""
        if pred.shape != target.shape:
            raise ValueError(f"prediction {tuple(pred.shape)} and target {tuple(target.shape)} differ in shape")
        n = self.num_classes
        target = target.reshape(-1).to(self.matrix.device, torch.int64)
        pred = pred.reshape(-1).to(self.matrix.device, torch.int64)
        # Two extra bins instead of boolean indexing (which syncs with the GPU on every call):
        # n*n counts pixels whose label or prediction is out of range, n*n+1 ignored pixels.
        valid = (target >= 0) & (target < n) & (pred >= 0) & (pred < n)
        index = torch.where(valid, target * n + pred, n * n)
        index = torch.where(target == self.ignore_index, n * n + 1, index)
        counts = torch.bincount(index, minlength=n * n + 2)
        if int(counts[n * n]):
            bad_target = (target != self.ignore_index) & ((target < 0) | (target >= n))
            if bool(bad_target.any()):
                raise DataError(
                    f"target has values outside 0..{n - 1} that are not ignore_index={self.ignore_index}: "
                    f"check data.num_classes and data.ignore_index (segkit check CONFIG lists the labels)"
                )
            raise ValueError(f"prediction has values outside 0..{n - 1}")
        self.matrix += counts[: n * n].view(n, n)

    def all_reduce(self) -> None:
        """Sum the matrices of all processes (no-op outside DDP)."""
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            dist.all_reduce(self.matrix, op=dist.ReduceOp.SUM)

    def reset(self) -> None:
        self.matrix.zero_()

    def compute(self) -> Dict[str, object]:
        return metrics_from_confusion(self.matrix)


def _nanmean(values: torch.Tensor) -> float:
    defined = values[~torch.isnan(values)]
    return float(defined.mean()) if defined.numel() else float("nan")


def metrics_from_confusion(matrix: torch.Tensor) -> Dict[str, object]:
    """aAcc, mIoU, mAcc, mDice (= mean F1), fwIoU, per-class IoU/Acc/Dice (NaN where undefined),
    ``pixels`` (ground-truth pixels per class) and ``confusion`` (the matrix, rows = ground truth)."""
    m = matrix.detach().double().cpu()  # counts stay exact in float64 up to 2**53 pixels
    tp = m.diag()
    gt = m.sum(1)
    pred = m.sum(0)
    union = gt + pred - tp
    nan = torch.tensor(float("nan"), dtype=torch.float64)
    iou = torch.where(union > 0, tp / union.clamp(min=1), nan)
    acc = torch.where(gt > 0, tp / gt.clamp(min=1), nan)
    dice = torch.where(gt + pred > 0, 2 * tp / (gt + pred).clamp(min=1), nan)
    total = m.sum()
    present = ~torch.isnan(iou)
    return {
        "aAcc": float(tp.sum() / total) if total > 0 else float("nan"),
        "mIoU": _nanmean(iou),
        "mAcc": _nanmean(acc),
        "mDice": _nanmean(dice),
        "fwIoU": float((gt[present] / total * iou[present]).sum()) if total > 0 else float("nan"),
        "IoU": iou.tolist(),
        "Acc": acc.tolist(),
        "Dice": dice.tolist(),
        "pixels": gt.long().tolist(),
        "confusion": matrix.detach().cpu().long().tolist(),
    }


def format_table(results: Dict[str, object], class_names: Sequence[str]) -> str:
    """A per-class table then the summary line, percentages with two decimals."""

    def pct(v: float) -> str:
        return "   nan" if v != v else f"{100 * v:6.2f}"

    width = max([len("class")] + [len(n) for n in class_names])
    lines: List[str] = [f"{'class':<{width}}    IoU    Acc   Dice", "-" * (width + 22)]
    for i, name in enumerate(class_names):
        lines.append(f"{name:<{width}} {pct(results['IoU'][i])} {pct(results['Acc'][i])} {pct(results['Dice'][i])}")
    lines.append("-" * (width + 22))
    lines.append("  ".join(f"{k} {pct(results[k]).strip()}" for k in ("mIoU", "mAcc", "mDice", "aAcc", "fwIoU")))
    return "\n".join(lines)


def image_scores(pred, target, num_classes: int, ignore_index: int) -> Dict[str, object]:
    """One image's metrics (arrays or tensors of the same shape): its mIoU over the classes present in
    its prediction or ground truth, per-class IoU, pixel accuracy (aAcc) and confusion matrix."""
    cm = ConfusionMatrix(num_classes, ignore_index)
    cm.update(torch.as_tensor(pred), torch.as_tensor(target))
    return {k: v for k, v in cm.compute().items() if k in ("mIoU", "IoU", "aAcc", "confusion")}
