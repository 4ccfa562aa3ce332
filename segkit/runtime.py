"""Where and how a model runs, shared by training, evaluation, inference and the tools: the device,
the autocast dtype and context, the memory format, and seeding. Imports nothing that trains."""

from __future__ import annotations

import random
from contextlib import nullcontext
from typing import Optional

import numpy as np
import torch

from .config import ConfigError

AMP_CHOICES = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}


class DeviceUnavailable(ConfigError, RuntimeError):
    """A device the config asks for is not here (a ConfigError for the CLI's one-line errors, and a
    RuntimeError as callers of ``resolve_device`` expect)."""


def resolve_device(name: str, local_rank: int = 0, setting: str = "train.device") -> torch.device:
    """auto: ``cuda:local_rank`` where CUDA is present, else the CPU; ``cuda`` gets the local rank's index.
    ``setting``: where the name came from, for the errors."""
    if name == "auto":
        return torch.device(f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:  # torch's message lists twenty device types
        raise ConfigError(f"{setting}={name} is not a device; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceUnavailable(f"{setting}={name} but CUDA is not available here; use {setting}=cpu or auto")
        if device.index is None:
            device = torch.device(f"cuda:{local_rank}")
    return device


def pick_device(name: str = "auto") -> torch.device:
    """``resolve_device``, worded for a --device option."""
    return resolve_device(name, setting="--device")


def cpu_has_native_bf16() -> bool:
    """True where oneDNN runs bf16 in hardware (AVX512-BF16 or AMX); elsewhere bf16 is emulated and slower."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def cuda_has_native_bf16() -> bool:
    """True on GPUs that run bf16 in hardware (Ampere and later); emulated bf16 on older ones is slow."""
    return torch.cuda.is_bf16_supported(including_emulation=False)


def amp_dtype(mode: str, device: torch.device) -> Optional[torch.dtype]:
    """auto: on a GPU bf16 where it runs natively, else fp16 (with a grad scaler); on a CPU bf16 where
    the hardware runs it natively (faster steps: docs/BENCHMARKS.md, the step-options tables), else fp32."""
    if mode == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if cuda_has_native_bf16() else torch.float16
        return torch.bfloat16 if device.type == "cpu" and cpu_has_native_bf16() else None
    if mode not in AMP_CHOICES:
        raise ConfigError(f"unknown amp mode '{mode}' (train.amp / eval.amp); choose auto, bf16, fp16 or none")
    return AMP_CHOICES[mode]


def autocast(device: torch.device, dtype: Optional[torch.dtype]):
    """Autocast to ``dtype`` on ``device``; no autocast (fp32) when ``dtype`` is None."""
    return torch.autocast(device.type, dtype=dtype) if dtype is not None else nullcontext()


def inference_amp(cfg) -> str:
    """``eval.amp``, or ``train.amp`` when unset (old checkpoints, and configs that state only training's)."""
    return cfg.eval.amp if cfg.eval.amp is not None else cfg.train.amp


def inference_channels_last(cfg) -> bool:
    """``eval.channels_last``, or ``train.channels_last`` when unset."""
    return bool(cfg.train.channels_last if cfg.eval.channels_last is None else cfg.eval.channels_last)


def inference_dtype(cfg, device: torch.device) -> Optional[torch.dtype]:
    """The autocast dtype evaluation and inference run ``cfg``'s model with on ``device``."""
    return amp_dtype(inference_amp(cfg), device)


def memory_format(channels_last: bool) -> torch.memory_format:
    return torch.channels_last if channels_last else torch.contiguous_format


def seed_everything(seed: int) -> None:
    """Python, NumPy and torch (all devices) generators from one seed."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
