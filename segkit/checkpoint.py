"""Self-contained checkpoints, written atomically and read with ``weights_only=True``; the one owner
of what a checkpoint holds.

A checkpoint holds the model weights and everything needed to use them: the resolved config,
class names, palette and normalisation (``meta``), plus the training state for resuming
(``training_state`` builds it; every key it writes is read by inference or by ``--resume``).
"""

from __future__ import annotations

import os
import pickle
import random
import re
import shutil
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from . import __version__
from .config import Config, from_dict, to_dict
from .errors import CheckpointError, OutputError, atomic_write, write_reason
from .models import build_model
from .models.weights import compare_state_dicts

FORMAT = "segkit-checkpoint-v1"


class CheckpointWriteError(CheckpointError):
    """A checkpoint could not be written (disk full, read-only, permissions); the previous file is intact."""


def checkpoint_meta(cfg: Config, class_names: Sequence[str], palette: Sequence[Sequence[int]]) -> Dict[str, Any]:
    """What a checkpoint carries so that inference needs nothing else."""
    return {
        "class_names": list(class_names),
        "palette": [list(c) for c in palette],
        "mean": list(cfg.data.mean),
        "std": list(cfg.data.std),
        "channels": cfg.data.channels,
        "value_range": to_dict(cfg.data).get("value_range"),  # [lo, hi] or one per band; null: 8-bit
        "ignore_index": cfg.data.ignore_index,
        "segkit_version": __version__,
        "torch_version": str(torch.__version__),
    }


def training_state(
    model: Mapping[str, torch.Tensor],
    config: Dict[str, Any],
    meta: Dict[str, Any],
    *,
    iteration: int = 0,
    schedule_iterations: Optional[int] = None,
    lr: float = 0.0,
    best_score: float = -1.0,
    best_iteration: int = 0,
    optimizer: Optional[Dict] = None,
    scaler: Optional[Dict] = None,
    rng: Optional[List[Dict]] = None,
    world_size: int = 1,
    validation_due: bool = False,
    loggers: Optional[Dict[str, str]] = None,
) -> Dict[str, Any]:
    """The checkpoint dict. ``config`` is plain (``to_dict``). Without ``optimizer`` it holds weights
    for inference only; ``--resume`` needs the optimizer, scaler and random states too.
    ``schedule_iterations``: what the LR schedule spans (``train.iterations``, or what a time budget fit).
    ``validation_due``: a stop signal abandoned this iteration's validation; ``--resume`` runs it first.
    ``loggers``: logger name -> its run id (MLflow run, W&B run), which ``--resume`` continues."""
    state = {
        "model": model,
        "config": config,
        "meta": meta,
        "iteration": iteration,
        "best_score": best_score,
        "best_iteration": best_iteration,
        "scheduler": {"policy": "poly", "iterations": schedule_iterations or config["train"]["iterations"], "lr": lr},
    }
    if optimizer is not None:
        state.update(optimizer=optimizer, scaler=scaler or {}, rng=rng or [], world_size=world_size)
        state.update(validation_due=validation_due)
    if loggers:
        state["loggers"] = dict(loggers)
    return state


def save_checkpoint(path: Union[str, Path], state: Dict[str, Any]) -> Path:
    """Write to a temporary file in the same folder, flush it to disk, then rename over ``path``:
    a crash at any moment leaves the previous file or the new one, never a partial one. The new
    file is a new inode, never a write through a link, with the permissions the umask allows."""
    path = Path(path)
    try:
        with atomic_write(path, durable=True) as tmp:
            torch.save({"format": FORMAT, **state}, tmp)
    except OutputError as exc:  # a full disk, also where torch.save wraps it in a RuntimeError
        raise CheckpointWriteError(_write_failure(path, exc.cause or exc)) from exc
    _fsync_dir(path.parent)
    return path


def _write_failure(path: Path, exc: OSError) -> str:
    what = write_reason(exc)
    kept = f"the previous {path.name} is unchanged" if path.exists() else "nothing was written"
    return (
        f"cannot write checkpoint {path}: {what} (OSError {exc.errno}); {kept}. Free space or fix the "
        f"permissions (or choose another --work-dir), then continue with --resume auto."
    )


