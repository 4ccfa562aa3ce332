"""Elastic restarts under torchrun (issue #22), 2 gloo processes on the CPU: one worker SIGKILLed at a
random iteration under ``--max-restarts=1``; the restarted workers resume from the last checkpoint
(whatever --resume said) and finish at the scheduled last iteration, with train.deterministic=true on the
weights of an uninterrupted run. Static rendezvous either recovers or fails within train.dist_timeout
with one clear error, never hangs. The agent itself SIGKILLed: its workers save and stop, and the run
re-launched by hand resumes; SIGTERM to the agent: every worker saves and exits 143."""

import os
import random
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from segkit.checkpoint import load_checkpoint
from tests.train_helpers import CONFIG, ROOT, assert_same_tensors, tiny_overrides
from tests.training.test_ddp import _torchrun
from tests.training.test_ddp_multinode import free_port

pytestmark = pytest.mark.slow
ITERS, EVERY = 6, 2  # checkpoints at 2, 4, 6
HARD_TIMEOUT = 300  # a hang fails the test here instead of stalling the suite
WORKER = ROOT / "tests" / "elastic_train_worker.py"
RESUMED = re.compile(r"restart 1 by torchrun: resuming from (\S+) at iteration (\d+)")


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    from segkit.data.sample import generate

    return generate(tmp_path_factory.mktemp("elastic") / "data", splits={"train": 4, "val": 2})


def overrides(sample_root, iterations=ITERS, *extra):
    return tiny_overrides(
        sample_root,
        iterations,
        f"train.checkpoint_interval={EVERY}",
        "train.keep_last=0",
        "train.deterministic=true",
        "train.dist_timeout=60",
        *extra,
    )


def launch(
    work: Path,
    sample_root,
    *args,
    rdzv="c10d",
    kill_at=0,
    kill_rank=1,
    nodes=None,
    iterations=ITERS,
    env_extra=(),
    restarts=1,
):
    port = free_port()
    where = (
        ["--rdzv-backend=c10d", f"--rdzv-endpoint=127.0.0.1:{port}", "--rdzv-id=segkit-test"]
        if rdzv == "c10d"
        else ["--master_addr=127.0.0.1", f"--master_port={port}"]
    )
    procs = nodes or [["--nproc_per_node=2"]]
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "PYTHONUNBUFFERED": "1",
        "SEGKIT_TEST_KILL_AT": str(kill_at),
        "SEGKIT_TEST_KILL_RANK": str(kill_rank),
        **dict(env_extra),
    }
    out = []
    for i, node in enumerate(procs):
        cmd = [_torchrun(), f"--max-restarts={restarts}", *where, *node, str(WORKER), str(CONFIG)]
        cmd += ["--work-dir", str(work if len(procs) == 1 else work / f"node{i}"), *args]
        cmd += overrides(sample_root, iterations)
        out.append(
            subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        )
    return out


def finish(proc, timeout=HARD_TIMEOUT):
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        pytest.fail(f"hung for {timeout}s:\n{out[-4000:]}")
    return proc.returncode, out


def model_of(path):
    return load_checkpoint(path)["model"]


@pytest.fixture(scope="module")
def uninterrupted(sample, tmp_path_factory):
    work = tmp_path_factory.mktemp("straight")
    rc, out = finish(launch(work, sample)[0])
    assert rc == 0, out[-4000:]
    return model_of(work / "last.pth")


@pytest.mark.parametrize(
    "resume_args", [[], ["--resume", "auto"], [], ["--resume", "none"], ["--resume", "auto"]], ids=range(1, 6)
)
def test_a_killed_worker_is_restarted_and_the_run_resumes(sample, uninterrupted, tmp_path, resume_args):
    kill_at = random.randint(EVERY + 1, ITERS)  # after the first checkpoint, before the last
    rc, out = finish(launch(tmp_path, sample, *resume_args, kill_at=kill_at)[0])
    what = f"killed rank 1 at iteration {kill_at}, {resume_args or 'no --resume'}"
    assert rc == 0, f"{what}\n{out[-4000:]}"
    log = (tmp_path / "train.log").read_text()
    found = RESUMED.search(log)
    assert found, f"{what}: train.log names no resume\n{log[-3000:]}"
    resumed_at = int(found.group(2))
    assert found.group(1) == str(tmp_path / "last.pth")
    # the last due checkpoint, or the one before when the kill came while rank 0 wrote it
    assert resumed_at % EVERY == 0 and kill_at - 1 - EVERY <= resumed_at <= kill_at - 1, what
    assert load_checkpoint(tmp_path / "last.pth")["iteration"] == ITERS, what
    assert f"done: iteration {ITERS}/{ITERS}" in log, what
    assert_same_tensors(model_of(tmp_path / "last.pth"), uninterrupted, f"{what}: weights vs an uninterrupted run")


