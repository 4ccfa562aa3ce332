"""Charts as PNG files: the confusion matrix and per-class IoU of ``tools/eval.py``, training curves.

Drawn on ``matplotlib.figure.Figure`` with the Agg canvas, never through pyplot's global state: no
``matplotlib.use`` that would switch a notebook's backend, no figure left open in pyplot's registry.
matplotlib is imported only when a chart is drawn.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import numpy as np


def figure(ncols: int = 1, figsize=(6, 4)):
    """A figure with ``ncols`` axes on an Agg canvas, outside pyplot (so no backend switch)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, ncols)
    return fig, axes


def plot_confusion(matrix: Sequence[Sequence[int]], class_names: Sequence[str], path) -> Path:
    """Confusion matrix normalised per ground-truth row (the diagonal is each class's accuracy)."""
    m = np.asarray(matrix, dtype=np.float64)
    rows = m.sum(1, keepdims=True)
    norm = np.divide(m, rows, out=np.zeros_like(m), where=rows > 0)
    n = len(class_names)
    size = max(4.0, 0.45 * n + 2)
    fig, ax = figure(figsize=(size + 1, size))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(n), class_names, rotation=60, ha="right")
    ax.set_yticks(range(n), class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("ground truth")
    if n <= 30:
        for i in range(n):
            for j in range(n):
                if norm[i, j] >= 0.005:
                    ax.text(
                        j,
                        i,
                        f"{norm[i, j]:.2f}",
                        ha="center",
                        va="center",
                        fontsize=7,
                        color="white" if norm[i, j] > 0.5 else "black",
                    )
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    ax.set_title("confusion matrix (rows normalised)")
    return save_figure(fig, path)


def plot_iou(iou: Sequence[float], class_names: Sequence[str], path, miou: Optional[float] = None) -> Path:
    """Horizontal bars of per-class IoU (%); classes with undefined IoU are marked n/a."""
    values = np.asarray(iou, dtype=np.float64) * 100
    n = len(class_names)
    fig, ax = figure(figsize=(7, max(2.5, 0.3 * n + 1)))
    ax.barh(range(n), np.nan_to_num(values), color="tab:blue")
    for i, v in enumerate(values):
        ax.text((0 if np.isnan(v) else v) + 1, i, "n/a" if np.isnan(v) else f"{v:.1f}", va="center", fontsize=8)
    if miou is not None and not np.isnan(miou):
        ax.axvline(miou * 100, color="tab:red", linestyle="--", label=f"mIoU {miou * 100:.2f}")
        ax.legend(loc="lower right")
    ax.set_yticks(range(n), class_names)
    ax.invert_yaxis()
    ax.set_xlim(0, 105)
    ax.set_xlabel("IoU (%)")
    ax.set_title("per-class IoU")
    return save_figure(fig, path)


def save_figure(fig, path, dpi: int = 120) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    return path
