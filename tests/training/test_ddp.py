"""DDP on the CPU: 2 processes (torchrun, gloo) train a few steps; the all-reduced validation
confusion matrix equals a single-process evaluation of the saved checkpoint on the same data."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from segkit.checkpoint import load_checkpoint, model_from_checkpoint
from segkit.data import build_dataset, build_eval_loader
from segkit.evaluation import metrics
from segkit.evaluation.evaluator import evaluate
from segkit.training.budget import WARMUP_STEPS
from tests.train_helpers import ROOT, tiny_overrides


def _torchrun() -> str:
    found = Path(sys.executable).with_name("torchrun")
    if found.exists():
        return str(found)
    if shutil.which("torchrun"):
        return shutil.which("torchrun")
    pytest.skip("torchrun not found beside the Python interpreter")


def test_two_process_ddp_matches_single_process_evaluation(tmp_path, monkeypatch):
    from segkit.data.sample import generate

    # 7 val images split 4 + 3 over the ranks: a padding sampler would count one twice
    sample_root = generate(tmp_path / "data", splits={"train": 8, "val": 7})
    work = tmp_path / "ddp"
    work.mkdir()
    val = sample_root / "images" / "val"
    overrides = tiny_overrides(
        sample_root, 3, "train.val_interval=3", "train.checkpoint_interval=3", "eval.batch_size=2"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    cmd = [
        _torchrun(),
        "--standalone",
        "--nproc_per_node=2",
        str(ROOT / "tests" / "ddp_train_worker.py"),
        str(work),
        *overrides,
    ]
    run = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "BatchNorm kept (SyncBatchNorm needs CUDA)" in run.stdout
    assert run.stdout.count("training sample_deeplabv3plus_r18 on 2 x cpu") == 1  # only rank 0 speaks
    assert "iterations of 4 images" in run.stdout  # batch 2 per process

    ranks = [torch.load(work / f"ddp_rank{r}.pt", weights_only=True) for r in (0, 1)]
    assert torch.equal(ranks[0]["matrix"], ranks[1]["matrix"])  # every rank holds the global matrix

    # single process, same checkpoint, same data: the same confusion matrix, pixel for pixel
    seen = []
    compute = metrics.ConfusionMatrix.compute
    monkeypatch.setattr(
        metrics.ConfusionMatrix, "compute", lambda self: seen.append(self.matrix.clone()) or compute(self)
    )
    model, cfg, _ = model_from_checkpoint(work / "last.pth")
    loader = build_eval_loader(build_dataset(cfg.data, cfg.data.val_split), 1)
    single = evaluate(model, loader, cfg, torch.device("cpu"))
    assert torch.equal(seen[-1], ranks[0]["matrix"])
    assert int(seen[-1].sum()) == len(list(val.iterdir())) * 128 * 128  # every val pixel, counted once
    assert single["mIoU"] == ranks[0]["results"]["mIoU"]
    assert load_checkpoint(work / "last.pth")["world_size"] == 2


def test_ranks_with_different_numbers_of_validation_batches_finish_validation(tmp_path):
    """5 val images, eval batch 2: rank 0 has 2 batches (3 images), rank 1 one. The stop-signal check of each
    validation batch is a collective: rank 1 answered rank 0's second check with its confusion-matrix sum
    (gloo aborted rank 0). Now every rank checks as often as the rank with the most batches."""
    from segkit.data.sample import generate

    sample_root = generate(tmp_path / "data", splits={"train": 4, "val": 5})
    work = tmp_path / "ddp"
    work.mkdir()
    overrides = tiny_overrides(
        sample_root, 2, "train.val_interval=2", "train.checkpoint_interval=2", "eval.batch_size=2"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    cmd = [_torchrun(), "--standalone", "--nproc_per_node=2", str(ROOT / "tests" / "ddp_train_worker.py"), str(work)]
    run = subprocess.run([*cmd, *overrides], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "validation at iteration 2:" in run.stdout
    ranks = [torch.load(work / f"ddp_rank{r}.pt", weights_only=True) for r in (0, 1)]
    assert torch.equal(ranks[0]["matrix"], ranks[1]["matrix"])
    assert int(ranks[0]["matrix"].sum()) == 5 * 128 * 128  # every val pixel, counted once


def test_ddp_with_an_aux_head_of_weight_zero_trains(tmp_path):
    """Regression: the aux head ran without a loss, its parameters got no gradient and DDP stopped at
    iteration 2 with "Expected to have finished reduction in the prior iteration"."""
    from segkit.data.sample import generate

    sample_root = generate(tmp_path / "data", splits={"train": 8, "val": 2})
    work = tmp_path / "ddp"
    work.mkdir()
    overrides = tiny_overrides(sample_root, 3, "model.aux_head=true", "loss.aux_weight=0")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    cmd = [
        _torchrun(),
        "--standalone",
        "--nproc_per_node=2",
        str(ROOT / "tests" / "ddp_train_worker.py"),
        str(work),
        *overrides,
    ]
    run = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert load_checkpoint(work / "last.pth")["iteration"] == 3


def test_ddp_ranks_agree_on_the_time_budget_schedule(tmp_path):
    """Each rank measures its own step time; they must still end at one iteration, or the collectives hang."""
    from segkit.data.sample import generate

    sample_root = generate(tmp_path / "data", splits={"train": 8, "val": 2})
    work = tmp_path / "ddp"
    work.mkdir()
    overrides = tiny_overrides(
        sample_root,
        200,
        "train.time_budget=2s",
        "train.val_interval=200",
        "train.checkpoint_interval=200",
        "train.log_interval=200",
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    cmd = [
        _torchrun(),
        "--standalone",
        "--nproc_per_node=2",
        str(ROOT / "tests" / "ddp_train_worker.py"),
        str(work),
        *overrides,
    ]
    run = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    ckpt = load_checkpoint(work / "last.pth")
    assert "time budget 2s" in run.stdout and ckpt["iteration"] == ckpt["scheduler"]["iterations"]
    # how many fit in 2 s depends on the machine; the budget fixes the schedule only after its warm-up steps
    assert ckpt["iteration"] >= WARMUP_STEPS + 1
    ranks = [torch.load(work / f"ddp_rank{r}.pt", weights_only=True) for r in (0, 1)]
    assert torch.equal(ranks[0]["matrix"], ranks[1]["matrix"])  # both validated at the same (final) iteration
    assert all(torch.equal(ranks[0]["weights"][k], ranks[1]["weights"][k]) for k in ranks[0]["weights"])
