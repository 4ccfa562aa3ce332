"""Faults: SIGTERM/SIGINT save and stop cleanly, kill -9 loses at most the work since the last
checkpoint and never leaves a partial one, a non-finite loss stops naming the last good checkpoint."""

import os
import signal
import subprocess
import time

import pytest
import torch

from segkit.checkpoint import load_checkpoint
from segkit.training import setup as train_setup
from segkit.training.engine import NonFiniteLossError, TrainingInterrupted, train
from tests.train_helpers import ROOT, read_log, tiny_config, tiny_overrides, train_command

# far more than the test lets run: SIGTERM and kill -9 stop it long before, however fast the machine (with 16,
# a late signal could find the run finished); the last phase shortens the run to end soon after the kill
ITERATIONS = 200


def _loadable_checkpoints(work):
    """Load every visible .pth now in ``work``; a file pruned meanwhile is skipped, a partial one fails."""
    seen = []
    for path in sorted(work.glob("*.pth")):
        try:
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
        except FileNotFoundError:
            continue
        seen.append(ckpt["iteration"])
    return seen


def _wait_for(proc, work, predicate, timeout=180):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        _loadable_checkpoints(work)
        if predicate():  # before poll(): a run that got there and then ended still counts
            return
        assert proc.poll() is None, f"training ended early:\n{proc.stdout.read()}"
        time.sleep(0.05)
    proc.kill()
    raise AssertionError("timed out waiting for the training process")


def _last_iteration(work):
    path = work / "last.pth"
    return load_checkpoint(path)["iteration"] if path.exists() else 0


def test_sigterm_then_sigkill_then_resume_finishes(sample_root, tmp_path):
    work = tmp_path / "work"
    args = [
        *tiny_overrides(
            sample_root,
            ITERATIONS,
            "train.checkpoint_interval=2",
            f"train.val_interval={ITERATIONS}",
            "train.momentum=0",
        ),
        "--work-dir",
        work,
    ]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}

    # 1. SIGTERM mid-run: a checkpoint at the iteration it stopped, exit code 128 + 15, no traceback
    proc = subprocess.Popen(
        train_command(*args), cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    _wait_for(proc, work, lambda: (work / "metrics.jsonl").exists() and _last_iteration(work) >= 2)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, out
    assert "Traceback" not in out and "stopped: SIGTERM at iteration" in out
    stopped_at = int(out.split("stopped: SIGTERM at iteration ")[1].split(":")[0])
    assert _last_iteration(work) == stopped_at < ITERATIONS

    # 2. resume, then kill -9 once it has written a newer checkpoint
    proc = subprocess.Popen(
        train_command(*args, "--resume"), cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    _wait_for(proc, work, lambda: _last_iteration(work) >= stopped_at + 2)
    proc.kill()
    proc.wait(timeout=60)
    killed_at = _last_iteration(work)
    assert all(it <= ITERATIONS for it in _loadable_checkpoints(work))

    # 3. --resume auto finishes the run from the last checkpoint (ending 4 steps on keeps the test short)
    end = killed_at + 4
    done = subprocess.run(
        train_command(*args, f"train.iterations={end}", "--resume", "auto"),
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"at iteration {killed_at}" in done.stdout
    assert load_checkpoint(work / "last.pth")["iteration"] == end
    assert not list(work.glob(".*.tmp"))  # nothing partial left behind
    records = read_log(work)
    assert [r["iter"] for r in records if "loss" in r] == list(range(1, end + 1))


def _hook_loss(monkeypatch, hook):
    """Wrap the training loss: ``hook(call_number, total) -> total`` runs on every call."""
    real = train_setup.build_loss

    class Hooked(torch.nn.Module):
        def __init__(self, criterion):
            super().__init__()
            self.criterion, self.calls = criterion, 0

        def forward(self, outputs, target):
            self.calls += 1
            total, parts = self.criterion(outputs, target)
            return hook(self.calls, total), parts

    monkeypatch.setattr(train_setup, "build_loss", lambda cfg, weights=None: Hooked(real(cfg, weights)))


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGUSR1], ids=["ctrl-c", "slurm-usr1"])
def test_signal_in_process_saves_stops_and_restores_handlers(sample_root, tmp_path, monkeypatch, signum):
    """Ctrl-C, or Slurm's --signal=USR1@N pre-timeout warning, during iteration 2: train() saves
    iteration 2 and raises TrainingInterrupted (the CLI exits 128 + signum; a requeue resumes)."""

    def signal_on_second_step(call, total):
        if call == 2:
            os.kill(os.getpid(), signum)
        return total

    _hook_loss(monkeypatch, signal_on_second_step)
    before = signal.getsignal(signum)
    with pytest.raises(TrainingInterrupted, match=f"{signal.Signals(signum).name} at iteration 2"):
        train(tiny_config(sample_root, 6), str(tmp_path))
    assert load_checkpoint(tmp_path / "last.pth")["iteration"] == 2
    assert (tmp_path / "curves.png").stat().st_size > 0  # every exit that writes a checkpoint draws the curves
    assert signal.getsignal(signum) is before


def test_non_finite_loss_stops_with_iteration_and_last_good_checkpoint(sample_root, tmp_path, monkeypatch):
    _hook_loss(monkeypatch, lambda call, total: total * float("nan") if call >= 3 else total)
    cfg = tiny_config(sample_root, 6, "train.checkpoint_interval=2", "train.log_interval=5")
    with pytest.raises(
        NonFiniteLossError,
        match=r"iteration 3; stopped, the last good checkpoint is .*last\.pth "
        r"\(iteration 2\)",
    ):
        train(cfg, str(tmp_path))
    ckpt = load_checkpoint(tmp_path / "last.pth")  # never overwritten with NaN weights
    assert ckpt["iteration"] == 2
    assert all(torch.isfinite(v).all() for v in ckpt["model"].values() if v.is_floating_point())
    assert "stopped: the loss is not finite (NaN or inf) at iteration 3" in (tmp_path / "train.log").read_text()


def _train_records(work):
    path = work / "metrics.jsonl"
    return [r for r in read_log(work) if "loss" in r] if path.exists() else []


def test_sigterm_to_the_process_group_with_loader_workers_saves_and_exits_143(sample_root, tmp_path):
    """scancel / a Slurm time limit / systemd: SIGTERM reaches the main process and every loader worker."""
    work = tmp_path / "work"
    args = [*tiny_overrides(sample_root, 200, "data.num_workers=2", "train.val_interval=1000"), "--work-dir", work]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        train_command(*args),
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    _wait_for(proc, work, lambda: len(_train_records(work)) >= 2)
    os.killpg(proc.pid, signal.SIGTERM)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, out
    assert "Traceback" not in out and "DataLoader worker" not in out
    stopped_at = int(out.split("stopped: SIGTERM at iteration ")[1].split(":")[0])
    assert 2 <= stopped_at < 200 and _last_iteration(work) == stopped_at
