"""Training and evaluation loops. ``tools/train.py`` -> ``train()`` -> loss: two hops.

Validation goes through ``segkit.evaluation.evaluate``, the path ``tools/eval.py`` uses too,
so both print the same mIoU for the same checkpoint.
"""
from __future__ import annotations

import json
import math
import random
import time
from pathlib import Path
from typing import Any, Dict, Optional

import numpy as np
import torch

from . import __version__
from .checkpoint import load_checkpoint, load_model_state, save_checkpoint
from .config import Config, dump, to_dict
from .data import build_dataset, build_loader, normalize, train_transform
from .evaluation import autocast, evaluate
from .losses import build_loss
from .metrics import format_table
from .models import build_model


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"train.device={name} but CUDA is not available here; use train.device=cpu or auto")
    return device


def amp_dtype(mode: str, device: torch.device) -> Optional[torch.dtype]:
    """auto: bf16 on CUDA where supported, else fp16 on CUDA; off on CPU."""
    if mode == "none":
        return None
    if mode == "bf16":
        return torch.bfloat16
    if mode == "fp16":
        return torch.float16
    if mode == "auto":
        if device.type != "cuda":
            return None
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    raise ValueError(f"unknown train.amp '{mode}'; choose auto, bf16, fp16 or none")


def seed_everything(seed: int, deterministic: bool = False) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False


def meta_of(cfg: Config, dataset) -> Dict[str, Any]:
    """What a checkpoint carries so that inference needs nothing else."""
    return {"class_names": list(dataset.class_names), "palette": [list(c) for c in dataset.palette],
            "mean": list(cfg.data.mean), "std": list(cfg.data.std), "ignore_index": cfg.data.ignore_index,
            "segkit_version": __version__, "torch_version": str(torch.__version__)}


def build_optimizer(cfg: Config, model: torch.nn.Module) -> torch.optim.Optimizer:
    t = cfg.train
    groups: Dict[tuple, list] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        lr_mult = t.backbone_lr_mult if name.startswith("backbone.") else 1.0
        no_decay = t.no_decay_norm_bias and p.ndim <= 1
        groups.setdefault((lr_mult, no_decay), []).append(p)
    params = [{"params": ps, "lr": t.lr * m, "lr_mult": m, "weight_decay": 0.0 if nd else t.weight_decay}
              for (m, nd), ps in groups.items()]
    if t.optimizer == "sgd":
        return torch.optim.SGD(params, lr=t.lr, momentum=t.momentum, weight_decay=t.weight_decay)
    if t.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=t.lr, weight_decay=t.weight_decay)
    raise ValueError(f"unknown optimizer '{t.optimizer}' (train.optimizer); choose sgd or adamw")


def lr_factor(it: int, cfg: Config) -> float:
    """Poly decay to ``min_lr`` over ``iterations``, after a linear warm-up from ``warmup_ratio``."""
    t = cfg.train
    floor = min(t.min_lr / t.lr, 1.0) if t.lr > 0 else 0.0
    factor = floor + (1 - floor) * (1 - min(it, t.iterations) / t.iterations) ** t.poly_power
    if it < t.warmup_iters:
        factor *= t.warmup_ratio + (1 - t.warmup_ratio) * it / t.warmup_iters
    return factor


def _infinite(loader):
    epoch = 0
    while True:
        if hasattr(loader.sampler, "set_epoch"):
            loader.sampler.set_epoch(epoch)
        yield from loader
        epoch += 1


def train(cfg: Config, work_dir: Optional[str] = None, resume: Optional[str] = None) -> Dict[str, Any]:
    """Train ``cfg``; returns the last validation results. Writes checkpoints and metrics.jsonl."""
    t = cfg.train
    work = Path(work_dir or cfg.work_dir or f"work_dirs/{cfg.name or 'default'}")
    work.mkdir(parents=True, exist_ok=True)
    (work / "config.yaml").write_text(dump(cfg))
    seed_everything(t.seed, t.deterministic)
    device = resolve_device(t.device)
    dtype = amp_dtype(t.amp, device)

    train_set = build_dataset(cfg.data, cfg.data.train_split, train_transform(cfg.data))
    val_set = build_dataset(cfg.data, cfg.data.val_split)
    train_loader = build_loader(train_set, t.batch_size, True, cfg.data.num_workers, seed=t.seed,
                                pin_memory=device.type == "cuda")
    val_loader = build_loader(val_set, cfg.eval.batch_size, False, cfg.data.num_workers)

    model = build_model(cfg).to(device)
    if t.channels_last:
        model = model.to(memory_format=torch.channels_last)
    criterion = build_loss(cfg).to(device)
    optimizer = build_optimizer(cfg, model)
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
    start, best = 0, -1.0
    if resume:
        ckpt = load_checkpoint(resume, device)
        load_model_state(model, ckpt, resume)
        optimizer.load_state_dict(ckpt["optimizer"])
        scaler.load_state_dict(ckpt["scaler"])
        start, best = ckpt["iteration"], ckpt["best_score"]
    meta = meta_of(cfg, train_set)

    def state(it: int) -> Dict[str, Any]:
        return {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "scaler": scaler.state_dict(),
                "iteration": it, "best_score": best, "config": to_dict(cfg), "meta": meta}

    log = (work / "metrics.jsonl").open("a")
    batches = _infinite(train_loader)
    model.train()
    results: Dict[str, Any] = {}
    tic = time.perf_counter()
    for it in range(start, t.iterations):
        for group in optimizer.param_groups:
            group["lr"] = t.lr * group["lr_mult"] * lr_factor(it, cfg)
        batch = next(batches)
        images = normalize(batch["image"].to(device, non_blocking=True), cfg.data.mean, cfg.data.std)
        if t.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        target = batch["mask"].to(device, non_blocking=True)
        with autocast(device, dtype):
            loss, parts = criterion(model(images), target)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        done = it + 1
        if done % t.log_interval == 0 or done == t.iterations:
            value = float(loss.detach())
            if not math.isfinite(value):
                raise FloatingPointError(f"loss is {value} at iteration {done}")
            rate = t.log_interval / (time.perf_counter() - tic)
            tic = time.perf_counter()
            print(f"iter {done}/{t.iterations} loss {value:.4f} lr {optimizer.param_groups[0]['lr']:.5f} "
                  f"{rate:.2f} it/s", flush=True)
            log.write(json.dumps({"iter": done, "loss": value, "lr": optimizer.param_groups[0]["lr"]}) + "\n")
        if done % t.val_interval == 0 or done == t.iterations:
            results = evaluate(model, val_loader, cfg, device, dtype)
            print(format_table(results, val_set.class_names), flush=True)
            log.write(json.dumps({"iter": done, "val": {k: results[k] for k in ("mIoU", "mAcc", "aAcc")}}) + "\n")
            if results["mIoU"] > best:
                best = results["mIoU"]
                save_checkpoint(work / "best.pth", state(done))
        if done % t.checkpoint_interval == 0 or done == t.iterations:
            save_checkpoint(work / "last.pth", state(done))
        log.flush()
    log.close()
    return results
