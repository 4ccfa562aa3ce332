"""Setting up a training run, step by step, for ``engine.Trainer``: the work dir, the starting
point (fresh, resumed or initialised from another checkpoint), the loss, the model as trained,
the random state of a resumed run, and the lines that describe the run.
"""

from __future__ import annotations

import contextlib
import copy
import os
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Tuple

import torch

from segkit.checkpoint import (
    check_resumable,
    find_resume_checkpoint,
    load_checkpoint,
    load_compatible,
    load_model_state,
    remove_stale_temporaries,
    set_rng_state,
)
from segkit.config import Config, ConfigError, to_dict
from segkit.config.checks import config_problems
from segkit.models import build_model
from segkit.runtime import seed_everything
from segkit.training.acceleration import use_compile
from segkit.training.distributed import DistEnv, from_rank0, prepare_model, restart_count
from segkit.training.losses import build_loss, needs_auto_weights
from segkit.training.optim import check_train_config
from segkit.training.workdir import move_aside

Say = Callable[[str], None]


@contextlib.contextmanager
def backend_flags(t, device: torch.device):
    """Speed flags for the run (cudnn autotuning, TF32) or deterministic kernels; restored after."""
    saved = (
        torch.backends.cudnn.benchmark,
        torch.are_deterministic_algorithms_enabled(),
        torch.get_float32_matmul_precision(),
    )
    if t.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
    elif device.type == "cuda":
        torch.backends.cudnn.benchmark = bool(t.cudnn_benchmark)
        torch.set_float32_matmul_precision("high")  # TF32 matmuls and convolutions
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = saved[0]
        torch.use_deterministic_algorithms(saved[1])
        torch.set_float32_matmul_precision(saved[2])


def check_run_config(cfg) -> None:
    """Raise one ConfigError naming every bad key, before anything is trained or written."""
    check_train_config(cfg.train)
    problems = config_problems(cfg)
    if problems:
        raise ConfigError("; ".join(problems))


def work_dir_of(cfg: Config, work_dir: Optional[str]) -> Path:
    return Path(work_dir or cfg.work_dir or f"work_dirs/{cfg.name or 'default'}")


def prepare_work_dir(work: Path, env: DistEnv, say: Say) -> None:
    if env.is_main:
        work.mkdir(parents=True, exist_ok=True)
        for p in remove_stale_temporaries(work):
            say(f"removed {p.name}, a partial write left by a killed run (the checkpoints are intact)")


def find_start(
    cfg: Config, work: Path, resume: Optional[str], init_from: Optional[str], env: DistEnv, say: Say
) -> Tuple[torch.nn.Module, Optional[Path], Optional[Dict[str, Any]]]:
    """Build the model and load the weights the run starts from; returns (model, source, checkpoint)
    when resuming, else (model, None, None). A restart by torchrun resumes from the work dir's
    last checkpoint whatever ``resume`` said (that still decides when there is none yet)."""
    ckpt, source = None, None
    restarts = restart_count()
    if resume == "auto" or restarts:
        # rank 0 reads it and every rank gets it: all resume at one iteration, with or without shared storage
        found = from_rank0(lambda: find_resume_checkpoint(work), env)
        if found:
            source, ckpt = found
            if restarts:
                say(f"restart {restarts} by torchrun: resuming from {source} at iteration {ckpt['iteration']}")
        elif restarts and resume not in (None, "auto"):
            say(f"restart {restarts} by torchrun: no checkpoint in {work} yet; starting again from {resume}")
        else:
            why = f"restart {restarts} by torchrun" if restarts else "--resume auto"
            say(f"{why}: no checkpoint in {work} yet; starting from iteration 0")
    if ckpt is None and resume not in (None, "auto"):
        source, ckpt = Path(resume), load_checkpoint(resume)
    init = load_checkpoint(init_from) if ckpt is None and init_from else None
    model = build_model(cfg if ckpt is None and init is None else without_pretrained(cfg))
    if ckpt is not None:
        check_resumable(ckpt, str(source))
        load_model_state(model, ckpt, str(source))
        warn_config_changes(ckpt["config"], to_dict(cfg), say)
    elif init is not None:
        loaded, skipped = load_compatible(model, init["model"])
        say(
            f"--init-from {init_from}: {len(loaded)} tensors loaded, {len(skipped)} skipped"
            + "".join(f"\n  skipped {s}" for s in skipped)
        )
    if ckpt is None and env.is_main and (moved := move_aside(work)):
        say(
            f"note: {work} held files of an earlier run; moved them to {moved} (use --resume auto to continue "
            f"that run instead)"
        )
    return model, source, ckpt


