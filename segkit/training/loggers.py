"""Where a run's numbers go besides train.log and metrics.jsonl: ``train.loggers`` names them, each a key of
``LOGGERS`` (tensorboard, the default; mlflow and wandb, the optional extras ``segkit[mlflow]``,
``segkit[wandb]``). Rank 0 only: ``TrainLogger`` builds them where it writes anything.

Every logger gets the resolved config (flattened, dotted keys) and tags when the run starts, the scalars of
every log line and validation at its iteration (``train/loss``, ``train/lr``, ``val/mIoU``, ``val/IoU/<class>``),
validation overlays (image | ground truth | prediction) and, at the end, files (config.yaml, curves.png, the
overlays; best.pth with ``train.log_checkpoint: true``). A logger's ``run_id`` is kept in the checkpoint, so
``--resume`` continues the same MLflow run / W&B run. Each library reads its own environment: MLflow
``MLFLOW_TRACKING_URI`` and ``MLFLOW_EXPERIMENT_NAME`` (default: the config's name), W&B ``WANDB_PROJECT``
(default segkit), ``WANDB_MODE``, ``WANDB_DIR`` (default: the work dir). A logger that fails (its server cannot
be reached) says so once and is dropped; training goes on with the others.
"""

from __future__ import annotations

import os
import platform
import re
import socket
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence

import numpy as np

from segkit import __version__
from segkit.errors import ConfigError, optional_import

OVERLAY_DIR = "val_overlays"  # <work dir>/val_overlays/: the last validation's overlays, uploaded at the end


def flatten(tree: Mapping[str, Any], prefix: str = "") -> Dict[str, str]:
    """``{"train": {"lr": 0.01}}`` -> ``{"train.lr": "0.01"}``; lists stay one value."""
    flat: Dict[str, str] = {}
    for key, value in tree.items():
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = str(value)
    return flat


def run_tags() -> Dict[str, str]:
    return {"segkit.version": __version__, "machine": socket.gethostname(), "platform": platform.platform()}


def artifact_folder(path: Path) -> Optional[str]:
    """Overlays keep their folder among the artifacts; the work dir's own files sit at the top."""
    return OVERLAY_DIR if path.parent.name == OVERLAY_DIR else None


class RunLogger:
    """One backend. ``start`` opens (or, with ``run_id``, reopens) its run; ``close`` ends it."""

    name = ""
    wants_images = True  # overlays at every validation
    run_id: Optional[str] = None

    def start(self, work: Path, name: str, params: Dict[str, str], start: int, run_id: Optional[str]) -> None:
        raise NotImplementedError

    def scalars(self, values: Dict[str, float], step: int) -> None:
        raise NotImplementedError

    def images(self, images: Dict[str, np.ndarray], step: int) -> None:
        """``name -> H x W x 3 uint8``."""

    def files(self, paths: Sequence[Path]) -> None:
        """At the end of a run: its files as artifacts."""

    def close(self, finished: bool) -> None:
        pass


class TensorBoardLogger(RunLogger):
    """Event files in <work dir>/tb (``tensorboard --logdir work_dirs``); nothing when tensorboard is absent."""

    name = "tensorboard"

    def start(self, work, name, params, start, run_id):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # tensorboard is optional
            self.writer = None
            return
        self.writer = SummaryWriter(str(work / "tb"), purge_step=start + 1 if start else None)

    def scalars(self, values, step):
        if self.writer is not None:
            for key, value in values.items():
                self.writer.add_scalar(key, value, step)

    def images(self, images, step):
        if self.writer is not None:
            for key, image in images.items():
                self.writer.add_image(key, image, step, dataformats="HWC")

    def close(self, finished):
        if getattr(self, "writer", None) is not None:
            self.writer.close()


MLFLOW_KEY = re.compile(r"[^\w\-. /:]")  # the characters MLflow allows in a metric name


class MlflowLogger(RunLogger):
    """One MLflow run per training run, through ``MlflowClient`` (no global active run)."""

    name = "mlflow"
    wants_images = False  # the overlays go up once, as files at the end

    def __init__(self):
        self.mlflow = optional_import("mlflow", "mlflow", "train.loggers: mlflow")
        # a server that is down: seconds of retries, not mlflow's minutes (the user's own settings win)
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")

    def start(self, work, name, params, start, run_id):
        from mlflow.entities import Param

        self.client = self.mlflow.MlflowClient()  # MLFLOW_TRACKING_URI, else mlflow's default
        if run_id is not None:
            self.client.update_run(run_id, status="RUNNING")
            self.run_id = run_id
            return
        experiment = os.environ.get("MLFLOW_EXPERIMENT_NAME") or name or "segkit"
        found = self.client.get_experiment_by_name(experiment)
        experiment_id = found.experiment_id if found else self.client.create_experiment(experiment)
        self.run_id = self.client.create_run(experiment_id, run_name=name or None, tags=run_tags()).info.run_id
        items = [Param(k, v[:6000]) for k, v in params.items()]
        for i in range(0, len(items), 100):  # MLflow takes at most 100 parameters a call
            self.client.log_batch(self.run_id, params=items[i : i + 100])

    def scalars(self, values, step):
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(MLFLOW_KEY.sub("_", k), v, now, step) for k, v in values.items()]
        self.client.log_batch(self.run_id, metrics=metrics)

    def files(self, paths):
        for path in paths:
            self.client.log_artifact(self.run_id, str(path), artifact_folder(path))

    def close(self, finished):
        if self.run_id is not None:
            self.client.set_terminated(self.run_id, "FINISHED" if finished else "KILLED")


