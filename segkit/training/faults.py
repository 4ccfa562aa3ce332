"""Faults a training run survives: SIGINT/SIGTERM (save, then stop), SIGUSR1 (Slurm's pre-timeout
warning: save, then stop for a requeue; during a validation, at once: the validation is dropped and
runs again on resume), a non-finite loss (stop, naming the last good checkpoint), any other error
(save the last whole iteration, then report it). kill -9 needs nothing here: checkpoints are written atomically, and ``--resume auto``
continues from the newest.
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import Any, Dict, Optional

from segkit.data.loaders import STOP_SIGNALS
from segkit.errors import SegkitError


class TrainingInterrupted(Exception):
    """SIGINT/SIGTERM/SIGUSR1: a checkpoint was saved and the run stopped; ``--resume auto`` continues it."""

    def __init__(self, iteration: int, checkpoint: Optional[Path], signum: int):
        self.iteration, self.checkpoint, self.signum = iteration, checkpoint, signum
        super().__init__(
            f"{signal.Signals(signum).name} at iteration {iteration}: checkpoint saved to "
            f"{checkpoint}; continue with --resume auto"
        )


class ValidationAbandoned(Exception):
    """A stop signal came during a validation: it is dropped unrecorded, and runs again on resume."""


class RankFailed(SegkitError, RuntimeError):
    """Under DDP another rank's data loader failed: every rank stopped at the same iteration (rank 0
    saved it); the message is that rank's error."""

    exit_code = 1


class NonFiniteLossError(SegkitError, FloatingPointError):
    """The loss became NaN or infinite; no checkpoint was written after that."""

    exit_code = 1  # the run started and failed; its input was not refused

    def __init__(self, iteration: int, checkpoint: Optional[Path], checkpoint_iteration: int = 0):
        self.iteration, self.checkpoint = iteration, checkpoint
        where = (
            f"the last good checkpoint is {checkpoint} (iteration {checkpoint_iteration})"
            if checkpoint
            else "no checkpoint was written before it"
        )
        super().__init__(
            f"the loss is not finite (NaN or inf) at iteration {iteration}; stopped, {where}. Lower "
            f"train.lr, set train.clip_grad, lengthen train.warmup_iters, or check the data."
        )


class StopRequest:
    """SIGINT/SIGTERM/SIGUSR1 ask the loop to save a checkpoint and stop after the current iteration;
    a second Ctrl-C stops at once. Handlers are restored on exit (train() is also a library call)."""

    def __init__(self):
        self.signum: Optional[int] = None
        self._previous: Dict[int, Any] = {}

    def __enter__(self) -> "StopRequest":
        if threading.current_thread() is threading.main_thread():
            for sig in STOP_SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        if self.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signum = signum
        then = " and exiting for a requeue" if signum == getattr(signal, "SIGUSR1", None) else ""
        print(
            f"\n{signal.Signals(signum).name}: saving a checkpoint after this iteration{then} "
            f"(Ctrl-C again to quit without it)",
            flush=True,
        )

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