def test_static_rendezvous_restart_recovers_or_fails_within_the_timeout(sample, tmp_path):
    timeout = 20
    start = time.monotonic()
    (proc,) = launch(tmp_path, sample, f"train.dist_timeout={timeout}", rdzv="static", kill_at=EVERY + 1)
    rc, out = finish(proc, timeout=HARD_TIMEOUT)
    took = time.monotonic() - start
    if rc == 0:
        assert RESUMED.search((tmp_path / "train.log").read_text()), out[-4000:]
        assert load_checkpoint(tmp_path / "last.pth")["iteration"] == ITERS
    else:  # the one clear error, naming rank, address and cause, within the timeout (plus start-up)
        assert "could not join the process group at 127.0.0.1:" in out and "--rdzv-backend=c10d" in out, out[-4000:]
        assert took < 4 * timeout + 120, took


def _children(pid: int) -> list:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _wait_for(check, timeout, what):
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.2)


def test_agent_killed_workers_save_and_a_relaunch_resumes(sample, tmp_path):
    iterations = 16  # the agent is killed at the first checkpoint (iteration 2)
    (proc,) = launch(tmp_path, sample, "--resume", "auto", iterations=iterations)
    _wait_for(lambda: (tmp_path / "last.pth").exists() or proc.poll() is not None, HARD_TIMEOUT, "a checkpoint")
    workers = _children(proc.pid)
    assert len(workers) == 2, workers
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    # orphaned, the workers notice the agent is gone, save and stop (no one left to restart them)
    _wait_for(lambda: not any(Path(f"/proc/{w}").exists() for w in workers), 120, "the orphaned workers to exit")
    log = (tmp_path / "train.log").read_text()
    stopped = re.search(r"stopped: SIGTERM at iteration (\d+)", log)
    assert stopped, log[-3000:]
    saved = load_checkpoint(tmp_path / "last.pth")["iteration"]
    assert saved == int(stopped.group(1))
    # the same command again (by hand, or the cluster's requeue): resumes from there
    (again,) = launch(tmp_path, sample, "--resume", "auto", iterations=iterations, kill_at=0)
    rc, out = finish(again)
    assert rc == 0, out[-4000:]
    assert f"resumed from {tmp_path / 'last.pth'} at iteration {saved}" in (tmp_path / "train.log").read_text()
    assert load_checkpoint(tmp_path / "last.pth")["iteration"] == iterations


def test_sigterm_to_the_agent_saves_and_every_worker_exits_143(sample, tmp_path):
    codes = tmp_path / "codes"
    codes.mkdir()
    (proc,) = launch(tmp_path, sample, iterations=16, env_extra={"SEGKIT_TEST_EXIT_DIR": str(codes)})
    _wait_for(lambda: (tmp_path / "last.pth").exists() or proc.poll() is not None, HARD_TIMEOUT, "a checkpoint")
    proc.send_signal(signal.SIGTERM)
    rc, out = finish(proc, timeout=120)
    assert rc != 0, out[-4000:]
    assert out.count("stopped: SIGTERM at iteration") == 2, out[-4000:]  # each worker's CLI says it
    stopped = re.search(r"stopped: SIGTERM at iteration (\d+)", (tmp_path / "train.log").read_text())
    assert stopped and load_checkpoint(tmp_path / "last.pth")["iteration"] == int(stopped.group(1))
    assert [(codes / f"exit_rank{r}").read_text() for r in (0, 1)] == ["143", "143"], out[-4000:]
