"""The training loop. ``tools/train.py`` -> ``train()`` -> loss: two hops.

Validation goes through ``segkit.evaluation.evaluator.evaluate``, the path ``tools/eval.py`` uses too,
so both print the same mIoU for the same checkpoint. The loop reads no value back from the
device except at logging intervals, validations and checkpoints; the data it sees, the LR and
the random state are functions of the iteration, so a resumed run continues exactly.
"""

from __future__ import annotations

import contextlib
import math
import signal
import time
import traceback
from functools import partial
from typing import Any, Dict, Optional

import torch

from segkit.checkpoint import (
    CheckpointError,
    checkpoint_meta,
    copy_checkpoint,
    prune_checkpoints,
    rng_state,
    save_checkpoint,
    training_state,
)
from segkit.config import Config, dump, to_dict
from segkit.data import Normalizer, build_dataset, build_eval_loader, build_train_loader, train_transform
from segkit.data.normalize import training_range
from segkit.errors import SegkitError, one_line
from segkit.evaluation.evaluator import evaluate
from segkit.runtime import amp_dtype, autocast, inference_dtype, memory_format, seed_everything
from segkit.training.budget import REFIT_AT, TimeBudget, parse_duration
from segkit.training.distributed import (
    DistEnv,
    any_rank,
    average_buffers,
    from_rank0,
    gather,
    max_over_ranks,
    min_over_ranks,
    setup,
    teardown,
)
from segkit.training.faults import (
    NonFiniteLossError,
    RankFailed,
    StopRequest,
    TrainingInterrupted,
    ValidationAbandoned,
)
from segkit.training.loggers import validation_overlays
from segkit.training.optim import build_optimizer, lr_factor, set_lr
from segkit.training.progress import TrainLogger, plot_curves
from segkit.training.setup import (
    backend_flags,
    build_criterion,
    check_run_config,
    describe,
    find_start,
    mute_unused_aux_head,
    prepare_work_dir,
    restore_rng,
    restore_training_state,
    work_dir_of,
    wrap_for_training,
)
from segkit.training.workdir import WorkDirLock

__all__ = ["train", "TrainingInterrupted", "NonFiniteLossError"]
NO_BAD_ITERATION = 2**62


def train(
    cfg: Config,
    work_dir: Optional[str] = None,
    resume: Optional[str] = None,
    init_from: Optional[str] = None,
    stop_at: Optional[int] = None,
) -> Dict[str, Any]:
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
    env = setup(cfg.train.device, cfg.train.dist_backend, cfg.train.dist_timeout)
    try:
        lock = WorkDirLock(work_dir_of(cfg, work_dir)) if env.is_main else contextlib.nullcontext()
        with lock, StopRequest() as stop, backend_flags(cfg.train, env.device):
            trainer = Trainer(cfg, env, work_dir, None if resume == "none" else resume, init_from, stop)
            try:
                return trainer.run(stop_at)
            except (TrainingInterrupted, NonFiniteLossError) as exc:
                trainer.log.to_file(f"stopped: {exc}")  # the CLI prints it; train.log keeps it too
                raise
            except Exception as exc:  # the CLI prints it (one line, or a bug's traceback); train.log keeps it
                trainer.log.to_file(error_text(exc))
                raise
            finally:
                trainer.log.close()
    finally:
        teardown(env)


def error_text(exc: Exception) -> str:
    """What train.log says about the error that ended a run: the CLI's line, and a bug's traceback."""
    if isinstance(exc, SegkitError):
        return f"error: {one_line(exc)}"
    return "error: " + "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)).rstrip()


def stop_workers(batches) -> None:
    """End a loader iterator's worker processes now. An error's traceback keeps the iterator alive until
    the interpreter exits, where multiprocessing kills its workers and PyTorch reports that as a second
    error (a traceback after the error's one line)."""
    shutdown = getattr(batches, "_shutdown_workers", None)  # PyTorch's multi-process iterator
    if shutdown is not None:
        shutdown()


def best_text(best: float, iteration: int) -> str:
    return f"best mIoU {100 * best:.2f} at iteration {iteration}" if best >= 0 else "no validation yet"