def without_pretrained(cfg: Config) -> Config:
    """A copy of ``cfg`` whose backbone loads no pretrained weights: the checkpoint's replace them, so
    fetching them (a download for ``torchvision``) would only cost time, or fail offline."""
    cfg = copy.deepcopy(cfg)
    cfg.model.backbone.pretrained = None
    return cfg


def restore_training_state(
    optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler, ckpt: Dict[str, Any]
) -> None:
    """The optimizer and grad scaler of a resumed run. A run saved without the scaler (amp none or
    bf16 stores ``{}``) resumed under fp16 starts a fresh one: GradScaler refuses an empty state.
    The optimizer's implementation (fused, foreach) stays this run's choice: loading puts back the saved
    run's flags, and a checkpoint from before fused CPU optimizers would turn fusing off."""
    chosen = [{k: g.get(k) for k in ("fused", "foreach")} for g in optimizer.param_groups]
    saved = dict(ckpt["optimizer"])  # this run's flags go in before loading: they decide where the state lands
    saved["param_groups"] = [{**g, **flags} for g, flags in zip(saved["param_groups"], chosen)]
    optimizer.load_state_dict(saved)
    if ckpt.get("scaler") and scaler.is_enabled():
        scaler.load_state_dict(ckpt["scaler"])


def warn_config_changes(old: Dict[str, Any], new: Dict[str, Any], say: Say, prefix: str = "") -> None:
    """Resuming with a different config is allowed (e.g. more iterations) but said out loud."""
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            warn_config_changes(a, b, say, f"{prefix}{key}.")
        elif a != b and f"{prefix}{key}" not in ("work_dir", "name"):
            say(f"note: {prefix}{key} differs from the checkpoint's config: {a!r} -> {b!r}")


def build_criterion(
    cfg: Config, train_set, device: torch.device, say: Say, work: Path, env: DistEnv
) -> torch.nn.Module:
    auto_weights = None
    if needs_auto_weights(cfg):
        from segkit.data.stats import CACHE_FILE, cached_class_weights

        # the numbers `check` prints; rank 0 reads the masks once (or the work dir's cache) and shares them
        auto_weights, cached = from_rank0(lambda: cached_class_weights(train_set, work, cfg.data.num_workers), env)
        if cached:
            say(f"class weights read from {work / CACHE_FILE} (same file list and label mapping)")
        say(
            "class weights (median frequency): "
            + ", ".join(f"{n} {w:.3f}" for n, w in zip(train_set.class_names, auto_weights))
        )
    return build_loss(cfg, auto_weights).to(device)


def mute_unused_aux_head(model: torch.nn.Module, cfg: Config, say: Say) -> None:
    """loss.aux_weight=0: the aux head neither runs nor trains. Under DDP a parameter that gets no
    gradient leaves the reduction waiting ("Expected to have finished reduction")."""
    if cfg.loss.aux_weight == 0 and getattr(model, "aux_head", None) is not None:
        model.aux_head.requires_grad_(False)
        model.use_aux = False
        say("loss.aux_weight=0: the auxiliary head stays in the checkpoint but neither runs nor trains")


def wrap_for_training(model: torch.nn.Module, cfg: Config, env: DistEnv, say: Say):
    """(the module the steps call, the DDP wrapper or None): DDP and torch.compile where asked."""
    train_model = prepare_model(model, env, say)
    ddp = train_model if env.distributed else None
    if use_compile(cfg.train.compile, cfg.train.iterations, env.device)[0]:
        train_model = torch.compile(train_model)
    return train_model, ddp


def restore_rng(ckpt: Dict[str, Any], env: DistEnv, seed: int, start: int, say: Say) -> None:
    """Each rank continues its own random stream; with another process count, reseed and say so."""
    rngs = ckpt.get("rng") or []
    if len(rngs) == env.world_size:
        set_rng_state(rngs[env.rank], say)
    else:
        seed_everything(seed + env.rank + start)
        say(
            f"the checkpoint holds random states of {len(rngs)} processes, this run has {env.world_size}: "
            f"dropout randomness will differ from an uninterrupted run (the data order does not)"
        )


def describe(cfg: Config, env: DistEnv, dtype: Optional[torch.dtype], train_set, val_set, work: Path) -> str:
    t = cfg.train
    amp = {None: "off", torch.bfloat16: "bf16", torch.float16: "fp16 + grad scaler"}[dtype]
    budget = f" (at most: or what fits in train.time_budget={t.time_budget})" if t.time_budget else ""
    return (
        f"training {cfg.name or 'model'} on {env.world_size} x {env.device} (amp {amp}, channels_last "
        f"{t.channels_last}, compile {use_compile(t.compile, t.iterations, env.device)[1]}): "
        f"{len(train_set)} train / {len(val_set)} val images, "
        f"{t.iterations} iterations{budget} of {t.batch_size * t.accumulate * env.world_size} images; "
        f"work dir {work}"
    )
