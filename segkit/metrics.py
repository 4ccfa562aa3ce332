"""Exact segmentation metrics from a confusion matrix accumulated on the device.

``ConfusionMatrix.update`` is one ``bincount`` per batch, on whatever device the predictions
are; under DDP ``all_reduce`` sums the matrices, so every process gets the global result.

Means (mIoU, mAcc, mDice) are taken over the classes present in the ground truth or the
prediction: a class absent from both has an undefined IoU (0/0) and is left out (nanmean),
as mmsegmentation does. A class present in only one of them scores 0 and counts.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence

import torch
import torch.distributed as dist


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
        keep = target != self.ignore_index
        if not bool(keep.all()):
            pred, target = pred[keep], target[keep]
        target = target.reshape(-1).to(self.matrix.device, torch.int64)
        pred = pred.reshape(-1).to(self.matrix.device, torch.int64)
        if target.numel() and (int(target.min()) < 0 or int(target.max()) >= n):
            raise ValueError(f"target has values outside 0..{n - 1} that are not ignore_index={self.ignore_index}")
        self.matrix += torch.bincount(target * n + pred, minlength=n * n).view(n, n)

    def all_reduce(self) -> None:
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            dist.all_reduce(self.matrix, op=dist.ReduceOp.SUM)

    def reset(self) -> None:
        self.matrix.zero_()

    def compute(self) -> Dict[str, object]:
        return metrics_from_confusion(self.matrix)


def metrics_from_confusion(matrix: torch.Tensor) -> Dict[str, object]:
    """aAcc, mIoU, mAcc, mDice (= mean F1), fwIoU and per-class IoU/Acc/Dice (NaN where undefined)."""
    m = matrix.double().cpu()
    tp = m.diag()
    gt = m.sum(1)  # pixels of each class in the ground truth
    pred = m.sum(0)  # pixels predicted as each class
    union = gt + pred - tp
    nan = torch.tensor(float("nan"), dtype=torch.float64)
    iou = torch.where(union > 0, tp / union.clamp(min=1), nan)
    acc = torch.where(gt > 0, tp / gt.clamp(min=1), nan)
    dice = torch.where(gt + pred > 0, 2 * tp / (gt + pred).clamp(min=1), nan)
    total = m.sum()
    freq = gt / total if total > 0 else torch.zeros_like(gt)
    present = ~torch.isnan(iou)
    return {
        "aAcc": float(tp.sum() / total) if total > 0 else float("nan"),
        "mIoU": float(iou[present].mean()) if present.any() else float("nan"),
        "mAcc": float(acc[~torch.isnan(acc)].mean()) if (~torch.isnan(acc)).any() else float("nan"),
        "mDice": float(dice[~torch.isnan(dice)].mean()) if (~torch.isnan(dice)).any() else float("nan"),
        "fwIoU": float((freq[present] * iou[present]).sum()),
        "IoU": iou.tolist(),
        "Acc": acc.tolist(),
        "Dice": dice.tolist(),
        "pixels": gt.long().tolist(),
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