class Trainer:
    """One run: ``__init__`` sets it up; ``run`` loops step -> log -> validate -> save."""

    def __init__(self, cfg: Config, env: DistEnv, work_dir, resume, init_from, stop: StopRequest):
        t, device = cfg.train, env.device
        self.cfg, self.t, self.env, self.device, self.stop = cfg, t, env, device, stop
        self.work = work_dir_of(cfg, work_dir)
        self.log = TrainLogger(self.work, t.progress, env.is_main, t.tensorboard, device, t.loggers)
        self.say = self.log.info
        prepare_work_dir(self.work, env, self.say)
        seed_everything(t.seed + env.rank)
        self.dtype = amp_dtype(t.amp, device)
        # rank 0 lists the files and shares the listing
        self.train_set = from_rank0(
            lambda: build_dataset(cfg.data, cfg.data.train_split, train_transform(cfg.data)), env
        )
        self.val_set = from_rank0(lambda: build_dataset(cfg.data, cfg.data.val_split), env)
        self._resolve_bands(cfg)
        self.model, self.source, ckpt = find_start(cfg, self.work, resume, init_from, env, self.say)
        self.model = self.model.to(device, memory_format=memory_format(t.channels_last))
        mute_unused_aux_head(self.model, cfg, self.say)
        self.criterion = build_criterion(cfg, self.train_set, device, self.say, self.work, env)
        self.optimizer = build_optimizer(cfg, self.model)
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.dtype == torch.float16)
        self.start, self.best, self.best_iter = 0, -1.0, 0
        if ckpt is not None:
            restore_training_state(self.optimizer, self.scaler, ckpt)
            self.start, self.best = ckpt["iteration"], ckpt["best_score"]
            self.best_iter = ckpt.get("best_iteration", 0)
        # a stop signal abandoned the validation of the iteration resumed from: it runs first
        self.validation_due = bool(ckpt is not None and ckpt.get("validation_due", False))
        self.stopped_together = False  # DDP: every rank raised at the same iteration (so they can save together)
        self.schedule = t.iterations  # what the LR schedule spans, and where the run ends
        self.budget = None
        if t.time_budget and ckpt is not None:
            self.schedule = ckpt["scheduler"]["iterations"]  # fixed by the budget when the run began
        elif t.time_budget:
            self.budget = TimeBudget(parse_duration(t.time_budget), self.start, t.iterations)
        self.log.begin(self.schedule, self.start, cfg, ckpt)
        self.train_model, self.ddp = wrap_for_training(self.model, cfg, env, self.log.info)
        self._build_loaders()
        self.meta = checkpoint_meta(cfg, self.train_set.class_names, self.train_set.palette)
        if env.is_main:
            (self.work / "config.yaml").write_text(dump(cfg))
        if ckpt is not None:
            self._resumed(ckpt)
        self.say(describe(cfg, env, self.dtype, self.train_set, self.val_set, self.work))
        self.last_good, self.last_good_iter = (self.source, self.start) if ckpt is not None else (None, 0)
        self.first_bad = torch.full((), NO_BAD_ITERATION, dtype=torch.int64, device=device)
        self.sums: Dict[str, torch.Tensor] = {}
        self.steps, self.busy, self.lr = 0, 0.0, 0.0

    def _resolve_bands(self, cfg: Config) -> None:
        """``data.value_range: null`` on deep images: the training split's range, put in the run's config (so
        config.yaml and every checkpoint carry it and inference maps values the same way)."""
        if cfg.data.value_range is None:
            measured = training_range(self.train_set)
            if measured is not None:
                cfg.data.value_range = self.train_set.value_range = self.val_set.value_range = measured[0]
                self.say(
                    f"data.value_range is null and the images are {measured[1]}: using the training split's "
                    f"0.5/99.5 percentiles per band, {measured[0]} (stored with the run and its checkpoints)"
                )
        if cfg.data.photometric and cfg.data.channels != 3:
            self.say(
                f"photometric augmentation (brightness, contrast, saturation, hue) left out: it assumes RGB "
                f"and data.channels={cfg.data.channels}"
            )

    def _build_loaders(self) -> None:
        cfg, t, env, cuda = self.cfg, self.t, self.env, self.device.type == "cuda"
        self.loader = build_train_loader(
            self.train_set,
            t.batch_size,
            cfg.data.num_workers,
            t.seed,
            env.rank,
            env.world_size,
            start_batch=self.start * t.accumulate,
            pin_memory=cuda,
        )
        self.val_loader = build_eval_loader(
            self.val_set, cfg.eval.batch_size, cfg.data.num_workers, distributed=env.distributed, pin_memory=cuda
        )
        self.normalize = Normalizer(
            cfg.data.mean, cfg.data.std, self.device, memory_format=memory_format(t.channels_last)
        )

    def _resumed(self, ckpt: Dict[str, Any]) -> None:
        t, start = self.t, self.start
        restore_rng(ckpt, self.env, t.seed, start, self.say)
        saved_lr, lr_now = ckpt["scheduler"]["lr"], t.lr * lr_factor(max(start - 1, 0), t, self.schedule)
        if start and abs(saved_lr - lr_now) > 1e-9 * max(abs(saved_lr), 1e-12):
            self.say(
                f"note: iteration {start} ran at LR {saved_lr:.3e}; this config's schedule gives {lr_now:.3e} "
                f"there (train.lr, iterations or the schedule changed), so the LR jumps"
            )
        self.say(f"resumed from {self.source} at iteration {start} ({best_text(self.best, self.best_iter)})")

    def run(self, stop_at: Optional[int] = None) -> Dict[str, Any]:
        done = self.start
        end = min(self.schedule, stop_at or self.schedule)
        batches = iter(self.loader)
        self.train_model.train()
        try:
            return self._loop(done, end, stop_at, batches)
        except Exception as exc:
            self.save_before_error(exc)
            raise
        finally:
            stop_workers(batches)

    def _loop(self, done: int, end: int, stop_at: Optional[int], batches) -> Dict[str, Any]:
        t, results = self.t, {}
        self.sound = done  # the iteration whose state the model and optimizer hold (None: between two)
        if self.validation_due:
            results, improved = self.validate(done)
            if improved:
                self.save(done, False, True)
            if self.validation_due:  # abandoned again
                self.save(done, True, False)
                raise TrainingInterrupted(done, self.last_good, self.stop.signum or signal.SIGTERM)
        while done < end:
            self.lr = self.step(done, batches)
            done += 1
            self.sound = done
            if self.budget is not None and self.fit_budget(done):
                end = min(self.schedule, stop_at or self.schedule)
            stopping = any_rank(self.stop.signum is not None, self.env) and done < end
            if done % t.log_interval == 0 or done == end or stopping:
                self.log_training(done)
            improved = False
            if done % t.val_interval == 0 or done == self.schedule:
                results, improved = self.validate(done)
                stopping = stopping or self.validation_due  # a stop signal abandoned it
            checkpoint_due = done % t.checkpoint_interval == 0 or done == end or stopping
            if checkpoint_due or improved:
                self.save(done, checkpoint_due, improved)
            if stopping:
                if self.env.is_main:
                    plot_curves(self.log.metrics_path, self.work / "curves.png")
                raise TrainingInterrupted(done, self.last_good, self.stop.signum or signal.SIGTERM)
        self.finish(end)
        return results

    def save_before_error(self, exc: Exception) -> None:
        """The state is sound until the optimizer steps: keep the work done so far before an error ends
        the run. Under DDP only when every rank stopped at the same iteration (a data loader's error):
        after another error the other ranks may not reach the collective calls of a save."""
        sound = getattr(self, "sound", None)
        if (
            sound is None
            or sound <= self.last_good_iter
            or (self.env.distributed and not self.stopped_together)
            or isinstance(exc, (NonFiniteLossError, CheckpointError, TrainingInterrupted))
        ):
            return
        try:
            self.save(sound, True, False)
        except Exception as failed:  # the error that ended the run is the one to report
            self.say(f"could not save a checkpoint before stopping on the error below: {one_line(failed)}")
            return
        if not self.env.is_main:
            return
        plot_curves(self.log.metrics_path, self.work / "curves.png")
        self.say(
            f"saved a checkpoint of iteration {sound} before stopping on the error below; fix it and "
            f"continue with --resume auto"
        )

    def fit_budget(self, done: int) -> bool:
        """True when the budget has just fixed or moved the schedule's length (then ``self.schedule`` is it)."""
        fitted = self.budget.observe(done, self.step_seconds)
        if self.env.distributed:  # every rank must end at the same iteration: the first rank to decide decides
            fitted = max_over_ranks(fitted or 0, self.env) or None
        if fitted is None:
            return False
        rate = 1 / self.budget.step_seconds if self.budget.step_seconds > 0 else math.nan
        again = self.budget.refits != list(REFIT_AT)  # a re-measurement has already used a refit point
        self.schedule = fitted
        if self.env.distributed:  # re-measuring would need every rank at the same collective: fixed once
            self.budget = None
        self.log.set_total(fitted)
        self.say(
            f"time budget {self.t.time_budget}: {rate:.2f} it/s {'re-' if again else ''}measured after {done} "
            f"iterations, so the schedule spans {fitted} iterations"
            + (" (train.iterations, the upper bound)" if fitted == self.t.iterations else "")
        )
        return True

    def step(self, it: int, batches) -> float:
        """One optimizer step (``accumulate`` batches); returns its base LR. Reads nothing back from the device."""
        t, tic = self.t, time.perf_counter()
        lr = set_lr(self.optimizer, it, t, self.schedule)
        for micro in range(t.accumulate):
            batch = self.next_batch(batches, it)
            images = self.normalize(batch["image"].to(self.device, non_blocking=True))
            target = batch["mask"].to(self.device, non_blocking=True)
            quiet = self.ddp is not None and micro < t.accumulate - 1  # reduce gradients once per step
            with self.ddp.no_sync() if quiet else contextlib.nullcontext():
                with autocast(self.device, self.dtype):
                    loss, parts = self.criterion(self.train_model(images), target)
                self.scaler.scale(loss / t.accumulate).backward()
            for k, v in (("loss", loss.detach()), *parts.items()):
                self.sums[k] = self.sums[k] + v if k in self.sums else v
            finite = torch.isfinite(loss.detach()) | (self.first_bad <= it)
            self.first_bad = torch.where(finite, self.first_bad, it + 1)
        if t.clip_grad:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), t.clip_grad)
        self.sound = None  # from here until the loop counts the iteration, the weights are between two states
        self.scaler.step(self.optimizer)  # skips the step when fp16 gradients overflowed
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        if self.budget is not None and self.budget.fixed is None and self.device.type == "cuda":
            torch.cuda.synchronize(self.device)  # while the budget measures, time the GPU's work, not the launches
        self.steps += 1
        self.step_seconds = time.perf_counter() - tic
        self.busy += self.step_seconds
        self.log.step()
        return lr

    def next_batch(self, batches, it: int) -> Dict[str, torch.Tensor]:
        """The loader's next batch. Under DDP every rank learns whether any rank's loader failed (a
        truncated image, say), so all stop before the step's gradient exchange, at the same iteration."""
        try:
            batch, error = next(batches), None
        except Exception as exc:
            batch, error = None, exc
        if self.env.distributed and any_rank(error is not None, self.env):
            self.stopped_together = True
            errors = gather(None if error is None else one_line(error), self.env)
            if error is None:
                rank, message = next((r, m) for r, m in enumerate(errors) if m is not None)
                raise RankFailed(f"rank {rank} stopped at iteration {it + 1}: {message}")
        if error is not None:
            raise error
        return batch

    def log_training(self, done: int) -> None:
        self.check_finite()
        values = {k: float(v) / (self.steps * self.t.accumulate) for k, v in self.sums.items()}
        self.log.train(done, values, self.lr, self.steps / self.busy if self.busy > 0 else 0.0)
        self.sums, self.steps, self.busy = {}, 0, 0.0

    def validate(self, done: int):
        """(results, improved). A stop signal abandons it (its partial numbers unrecorded): then
        ``self.validation_due`` stays set, for the checkpoint, and results are {}."""
        average_buffers(self.model, self.env)  # every rank validates (and rank 0 saves) the same model
        self.validation_due = True
        try:
            results = evaluate(
                self.model,
                self.until_stopped(self.log.track(self.val_loader, "validation")),
                self.cfg,
                self.device,
                inference_dtype(self.cfg, self.device),
            )
        except ValidationAbandoned:
            stop_workers(getattr(self.val_loader, "_iterator", None))  # its persistent workers: now, not at exit
            self.val_loader._iterator = None
            self.say(f"validation at iteration {done} abandoned on the stop signal; it runs on --resume")
            return {}, False
        finally:
            self.train_model.train()
        self.validation_due = False
        dtype = inference_dtype(self.cfg, self.device)
        overlays = partial(validation_overlays, self.model, self.val_set, self.normalize, self.device, dtype)
        self.log.val(done, results, self.val_set.class_names, self.best, overlays)
        self.train_model.train()  # the overlays leave the model in eval mode
        improved = results["mIoU"] > self.best
        if improved:
            self.best, self.best_iter = results["mIoU"], done
        return results, improved

    def until_stopped(self, batches):
        """``batches``, until a stop signal reaches any rank (all ranks abandon at the same batch). Ranks may
        hold different numbers of validation batches (the shard sampler never pads: 5 images on 2 ranks are
        3 + 2), so every rank asks as many times as the rank with the most, or the collectives would pair
        one rank's check with another's confusion-matrix sum."""
        rounds = max_over_ranks(len(self.val_loader), self.env)
        asked = 0
        for batch in batches:
            asked += 1
            if any_rank(self.stop.signum is not None, self.env):
                raise ValidationAbandoned
            yield batch
        for _ in range(asked, rounds):  # this rank's share ran out first: keep answering the others' checks
            if any_rank(self.stop.signum is not None, self.env):
                raise ValidationAbandoned

    def check_finite(self) -> None:
        bad = int(min_over_ranks(self.first_bad, self.env))  # the one host sync, at log and save points
        if bad != NO_BAD_ITERATION:
            raise NonFiniteLossError(bad, self.last_good, self.last_good_iter)

    def save(self, done: int, checkpoint_due: bool, improved: bool) -> None:
        """last.pth / iter_*.pth when due, best.pth when the validation improved (a copy of the
        checkpoint when both: never a link, so rewriting one file leaves the other as it was)."""
        self.check_finite()
        average_buffers(self.model, self.env)
        rngs = gather(rng_state(), self.env)  # every rank's, so each resumes its own stream
        if checkpoint_due:
            self.last_good, self.last_good_iter = self.work / "last.pth", done
        if not self.env.is_main:
            return
        state = training_state(
            self.model.state_dict(),
            to_dict(self.cfg),
            self.meta,
            iteration=done,
            lr=self.lr,
            schedule_iterations=self.schedule,
            best_score=self.best,
            best_iteration=self.best_iter,
            optimizer=self.optimizer.state_dict(),
            scaler=self.scaler.state_dict(),
            rng=rngs,
            world_size=self.env.world_size,
            validation_due=self.validation_due,
            loggers=self.log.run_ids(),
        )
        work, keep = self.work, self.t.keep_last
        if checkpoint_due:
            path = save_checkpoint(work / f"iter_{done:07d}.pth" if keep else work / "last.pth", state)
            if improved:
                copy_checkpoint(path, work / "best.pth")
            if keep:
                copy_checkpoint(path, work / "last.pth")
                prune_checkpoints(work, keep, upto=done)
        elif improved:
            save_checkpoint(work / "best.pth", state)

    def finish(self, end: int) -> None:
        if not self.env.is_main:
            return
        work = self.work
        curves = plot_curves(self.log.metrics_path, work / "curves.png")
        self.log.finish(self.t.log_checkpoint)
        self.log.info(
            f"done: iteration {end}/{self.schedule}; {best_text(self.best, self.best_iter)}. "
            f"Checkpoints: {work / 'last.pth'}, {work / 'best.pth'}; metrics {self.log.metrics_path}"
            + (f"; curves {curves}" if curves else "")
        )