class WandbLogger(RunLogger):
    """One W&B run per training run; ``WANDB_MODE=offline`` keeps it under <WANDB_DIR>/wandb/ for ``wandb sync``."""

    name = "wandb"

    def __init__(self):
        self.wandb = optional_import("wandb", "wandb", "train.loggers: wandb")
        self.run = None

    def start(self, work, name, params, start, run_id):
        self.run = self.wandb.init(
            project=os.environ.get("WANDB_PROJECT") or "segkit",
            name=name or None,
            id=run_id,
            resume="allow" if run_id else None,
            dir=os.environ.get("WANDB_DIR") or str(work),
            config=params,
            tags=[f"segkit-{__version__}", socket.gethostname()],
            reinit="create_new",
        )
        self.run_id = self.run.id

    def scalars(self, values, step):
        self.run.log(dict(values), step=step)

    def images(self, images, step):
        self.run.log({k: self.wandb.Image(v) for k, v in images.items()}, step=step)

    def files(self, paths):
        artifact = self.wandb.Artifact(f"{self.run.id}-files", type="segkit-run")
        for path in paths:
            folder = artifact_folder(path)
            artifact.add_file(str(path), name=f"{folder}/{path.name}" if folder else path.name)
        self.run.log_artifact(artifact)

    def close(self, finished):
        if self.run is not None:
            self.run.finish(exit_code=0 if finished else 1)


# train.loggers names -> the class. Adding a backend is one class above and one entry here.
LOGGERS: Dict[str, Callable[[], RunLogger]] = {
    "tensorboard": TensorBoardLogger,
    "mlflow": MlflowLogger,
    "wandb": WandbLogger,
}


def check_logger_names(names: Iterable[str]) -> List[str]:
    """The names, once each; an unknown one is a ConfigError naming the choices."""
    names = list(names)
    unknown = [n for n in names if n not in LOGGERS]
    if unknown:
        raise ConfigError(f"train.loggers: unknown logger '{unknown[0]}'; choose from {', '.join(LOGGERS)}")
    return list(dict.fromkeys(names))


class Loggers:
    """The run's loggers behind one call each; a logger whose call fails is reported once and dropped.
    Building one whose library is not installed is a MissingDependency (before training starts)."""

    def __init__(self, names: Sequence[str], say: Callable[[str], None]):
        self.say = say
        self.active: List[RunLogger] = [LOGGERS[n]() for n in check_logger_names(names)]
        self.run_ids: Dict[str, str] = {}

    def _call(self, logger: RunLogger, method: str, *args) -> None:
        try:
            getattr(logger, method)(*args)
        except Exception as exc:  # noqa: BLE001 - a dashboard must never stop a training run
            self.active.remove(logger)
            detail = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
            self.say(
                f"warning: the {logger.name} logger failed ({type(exc).__name__}: {detail}); "
                f"training goes on without it"
            )
            if method != "close":
                try:
                    logger.close(False)
                except Exception:  # noqa: BLE001 - reported once above
                    pass
        else:
            if logger.run_id is not None:
                self.run_ids[logger.name] = logger.run_id

    def _each(self, method: str, *args) -> None:
        for logger in list(self.active):
            self._call(logger, method, *args)

    @property
    def wants_images(self) -> bool:
        return any(logger.wants_images for logger in self.active)

    def start(self, work: Path, name: str, config: Mapping[str, Any], start: int, run_ids: Mapping[str, str]):
        """``run_ids``: the checkpoint's (``--resume``), so that each logger continues its run."""
        params = flatten(config)
        for logger in list(self.active):
            self._call(logger, "start", work, name, params, start, run_ids.get(logger.name))

    def scalars(self, values: Dict[str, float], step: int) -> None:
        self._each("scalars", {k: float(v) for k, v in values.items() if v is not None and np.isfinite(v)}, step)

    def images(self, images: Dict[str, np.ndarray], step: int) -> None:
        self._each("images", images, step)

    def files(self, paths: Sequence[Path]) -> None:
        self._each("files", [p for p in paths if p.is_file()])

    def close(self, finished: bool) -> None:
        self._each("close", finished)
        self.active = []


def blend(image: np.ndarray, mask: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """Half class colour, half image; pixels that are no class (ignored) show the image."""
    colours = palette[np.clip(mask, 0, len(palette) - 1)]
    mixed = (image.astype(np.uint16) + colours) // 2
    return np.where(((mask >= 0) & (mask < len(palette)))[..., None], mixed, image).astype(np.uint8)


def validation_overlays(model, dataset, normalize, device, dtype, count: int = 3) -> Dict[str, np.ndarray]:
    """``val/overlay/<stem>`` -> image | ground truth | prediction, for the first ``count`` validation images.
    Leaves the model in eval mode (the caller switches back to training)."""
    import torch

    from segkit.data import default_palette
    from segkit.data.normalize import to_display
    from segkit.runtime import autocast

    palette = np.asarray(dataset.palette or default_palette(dataset.num_classes), np.uint16)
    model.eval()
    pictures = {}
    for index in range(min(count, len(dataset))):
        sample = dataset[index]
        with torch.no_grad(), autocast(device, dtype):
            out = model(normalize(sample["image"][None].to(device)))
        pred = (out["out"] if isinstance(out, dict) else out)[0].argmax(0).cpu().numpy()
        # the image as a person sees it: 16-bit, float (0..1 units) or N-band data shown as 8-bit RGB
        rgb, truth = to_display(sample["image"].permute(1, 2, 0).numpy()), sample["mask"].numpy()
        stem = Path(str(dataset.pairs[index][0])).stem
        row = [rgb, blend(rgb, truth, palette), blend(rgb, pred, palette)]
        pictures[f"val/overlay/{stem}"] = np.ascontiguousarray(np.concatenate(row, axis=1))
    return pictures
