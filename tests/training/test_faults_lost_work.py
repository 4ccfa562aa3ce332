"""No lost training (issue 19 items 6 and 8): an error raised by a loader worker saves the last whole
iteration before the run stops and lands in train.log; a stop signal during a long validation abandons
it within seconds, and the resumed run validates at that iteration."""

import os
import signal
import subprocess
import time

import pytest

from segkit.checkpoint import check_resumable, load_checkpoint
from segkit.data.sample import generate
from tests.train_helpers import ROOT, read_log, tiny_overrides, train_command

ENV = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}


def _train_records(work):
    return [r for r in read_log(work) if "loss" in r] if (work / "metrics.jsonl").exists() else []


def _wait(proc, predicate, timeout=240):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return
        if proc.poll() is not None:
            raise AssertionError(f"training ended early:\n{proc.stdout.read()}\n{proc.stderr.read()}")
        time.sleep(0.05)
    proc.kill()
    raise AssertionError("timed out waiting for the training process")


@pytest.mark.slow
def test_an_image_truncated_while_training_with_workers_keeps_the_iterations_done(tmp_path):
    """4 training images, batch 2: every epoch is 2 iterations, so the loader workers read the image
    again soon after the test cuts it in half on disk."""
    root = generate(tmp_path / "data", splits={"train": 4, "val": 2})
    work = tmp_path / "work"
    args = [
        *tiny_overrides(root, 1000, "data.num_workers=2", "train.val_interval=1000", "train.checkpoint_interval=1000"),
        "--work-dir",
        work,
    ]
    proc = subprocess.Popen(
        train_command(*args), cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    _wait(proc, lambda: len(_train_records(work)) >= 3)
    victim = sorted((root / "images" / "train").iterdir())[1]
    data = victim.read_bytes()
    victim.write_bytes(data[: len(data) // 2])
    out, err = proc.communicate(timeout=240)
    assert proc.returncode == 2, out + err
    reached = _train_records(work)[-1]["iter"]
    assert 3 <= reached < 1000
    ckpt = load_checkpoint(work / "last.pth")  # none was due before iteration 1000: the error wrote it
    assert ckpt["iteration"] == reached
    check_resumable(ckpt, "last.pth")
    assert f"saved a checkpoint of iteration {reached} before stopping on the error below" in out
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in out + err, err
    assert lines[0].startswith("error: ") and str(victim) in lines[0] and "DataLoader worker process" in lines[0]
    log = (work / "train.log").read_text()
    assert lines[0] in log.splitlines()  # the same line, once
    assert log.count(str(victim)) == 1


@pytest.mark.slow
def test_sigterm_during_a_long_validation_stops_within_seconds_and_the_resumed_run_validates(tmp_path):
    """120 validation images with TTA (2 scales, flip), one per batch: minutes of validation on a CPU.
    SIGTERM a second into it: exit 143 within 10 s, the iteration's checkpoint, no partial numbers;
    the resumed run validates that iteration first (on a smaller val set here, to keep the test short)."""
    root = generate(tmp_path / "data", splits={"train": 4, "val": 120})
    work = tmp_path / "work"
    args = [
        *tiny_overrides(root, 4, "data.num_workers=2", "train.val_interval=2", "train.checkpoint_interval=100"),
        "eval.batch_size=1",
        "eval.scales=[1.0,1.5]",
        "eval.flip=true",
        "--work-dir",
        work,
    ]
    proc = subprocess.Popen(
        train_command(*args),
        cwd=ROOT,
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    seen = []
    for line in proc.stdout:  # the log mode says when validation starts
        seen.append(line)
        if line.startswith("validation: 120 batches"):
            break
    else:
        raise AssertionError("no validation started:\n" + "".join(seen))
    time.sleep(1)
    os.killpg(proc.pid, signal.SIGTERM)  # as Slurm and Kubernetes do: the main process and its workers
    sent = time.monotonic()
    out, _ = proc.communicate(timeout=120)
    took = time.monotonic() - sent
    out = "".join(seen) + out
    assert proc.returncode == 128 + signal.SIGTERM, out
    assert took < 10, f"{took:.1f} s from SIGTERM to exit\n{out}"
    assert "validation at iteration 2 abandoned" in out and "Traceback" not in out
    assert not [r for r in read_log(work) if "val" in r]  # no partial numbers recorded
    ckpt = load_checkpoint(work / "last.pth")
    assert ckpt["iteration"] == 2 and ckpt["validation_due"]
    check_resumable(ckpt, "last.pth")

    for split in ("images", "masks"):  # a short validation for the resumed run
        for path in sorted((root / split / "val").iterdir())[2:]:
            path.unlink()
    done = subprocess.run(
        train_command(*args, "--resume"), cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=240
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.index("validation at iteration 2:") < done.stdout.index("iter 3/4")
    assert [r["iter"] for r in read_log(work) if "val" in r] == [2, 4]
    assert not load_checkpoint(work / "last.pth")["validation_due"]