def _fsync_dir(directory: Path) -> None:
    """Make a rename durable (the directory entry), where the platform allows it."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def copy_checkpoint(src: Union[str, Path], dst: Union[str, Path]) -> Path:
    """Make ``dst`` a copy of ``src``, atomically (a temporary file renamed over ``dst``). Never a
    hard link: a user who rewrites best.pth (say, without the optimizer) must not change last.pth.
    The kernel's copy may share blocks copy-on-write (reflink) where the file system can."""
    src, dst = Path(src), Path(dst)
    tmp = dst.parent / f".{dst.name}.{os.getpid()}.copy.tmp"
    try:
        shutil.copyfile(src, tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, dst)
    except OSError as exc:
        raise CheckpointWriteError(_write_failure(dst, exc)) from exc
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_dir(dst.parent)
    return dst


ITER_PATTERN = re.compile(r"^iter_(\d+)\.pth$")


def iteration_checkpoints(work_dir: Union[str, Path], upto: Optional[int] = None) -> List[Path]:
    """``iter_<N>.pth`` files in ``work_dir`` (with N <= ``upto``), oldest first."""
    found = [(int(m.group(1)), p) for p in Path(work_dir).glob("iter_*.pth") if (m := ITER_PATTERN.match(p.name))]
    return [p for n, p in sorted(found) if upto is None or n <= upto]


def prune_checkpoints(work_dir: Union[str, Path], keep: int, upto: int) -> None:
    """Keep the ``keep`` newest ``iter_*.pth`` up to iteration ``upto``. Files past it come from
    another run in the same work dir: they are left alone (and overwritten when training gets there)."""
    files = iteration_checkpoints(work_dir, upto)
    for old in files[: max(len(files) - keep, 0)]:
        old.unlink(missing_ok=True)


def remove_stale_temporaries(work_dir: Union[str, Path]) -> List[Path]:
    """Temporary files a killed process left behind (never a checkpoint: renames are atomic)."""
    stale = [p for p in {*Path(work_dir).glob(".*.tmp"), *Path(work_dir).glob(".*.tmp.*")} if p.is_file()]
    for p in stale:
        p.unlink(missing_ok=True)
    return stale


def find_resume_checkpoint(work_dir: Union[str, Path]) -> Optional[Tuple[Path, Dict[str, Any]]]:
    """``--resume auto``: last.pth, else the newest iter_*.pth; None when there is none. A file
    there that cannot be read stops the run: resuming past it, or starting over it, would lose work."""
    work = Path(work_dir)
    for path in [work / "last.pth"] + iteration_checkpoints(work)[::-1]:
        if path.is_file():
            try:
                return path, load_checkpoint(path)
            except CheckpointError as exc:
                raise CheckpointError(
                    f"--resume auto cannot use {path}: {exc} Nothing was changed. Move that file out of {work} "
                    f"to resume from an older checkpoint, or start a new run with --resume none (the old "
                    f"run's files are then moved to {work}/previous/)."
                ) from exc
    return None


def load_checkpoint(path: Union[str, Path], map_location: Union[str, torch.device] = "cpu") -> Dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        detail = next((line.strip() for line in str(exc).splitlines() if "Unsupported global" in line), None)
        if detail is None:  # random bytes or a damaged pickle, not a refused class
            raise CheckpointError(
                f"{path} cannot be read as a PyTorch checkpoint ({_unpickling_detail(exc)}): it is "
                f"corrupt or not a checkpoint. Use another copy (e.g. last.pth)."
            ) from exc
        raise CheckpointError(
            f"{path} holds Python objects that weights_only=True refuses ({detail}); "
            f"segkit checkpoints hold only tensors and plain containers. Is it from another tool?"
        ) from exc
    except Exception as exc:
        raise CheckpointError(
            f"{path} cannot be read as a PyTorch checkpoint ({str(exc).splitlines()[0]}): "
            f"it is truncated, corrupt or not a checkpoint. Use another copy (e.g. last.pth)."
        ) from exc
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        keys = list(ckpt)[:6] if isinstance(ckpt, dict) else type(ckpt).__name__
        raise CheckpointError(
            f"{path} is not a segkit checkpoint (found {keys}). For plain backbone weights "
            f"(torchvision/ImageNet) set model.backbone.pretrained={path} instead."
        )
    return ckpt


