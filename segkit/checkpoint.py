"""Self-contained checkpoints, written atomically and read with ``weights_only=True``.

A checkpoint holds the model weights and everything needed to use them: the resolved config,
class names, palette and normalisation (``meta``), plus the training state for resuming.
"""
from __future__ import annotations

import os
import pickle
import tempfile
from pathlib import Path
from typing import Any, Dict, Tuple, Union

import torch

from .config import Config, from_dict

FORMAT = "segkit-checkpoint-v1"


class CheckpointError(ValueError):
    """A file that cannot be used as a segkit checkpoint; the message says why and what to do."""


def save_checkpoint(path: Union[str, Path], state: Dict[str, Any]) -> Path:
    """Write to a temporary file in the same folder, flush it to disk, then rename over ``path``:
    a crash at any moment leaves the previous file or the new one, never a partial one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save({"format": FORMAT, **state}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_checkpoint(path: Union[str, Path], map_location: Union[str, torch.device] = "cpu") -> Dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        detail = next((line.strip() for line in str(exc).splitlines() if "Unsupported global" in line), str(exc)[:200])
        raise CheckpointError(f"{path} holds Python objects that weights_only=True refuses ({detail}); "
                              f"segkit checkpoints hold only tensors and plain containers. Is it from another tool?") from exc
    except Exception as exc:
        raise CheckpointError(f"{path} cannot be read as a PyTorch checkpoint ({str(exc).splitlines()[0]}): "
                              f"it is truncated, corrupt or not a checkpoint. Use another copy (e.g. last.pth).") from exc
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        keys = list(ckpt)[:6] if isinstance(ckpt, dict) else type(ckpt).__name__
        raise CheckpointError(f"{path} is not a segkit checkpoint (found {keys}). For plain backbone weights "
                              f"(torchvision/ImageNet) set model.backbone.pretrained={path} instead.")
    return ckpt


def config_from_checkpoint(ckpt: Dict[str, Any]) -> Config:
    return from_dict(ckpt["config"])


def load_model_state(model: torch.nn.Module, ckpt: Dict[str, Any], source: str = "checkpoint") -> None:
    """Load weights with a message that names what does not fit, instead of PyTorch's key dump."""
    state = ckpt["model"]
    own = model.state_dict()
    clash = [f"{k} {tuple(v.shape)} vs {tuple(own[k].shape)}" for k, v in state.items()
             if k in own and v.shape != own[k].shape]
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    if clash or missing or unexpected:
        cfg = ckpt.get("config", {}).get("model", {})
        built = f"{cfg.get('backbone', {}).get('name')} + {cfg.get('decoder', {}).get('name')}" if cfg else "?"
        raise CheckpointError(
            f"{source} does not fit this model (the checkpoint is {built}): "
            + "; ".join(p for p in (f"shape mismatches: {', '.join(clash[:4])}" if clash else "",
                                    f"missing: {', '.join(missing[:4])}" if missing else "",
                                    f"unexpected: {', '.join(unexpected[:4])}" if unexpected else "") if p)
            + ". Build the model from the checkpoint's own config (leave out --config), or use --init-from "
              "to start a new training from its compatible weights.")
    model.load_state_dict(state)


def model_from_checkpoint(path: Union[str, Path], map_location: Union[str, torch.device] = "cpu"
                          ) -> Tuple[torch.nn.Module, Config, Dict[str, Any]]:
    """(model in eval mode, its config, meta: class_names, palette, mean, std)."""
    from .models import build_model

    ckpt = load_checkpoint(path, map_location)
    cfg = config_from_checkpoint(ckpt)
    cfg.model.backbone.pretrained = None  # the checkpoint has the weights
    model = build_model(cfg)
    load_model_state(model, ckpt, str(path))
    return model.eval(), cfg, ckpt.get("meta", {})
