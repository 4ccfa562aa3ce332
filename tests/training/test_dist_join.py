"""Joining the process group under torchrun (issue #22), with the agent's store played by this test:
a restarted round must not read the previous round's keys (torch's own path does, and hangs or connects
to the dead worker's address: pytorch/pytorch#135712), and a join that cannot complete ends within
train.dist_timeout with one error naming the rank, the address and the likely cause."""

import datetime
import os
import subprocess
import sys
import time

import pytest
import torch.distributed as dist

from segkit.config import ConfigError
from segkit.training.optim import check_train_config
from tests.train_helpers import ROOT, tiny_config
from tests.training.test_ddp_multinode import free_port

WORKER = ROOT / "tests" / "dist_join_worker.py"


def agent_store(port: int):
    """What torchrun's agent hosts at MASTER_ADDR:MASTER_PORT, for every round of the job."""
    return dist.TCPStore("127.0.0.1", port, is_master=True, wait_for_workers=False, timeout=datetime.timedelta(60))


def rank(r: int, port: int, restart: int, timeout: float, mode: str = "segkit", agent: bool = True):
    env = {
        **os.environ,
        "RANK": str(r),
        "LOCAL_RANK": str(r),
        "WORLD_SIZE": "2",
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(port),
        "TORCHELASTIC_RESTART_COUNT": str(restart),
        "TORCHELASTIC_USE_AGENT_STORE": str(agent),
        "TORCHELASTIC_RUN_ID": "test",
        "OMP_NUM_THREADS": "1",
    }
    cmd = [sys.executable, str(WORKER), str(timeout), mode]
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def outcome(proc, timeout: float):
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        return "hung", proc.communicate()[0]
    return proc.returncode, out


def two_rounds(mode: str):
    """Round 0 joins and ends; round 1 (a restart) joins on the same agent store, rank 1 first."""
    port = free_port()
    store = agent_store(port)  # noqa: F841 (held: the server lives as long as this object)
    results = []
    for restart in (0, 1):
        procs = [rank(1, port, restart, 10, mode)]
        if restart:
            time.sleep(2)  # the restarted rank 1 is up before rank 0: the last round's keys are there to read
        procs.insert(0, rank(0, port, restart, 10, mode))
        results.append([outcome(p, 90) for p in procs])
    return results


@pytest.mark.slow
def test_a_restarted_round_joins_a_fresh_store():
    for restart, ranks in enumerate(two_rounds("segkit")):
        for r, (rc, out) in enumerate(ranks):
            assert rc == 0 and "sum 2" in out, f"round {restart} rank {r}: {rc}\n{out[-3000:]}"


@pytest.mark.slow
@pytest.mark.skipif(
    not os.environ.get("SEGKIT_UPSTREAM_REPRO"),
    reason="reproduces pytorch/pytorch#135712, which depends on timing (torch's own join passed both rounds in one "
    "CI-like run): run with SEGKIT_UPSTREAM_REPRO=1",
)
def test_torch_own_join_reads_the_last_rounds_keys():
    """The oracle for the test above: the same two rounds through torch's own init_process_group fail
    (if torch fixes pytorch/pytorch#135712 this fails, and segkit's work-around can go). Opt-in: whether the
    stale keys are read depends on timing, so it is a reproduction to run by hand, not a CI guard."""
    first, second = two_rounds("torch")
    assert all(rc == 0 for rc, _ in first), first
    assert any(rc != 0 for rc, _ in second), second


@pytest.mark.parametrize("restart, agent", [(0, False), (1, True)])
def test_a_join_that_cannot_complete_is_one_error_within_the_timeout(restart, agent):
    port = free_port()
    store = agent_store(port)  # noqa: F841 (the agent's store, or env://'s: rank 0 never comes to use it)
    rc, out = outcome(rank(1, port, restart, 3, agent=agent), 120)
    assert rc == 3, out[-3000:]
    message = out.strip().splitlines()[-1]
    assert f"rank 1 of 2 could not join the process group at 127.0.0.1:{port} within train.dist_timeout=3s" in message
    if restart:
        assert "restart 1 by torchrun" in message and "--rdzv-backend=c10d --rdzv-endpoint=HOST:PORT" in message
    else:
        assert "a node did not start" in message


def test_dist_timeout_must_be_positive(tmp_path):
    cfg = tiny_config(tmp_path, 4, "train.dist_timeout=0")
    with pytest.raises(ConfigError, match="train.dist_timeout must be > 0"):
        check_train_config(cfg.train)
