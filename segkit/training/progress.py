"""What the user sees while training: a progress bar (or log lines), train.log (the terminal's
lines without the bar), metrics.jsonl, the loggers of ``train.loggers`` (TensorBoard events, MLflow,
W&B: segkit.training.loggers), and at the end a PNG of the curves. Only rank 0 makes any of it.
"""

from __future__ import annotations

import datetime
import json
import math
import sys
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

import torch
from tqdm import tqdm

from segkit.config import to_dict
from segkit.evaluation.metrics import format_table
from segkit.training.loggers import OVERLAY_DIR, Loggers, check_logger_names
from segkit.training.plots import figure, save_figure


def _plain(value: Any) -> Any:
    """JSON without NaN (null instead). Floats keep full precision: the mIoU logged here must equal,
    to the last digit, what tools/eval.py prints for the same checkpoint."""
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else value
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def read_metrics(path: Path) -> List[Dict[str, Any]]:
    if not path.is_file():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:  # a line cut by a kill -9
            continue
    return records


def truncate_metrics(path: Path, iteration: int) -> None:
    """On resume: drop records past the checkpoint's iteration (written before a crash), so the
    log and the curves tell one consistent story."""
    records = [r for r in read_metrics(path) if r.get("iter", 0) <= iteration]
    path.write_text("".join(json.dumps(r) + "\n" for r in records))


