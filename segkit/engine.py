"""The training loop. ``tools/train.py`` -> ``train()`` -> loss: two hops.

Validation goes through ``segkit.evaluation.evaluate``, the path ``tools/eval.py`` uses too,
so both print the same mIoU for the same checkpoint. The loop reads no value back from the
device except at logging intervals, validations and checkpoints; the data it sees, the LR and
the random state are functions of the iteration, so a resumed run continues exactly.
"""
from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path
from typing import Any, Dict, Optional

import torch

from .checkpoint import (CheckpointError, check_resumable, checkpoint_meta, copy_checkpoint, find_resume_checkpoint,
                         load_checkpoint, load_compatible, load_model_state, prune_checkpoints,
                         remove_stale_temporaries, rng_state, save_checkpoint, set_rng_state, training_state)
from .config import Config, dump, to_dict
from .config_checks import check_run_config
from .data import Normalizer, build_dataset, build_loader, train_transform
from .distributed import (DistEnv, any_rank, average_buffers, gather, min_over_ranks, prepare_model, setup,
                          teardown)
from .evaluation import evaluate
from .faults import NonFiniteLossError, StopRequest, TrainingInterrupted
from .losses import build_loss, needs_auto_weights
from .models import build_model
from .optim import build_optimizer, lr_factor, set_lr
from .progress import TrainLogger, plot_curves
from .runtime import amp_dtype, autocast, inference_dtype, resolve_device, seed_everything
from .sampling import build_train_loader
from .workdir import WorkDirLock, move_aside

__all__ = ["train", "amp_dtype", "resolve_device", "seed_everything", "build_optimizer", "TrainingInterrupted", "NonFiniteLossError"]
NO_BAD_ITERATION = 2**62


@contextlib.contextmanager
def _backend_flags(t, device: torch.device):
    """Speed flags for the run (cudnn autotuning, TF32) or deterministic kernels; restored after."""
    saved = (torch.backends.cudnn.benchmark, torch.are_deterministic_algorithms_enabled(),
             torch.get_float32_matmul_precision())
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


def train(cfg: Config, work_dir: Optional[str] = None, resume: Optional[str] = None,
          init_from: Optional[str] = None, stop_at: Optional[int] = None) -> Dict[str, Any]:
    """Train ``cfg``; returns the last validation results (empty if none ran).

    ``resume``: a checkpoint path, or "auto" for the work dir's newest (a fresh start if none; an
    unreadable one stops the run), or "none" for a fresh start. A fresh start moves an earlier run's
    files into ``<work dir>/previous/<time>/``. One run at a time holds the work dir (``segkit.lock``).
    ``init_from``: a checkpoint whose compatible weights start a new run (another class count).
    ``stop_at``: end this run at that iteration with a checkpoint, as if stopped (the schedule
    still spans ``train.iterations``). Writes last.pth, best.pth, iter_*.pth, metrics.jsonl,
    config.yaml and curves.png in the work dir (default ``work_dirs/<config name>``).
    """
    check_run_config(cfg)
    work = Path(work_dir or cfg.work_dir or f"work_dirs/{cfg.name or 'default'}")
    env = setup(cfg.train.device, cfg.train.dist_backend)
    try:
        lock = WorkDirLock(work) if env.is_main else contextlib.nullcontext()
        with lock, StopRequest() as stop, _backend_flags(cfg.train, env.device):
            return _train(cfg, env, work, None if resume == "none" else resume, init_from, stop_at, stop)
    finally:
        teardown(env)


