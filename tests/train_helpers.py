"""A tiny training setup shared by the engine, resume, fault and DDP tests: ResNet-18 DeepLabV3+
on 64x64 crops of the small sample set, batch 2, no workers, no TensorBoard; SGD in fp32, pinned
here so that tuning the demo config does not change what the tests check."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

from segkit.config import load_config

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs/sample/deeplabv3plus_r18.yaml"


def tiny_overrides(sample_root, iterations: int = 4, *extra: str) -> list:
    """Overrides for the tiny setup; ``extra`` (``key=value`` strings) replace or add keys."""
    values = {
        "data.root": str(sample_root),
        "data.num_workers": 0,
        "data.crop_size": "[64,64]",
        "model.decoder.channels": 64,
        "model.decoder.skip_channels": 16,
        "train.iterations": iterations,
        "train.time_budget": "null",
        "train.batch_size": 2,
        "train.warmup_iters": 1,
        "train.optimizer": "sgd",
        "train.lr": 0.01,
        "train.min_lr": 1e-4,
        "train.amp": "none",
        "train.log_interval": 1,
        "train.val_interval": iterations,
        "train.checkpoint_interval": iterations,
        "train.tensorboard": "false",
        "train.progress": "log",
        "eval.batch_size": 3,
    }
    values.update(item.split("=", 1) for item in extra)
    return [f"{k}={v}" for k, v in values.items()]


def tiny_config(sample_root, iterations: int = 4, *extra: str):
    return load_config(CONFIG, tiny_overrides(sample_root, iterations, *extra))


def train_command(*args) -> list:
    return [sys.executable, str(ROOT / "tools/train.py"), str(CONFIG), *map(str, args)]


def read_log(work: Path) -> list:
    """The records of ``work``/metrics.jsonl; every line must parse (nothing partial left)."""
    return [json.loads(line) for line in (Path(work) / "metrics.jsonl").read_text().splitlines()]


def assert_same_tensors(a: dict, b: dict, what: str) -> None:
    assert a.keys() == b.keys(), what
    for k in a:
        assert torch.equal(a[k], b[k]), f"{what}: {k} differs"