class TrainLogger:
    """Keeps set-up messages for train.log until ``begin``, which opens it and the rest once the starting
    iteration is known (a fresh start has moved an earlier run's train.log aside by then)."""

    def __init__(
        self,
        work: Path,
        mode: str = "auto",
        enabled: bool = True,
        tensorboard: bool = True,
        device: Optional[torch.device] = None,
        loggers: Sequence[str] = ("tensorboard",),
    ):
        self.work, self.enabled, self.device = work, enabled, device
        self.metrics_path, self.text_path = work / "metrics.jsonl", work / "train.log"
        self.file = self.bar = self.text = self.loggers = None
        self.finished = False
        self.pending: List[str] = []  # train.log's lines before ``begin`` opens it
        names = [n for n in check_logger_names(loggers) if n != "tensorboard" or tensorboard]
        self.total, self.start = 0, 0
        self.use_bar = enabled and (mode == "bar" or (mode == "auto" and sys.stderr.isatty()))
        if enabled:
            self.pending.append(f"--- {datetime.datetime.now().isoformat(timespec='seconds')}")
            self.loggers = Loggers(names, self.info)  # a missing extra stops the run here, before training

    def begin(self, total: int, start: int, cfg=None, ckpt: Optional[Dict[str, Any]] = None) -> None:
        """Metrics and loggers from iteration ``start`` on (records past it, from a crashed run, go);
        ``ckpt``, when resuming, holds the loggers' run ids to continue."""
        self.total, self.start = total, start
        if not self.enabled:
            return
        self._open_text()
        if start > 0:
            truncate_metrics(self.metrics_path, start)
        self.file = self.metrics_path.open("a")
        config = to_dict(cfg) if cfg is not None else {}
        self.loggers.start(self.work, config.get("name") or "", config, start, (ckpt or {}).get("loggers", {}))

    def run_ids(self) -> Dict[str, str]:
        """Each logger's run, for the checkpoint (``--resume`` continues it)."""
        return dict(self.loggers.run_ids) if self.loggers is not None else {}

    def set_total(self, total: int) -> None:
        """A time budget fixed the schedule's length: the bar and the ETA count to it."""
        self.total = total
        if self.bar is not None:
            self.bar.total = total
            self.bar.refresh()

    def info(self, message: str) -> None:
        if self.enabled:
            (self.bar.write if self.bar else print)(message)
            sys.stdout.flush()
            self.to_file(message)

    def to_file(self, message: str) -> None:
        """A line for train.log only (the terminal shows it another way, or not at all)."""
        if self.text is not None:
            self.text.write(message + "\n")
            self.text.flush()
        elif self.enabled:
            self.pending.append(message)

    def _open_text(self) -> None:
        if self.text is None:
            self.work.mkdir(parents=True, exist_ok=True)
            self.text = self.text_path.open("a")
            lines, self.pending = self.pending, []
            for line in lines:
                self.to_file(line)

    def track(self, loader, what: str):
        """``loader``, with a second bar while it runs (validation); the main bar's clock stops meanwhile,
        so its rate and ETA stay those of training."""
        if not (self.enabled and self.use_bar):
            if self.enabled and hasattr(loader, "__len__"):
                print(f"{what}: {len(loader)} batches", flush=True)
            yield from loader
            return
        with tqdm(loader, desc=what, unit="batch", leave=False, dynamic_ncols=True) as inner:
            yield from inner
        if self.bar is not None:
            self.bar.unpause()

    def step(self) -> None:
        if self.use_bar and self.enabled:
            if self.bar is None:  # made at the first step, after the set-up messages
                self.bar = tqdm(total=self.total, initial=self.start, unit="it", dynamic_ncols=True, smoothing=0.05)
            self.bar.update(1)

    def memory(self) -> Optional[float]:
        if self.device is not None and self.device.type == "cuda":
            return torch.cuda.max_memory_allocated(self.device) / 2**30
        return None

    def train(self, it: int, values: Dict[str, float], lr: float, rate: float) -> None:
        if not self.enabled:
            return
        mem = self.memory()
        record = {"iter": it, **values, "lr": lr, "it_per_s": rate, **({"mem_gib": mem} if mem else {})}
        self._write(record)
        scalars = {f"train/{k}": v for k, v in values.items()}
        self.loggers.scalars({**scalars, "train/lr": lr, "train/it_per_s": rate}, it)
        mem_text = f" mem {mem:.2f}G" if mem else ""
        eta = datetime.timedelta(seconds=round((self.total - it) / rate)) if rate > 0 else "?"
        line = (
            f"iter {it}/{self.total}  loss {values['loss']:.4f}  lr {lr:.3e}  {rate:.2f} it/s  "
            f"eta {eta}{mem_text}"
        )  # the ETA counts training steps only, not validations
        self.to_file(line)
        if self.bar is not None:
            self.bar.set_postfix_str(f"loss {values['loss']:.4f} lr {lr:.2e}{mem_text}", refresh=False)
        else:
            print(line, flush=True)

    def val(
        self,
        it: int,
        results: Dict[str, Any],
        class_names: Sequence[str],
        best: float,
        overlays: Optional[Callable[[], Dict[str, Any]]] = None,
    ) -> None:
        """``overlays()``: name -> image | truth | prediction pictures, made only when a logger takes them."""
        if not self.enabled:
            return
        summary = {k: results[k] for k in ("mIoU", "mAcc", "mDice", "aAcc", "fwIoU")}
        self._write({"iter": it, "val": {**summary, "IoU": results["IoU"]}})
        per_class = {f"val/IoU/{name}": v for name, v in zip(class_names, results["IoU"])}
        self.loggers.scalars({**{f"val/{k}": v for k, v in summary.items()}, **per_class}, it)
        if overlays is not None and self.loggers.active:
            self._overlays(overlays(), it)
        self.info(
            f"validation at iteration {it}:\n{format_table(results, class_names)}\n"
            f"best mIoU so far {100 * max(best, results['mIoU']):.2f}"
        )

    def _overlays(self, pictures: Dict[str, Any], it: int) -> None:
        if self.loggers.wants_images:
            self.loggers.images(pictures, it)
        if any(logger.name != "tensorboard" for logger in self.loggers.active):  # files at the end: the last ones
            from PIL import Image

            folder = self.work / OVERLAY_DIR
            folder.mkdir(exist_ok=True)
            for key, picture in pictures.items():
                Image.fromarray(picture).save(folder / f"{key.rsplit('/', 1)[-1]}.png")

    def finish(self, log_checkpoint: bool = False) -> None:
        """The run ended as planned: its files go to the loggers (best.pth too with ``log_checkpoint``)."""
        if not self.enabled:
            return
        names = ["config.yaml", "curves.png"] + (["best.pth"] if log_checkpoint else [])
        overlays = sorted((self.work / OVERLAY_DIR).glob("*.png"))
        self.loggers.files([self.work / n for n in names[:2]] + overlays + [self.work / n for n in names[2:]])
        self.finished = True

    def _write(self, record: Dict[str, Any]) -> None:
        self.file.write(json.dumps(_plain(record)) + "\n")
        self.file.flush()

    def close(self) -> None:
        if self.pending:  # the run stopped before ``begin``: its set-up messages and error still land
            self._open_text()
        if self.loggers is not None:
            self.loggers.close(self.finished)
        for handle in (self.bar, self.file, self.text):
            if handle is not None:
                handle.close()
        self.bar = self.file = self.text = self.loggers = None


def plot_curves(metrics_path: Path, out: Path) -> Optional[Path]:
    """Loss, LR and validation mIoU against the iteration, in one PNG."""
    records = read_metrics(metrics_path)
    train = [r for r in records if "loss" in r]
    val = [r for r in records if "val" in r and r["val"].get("mIoU") is not None]
    if not train:
        return None
    fig, axes = figure(3, figsize=(13, 3.6))
    axes[0].plot([r["iter"] for r in train], [r["loss"] for r in train])
    axes[0].set(title="training loss", xlabel="iteration")
    axes[1].plot([r["iter"] for r in train], [r["lr"] for r in train])
    axes[1].set(title="learning rate", xlabel="iteration")
    axes[2].plot([r["iter"] for r in val], [100 * r["val"]["mIoU"] for r in val], marker="o")
    axes[2].set(title="validation mIoU (%)", xlabel="iteration")
    for ax in axes:
        ax.grid(alpha=0.3)
    return save_figure(fig, out, dpi=100)