def _train(cfg, env: DistEnv, work_dir, resume, init_from, stop_at, stop: StopRequest) -> Dict[str, Any]:
    t, device = cfg.train, env.device
    work = Path(work_dir)
    say = print if env.is_main else (lambda *a, **k: None)
    if env.is_main:
        work.mkdir(parents=True, exist_ok=True)
        for p in remove_stale_temporaries(work):
            say(f"removed {p.name}, a partial write left by a killed run (the checkpoints are intact)")
    seed_everything(t.seed + env.rank)
    dtype = amp_dtype(t.amp, device)

    train_set = build_dataset(cfg.data, cfg.data.train_split, train_transform(cfg.data))
    val_set = build_dataset(cfg.data, cfg.data.val_split)
    model = build_model(cfg)
    ckpt, source = None, None
    if resume == "auto":
        found = find_resume_checkpoint(work)
        if found:
            source, ckpt = found
        else:
            say(f"--resume auto: no checkpoint in {work} yet; starting from iteration 0")
    elif resume:
        source, ckpt = Path(resume), load_checkpoint(resume)
    if ckpt is not None:
        check_resumable(ckpt, str(source))
        load_model_state(model, ckpt, str(source))
        _warn_config_changes(ckpt["config"], to_dict(cfg), say)
    elif init_from:
        loaded, skipped = load_compatible(model, load_checkpoint(init_from)["model"])
        say(f"--init-from {init_from}: {len(loaded)} tensors loaded, {len(skipped)} skipped"
            + "".join(f"\n  skipped {s}" for s in skipped))
    if ckpt is None and env.is_main and (moved := move_aside(work)):
        say(f"note: {work} held files of an earlier run; moved them to {moved} (use --resume auto to continue "
            f"that run instead)")
    model = model.to(device)
    if t.channels_last:
        model = model.to(memory_format=torch.channels_last)

    auto_weights = None
    if needs_auto_weights(cfg):
        from .data.stats import median_frequency_weights, pixel_counts

        auto_weights = median_frequency_weights(pixel_counts(train_set))
        say("class weights (median frequency): " + ", ".join(
            f"{n} {w:.3f}" for n, w in zip(train_set.class_names, auto_weights)))
    criterion = build_loss(cfg, auto_weights).to(device)
    optimizer = build_optimizer(cfg, model)
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
    start, best, best_iter = 0, -1.0, 0
    if ckpt is not None:
        optimizer.load_state_dict(ckpt["optimizer"])
        scaler.load_state_dict(ckpt["scaler"])
        start, best, best_iter = ckpt["iteration"], ckpt["best_score"], ckpt.get("best_iteration", 0)
    end = min(t.iterations, stop_at or t.iterations)

    log = TrainLogger(work, t.iterations, start, t.progress, env.is_main, t.tensorboard, device)
    train_model = prepare_model(model, env, log.info)
    ddp = train_model if env.distributed else None
    if t.compile:
        train_model = torch.compile(train_model)
    cuda = device.type == "cuda"
    loader = build_train_loader(train_set, t.batch_size, cfg.data.num_workers, t.seed, env.rank, env.world_size,
                                start_batch=start * t.accumulate, pin_memory=cuda)
    val_loader = build_loader(val_set, cfg.eval.batch_size, False, cfg.data.num_workers,
                              distributed=env.distributed, pin_memory=cuda)
    normalize = Normalizer(cfg.data.mean, cfg.data.std, device,
                           memory_format=torch.channels_last if t.channels_last else torch.contiguous_format)
    meta = checkpoint_meta(cfg, train_set.class_names, train_set.palette)
    if env.is_main:
        (work / "config.yaml").write_text(dump(cfg))
    if ckpt is not None:
        rngs = ckpt.get("rng") or []
        if len(rngs) == env.world_size:
            set_rng_state(rngs[env.rank])
        else:
            seed_everything(t.seed + env.rank + start)
            say(f"the checkpoint holds random states of {len(rngs)} processes, this run has {env.world_size}: "
                f"dropout randomness will differ from an uninterrupted run (the data order does not)")
        saved_lr, lr_now = ckpt["scheduler"]["lr"], t.lr * lr_factor(max(start - 1, 0), t)
        if start and abs(saved_lr - lr_now) > 1e-9 * max(abs(saved_lr), 1e-12):
            say(f"note: iteration {start} ran at LR {saved_lr:.3e}; this config's schedule gives {lr_now:.3e} there "
                f"(train.lr, iterations or the schedule changed), so the LR jumps")
        say(f"resumed from {source} at iteration {start} (best mIoU {100 * max(best, 0):.2f})")
    amp = {None: "off", torch.bfloat16: "bf16", torch.float16: "fp16 + grad scaler"}[dtype]
    say(f"training {cfg.name or 'model'} on {env.world_size} x {device} (amp {amp}, channels_last "
        f"{t.channels_last}, compile {t.compile}): {len(train_set)} train / {len(val_set)} val images, "
        f"{t.iterations} iterations of {t.batch_size * t.accumulate * env.world_size} images; work dir {work}")

    primary = (lambda it: work / f"iter_{it:07d}.pth") if t.keep_last else (lambda it: work / "last.pth")
    last_good, last_good_iter = (source, start) if ckpt is not None else (None, 0)
    first_bad = torch.full((), NO_BAD_ITERATION, dtype=torch.int64, device=device)
    sums: Dict[str, torch.Tensor] = {}
    steps, busy, results, lr = 0, 0.0, {}, 0.0

    def check_finite() -> None:
        bad = int(min_over_ranks(first_bad, env))  # the one host sync, at log and save points
        if bad != NO_BAD_ITERATION:
            raise NonFiniteLossError(bad, last_good, last_good_iter)

    def save(done: int, checkpoint_due: bool, improved: bool) -> None:
        nonlocal last_good, last_good_iter
        check_finite()
        average_buffers(model, env)
        rngs = gather(rng_state(), env)  # every rank's, so each resumes its own stream
        if checkpoint_due:
            last_good, last_good_iter = work / "last.pth", done
        if not env.is_main:
            return
        state = training_state(model.state_dict(), to_dict(cfg), meta, iteration=done, lr=lr, best_score=best,
                               best_iteration=best_iter, optimizer=optimizer.state_dict(),
                               scaler=scaler.state_dict(), rng=rngs, world_size=env.world_size)
        if checkpoint_due:
            path = save_checkpoint(primary(done), state)
            if improved:
                copy_checkpoint(path, work / "best.pth")
            if t.keep_last:
                copy_checkpoint(path, work / "last.pth")
                prune_checkpoints(work, t.keep_last, upto=done)
        elif improved:
            save_checkpoint(work / "best.pth", state)

    sound = start  # the iteration whose state the model and optimizer hold; None in the middle of a step
    try:
        batches = iter(loader)
        train_model.train()
        for it in range(start, end):
            tic = time.perf_counter()
            lr = set_lr(optimizer, it, t)
            for micro in range(t.accumulate):
                batch = next(batches)
                images = normalize(batch["image"].to(device, non_blocking=True))
                target = batch["mask"].to(device, non_blocking=True)
                quiet = ddp.no_sync() if ddp is not None and micro < t.accumulate - 1 else contextlib.nullcontext()
                with quiet:
                    with autocast(device, dtype):
                        loss, parts = criterion(train_model(images), target)
                    scaler.scale(loss / t.accumulate).backward()
                for k, v in (("loss", loss.detach()), *parts.items()):
                    sums[k] = sums[k] + v if k in sums else v
                first_bad = torch.where(torch.isfinite(loss.detach()) | (first_bad <= it), first_bad, it + 1)
            if t.clip_grad:
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(model.parameters(), t.clip_grad)
            sound = None
            scaler.step(optimizer)  # skips the step when fp16 gradients overflowed
            scaler.update()
            optimizer.zero_grad(set_to_none=True)
            done, steps = it + 1, steps + 1
            sound = done
            busy += time.perf_counter() - tic
            log.step()
            stopping = any_rank(stop.signum is not None, env) and done < end
            if done % t.log_interval == 0 or done == end or stopping:
                check_finite()
                values = {k: float(v) / (steps * t.accumulate) for k, v in sums.items()}
                log.train(done, values, lr, steps / busy if busy > 0 else 0.0)
                sums, steps, busy = {}, 0, 0.0
            improved = False
            if done % t.val_interval == 0 or done == t.iterations:
                average_buffers(model, env)  # every rank validates (and rank 0 saves) the same model
                results = evaluate(model, val_loader, cfg, device, inference_dtype(cfg, device))
                log.val(done, results, val_set.class_names, best)
                improved = results["mIoU"] > best
                if improved:
                    best, best_iter = results["mIoU"], done
                train_model.train()
            checkpoint_due = done % t.checkpoint_interval == 0 or done == end or stopping
            if checkpoint_due or improved:
                save(done, checkpoint_due, improved)
            if stopping:
                if env.is_main:
                    plot_curves(log.metrics_path, work / "curves.png")
                raise TrainingInterrupted(done, last_good, stop.signum or signal.SIGTERM)

        if env.is_main:
            curves = plot_curves(log.metrics_path, work / "curves.png")
            log.info(f"done: iteration {end}/{t.iterations}; best mIoU {100 * max(best, 0):.2f} at iteration "
                     f"{best_iter}. Checkpoints: {work / 'last.pth'}, {work / 'best.pth'}; metrics "
                     f"{log.metrics_path}" + (f"; curves {curves}" if curves else ""))
    except Exception as exc:
        # the state is sound between steps: keep the work done so far before the error ends the run
        if sound is not None and sound > last_good_iter and not env.distributed and \
                not isinstance(exc, (NonFiniteLossError, CheckpointError, TrainingInterrupted)):
            save(sound, True, False)
            plot_curves(log.metrics_path, work / "curves.png")
            say(f"saved a checkpoint of iteration {sound} before stopping on the error below; fix it and "
                f"continue with --resume auto", flush=True)
        raise
    finally:
        log.close()
    return results


def _warn_config_changes(old: Dict[str, Any], new: Dict[str, Any], say, prefix: str = "") -> None:
    """Resuming with a different config is allowed (e.g. more iterations) but said out loud."""
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            _warn_config_changes(a, b, say, f"{prefix}{key}.")
        elif a != b and f"{prefix}{key}" not in ("work_dir", "name"):
            say(f"note: {prefix}{key} differs from the checkpoint's config: {a!r} -> {b!r}")