def _unpickling_detail(exc: Exception) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return next((line for line in lines if line.startswith("Unsupported")), lines[0][:120] if lines else "unreadable")


def check_resumable(ckpt: Dict[str, Any], source: str) -> None:
    """A checkpoint written without training state (weights for inference) cannot be resumed."""
    if "optimizer" not in ckpt:
        raise CheckpointError(
            f"{source} holds weights only, no optimizer state to resume from; "
            f"use --init-from {source} to start a new training from its weights"
        )


def config_from_checkpoint(ckpt: Dict[str, Any]) -> Config:
    return from_dict(ckpt["config"])


def load_model_state(model: torch.nn.Module, ckpt: Dict[str, Any], source: str = "checkpoint") -> None:
    """Load weights with a message that names what does not fit, instead of PyTorch's key dump."""
    diff = compare_state_dicts(model.state_dict(), ckpt["model"])
    clash = [f"{k} {diff.shapes(k)}" for k in diff.shape_clash]
    missing, unexpected = diff.missing, diff.unexpected
    if clash or missing or unexpected:
        cfg = ckpt.get("config", {}).get("model", {})
        built = f"{cfg.get('backbone', {}).get('name')} + {cfg.get('decoder', {}).get('name')}" if cfg else "?"
        raise CheckpointError(
            f"{source} does not fit this model (the checkpoint is {built}): "
            + "; ".join(
                p
                for p in (
                    f"shape mismatches: {', '.join(clash[:4])}" if clash else "",
                    f"missing: {', '.join(missing[:4])}" if missing else "",
                    f"unexpected: {', '.join(unexpected[:4])}" if unexpected else "",
                )
                if p
            )
            + ". Build the model from the checkpoint's own config (leave out --config), or use --init-from "
            "to start a new training from its compatible weights."
        )
    model.load_state_dict(ckpt["model"])


def load_compatible(model: torch.nn.Module, state: Dict[str, torch.Tensor]) -> Tuple[List[str], List[str]]:
    """Load every weight whose name and shape fit (``--init-from``), leaving the rest as built,
    e.g. a classifier for another class count. Returns (loaded keys, skipped descriptions)."""
    diff = compare_state_dicts(model.state_dict(), state)
    fits = diff.fitting()
    skipped = [f"{k}: checkpoint {diff.shapes(k, 'model ')} (re-initialised)" for k in diff.shape_clash]
    skipped += [f"{k}: not in the checkpoint (as built)" for k in diff.missing]
    skipped += [f"{k}: not in this model (unused)" for k in diff.unexpected]
    model.load_state_dict(fits, strict=False)
    return sorted(fits), skipped


def rng_state() -> Dict[str, Any]:
    """This process's random generators (torch, CUDA, NumPy, Python), as tensors and plain containers."""
    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state: Dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "kind": kind,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "python": [version, list(internal), gauss],
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Dict[str, Any], say=print) -> None:
    """Restore ``rng_state``'s generators. CUDA states of devices this machine does not show (fewer
    visible GPUs than when saved) are left out, and ``say`` names them."""
    torch.set_rng_state(state["torch"].cpu())
    n = state["numpy"]
    np.random.set_state(
        (n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"])
    )
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        saved, visible = state["cuda"], torch.cuda.device_count()
        for index, s in enumerate(saved[:visible]):
            torch.cuda.set_rng_state(s.cpu(), index)
        if len(saved) > visible:
            say(
                f"the checkpoint holds CUDA random states of {len(saved)} GPUs, {visible} visible here: "
                f"restored the first {visible}; the others' dropout randomness will differ"
            )


def model_from_checkpoint(
    path: Union[str, Path], map_location: Union[str, torch.device] = "cpu"
) -> Tuple[torch.nn.Module, Config, Dict[str, Any]]:
    """(model in eval mode, its config, meta: class_names, palette, mean, std)."""
    ckpt = load_checkpoint(path, map_location)
    cfg = config_from_checkpoint(ckpt)
    cfg.model.backbone.pretrained = None  # the checkpoint has the weights
    model = build_model(cfg)
    load_model_state(model, ckpt, str(path))
    return model.eval(), cfg, ckpt.get("meta", {})
