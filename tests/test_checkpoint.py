"""Checkpoint files: atomic writes, weights_only loading, links, pruning, auto-resume lookup, init-from."""

import os
import random
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn

from segkit.checkpoint import (
    CheckpointError,
    copy_checkpoint,
    find_resume_checkpoint,
    iteration_checkpoints,
    load_checkpoint,
    load_compatible,
    prune_checkpoints,
    remove_stale_temporaries,
    rng_state,
    save_checkpoint,
    set_rng_state,
)


def test_save_is_atomic_when_the_write_fails(tmp_path, monkeypatch):
    path = tmp_path / "last.pth"
    save_checkpoint(path, {"iteration": 1, "model": {"w": torch.ones(3)}})

    def crash(obj, f, *args, **kwargs):  # save_checkpoint hands torch.save atomic_write's temporary path
        Path(f).write_bytes(b"partial bytes")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(
        CheckpointError, match=r"cannot write checkpoint .*last\.pth: .*the previous last\.pth is unchanged"
    ):
        save_checkpoint(path, {"iteration": 2, "model": {"w": torch.zeros(3)}})
    assert load_checkpoint(path)["iteration"] == 1  # the previous file is intact
    assert [p.name for p in tmp_path.iterdir()] == ["last.pth"]  # and no temporary is left


def test_checkpoint_loads_with_weights_only_and_rejects_others(tmp_path):
    path = save_checkpoint(tmp_path / "a.pth", {"iteration": 3, "rng": [rng_state()], "meta": {"x": [1, 2]}})
    ckpt = torch.load(path, weights_only=True)
    assert ckpt["iteration"] == 3 and ckpt["format"].startswith("segkit")
    torch.save({"model": {}}, tmp_path / "other.pth")
    with pytest.raises(CheckpointError, match="not a segkit checkpoint"):
        load_checkpoint(tmp_path / "other.pth")
    (tmp_path / "cut.pth").write_bytes(path.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="truncated, corrupt"):
        load_checkpoint(tmp_path / "cut.pth")


def test_rng_state_round_trips():
    state = rng_state()
    expected = (torch.rand(3), np.random.rand(3), random.random())
    torch.rand(5), np.random.rand(5), random.random()
    set_rng_state(state)
    again = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(expected[0], again[0]) and np.array_equal(expected[1], again[1]) and expected[2] == again[2]


def test_copy_prune_and_auto_resume(tmp_path):
    for it in (10, 20, 30):
        path = save_checkpoint(tmp_path / f"iter_{it:07d}.pth", {"iteration": it})
        copy_checkpoint(path, tmp_path / "last.pth")
    prune_checkpoints(tmp_path, keep=2, upto=30)
    assert [p.name for p in iteration_checkpoints(tmp_path)] == ["iter_0000020.pth", "iter_0000030.pth"]
    found_path, ckpt = find_resume_checkpoint(tmp_path)
    assert found_path.name == "last.pth" and ckpt["iteration"] == 30
    # a damaged last.pth stops the lookup naming it: falling back would train over it
    (tmp_path / "last.pth").write_bytes(b"junk")
    with pytest.raises(CheckpointError, match=r"--resume auto cannot use .*last\.pth: .*Nothing was changed"):
        find_resume_checkpoint(tmp_path)
    (tmp_path / "last.pth").unlink()
    found_path, ckpt = find_resume_checkpoint(tmp_path)
    assert found_path.name == "iter_0000030.pth" and ckpt["iteration"] == 30
    assert find_resume_checkpoint(tmp_path / "empty") is None


def test_copy_is_a_distinct_file(tmp_path):
    """Overwriting last.pth later, or rewriting best.pth in place, must not change the other."""
    first = save_checkpoint(tmp_path / "last.pth", {"iteration": 1})
    copy_checkpoint(first, tmp_path / "best.pth")
    assert not os.path.samefile(first, tmp_path / "best.pth")
    save_checkpoint(tmp_path / "last.pth", {"iteration": 2})
    assert load_checkpoint(tmp_path / "best.pth")["iteration"] == 1
    assert load_checkpoint(tmp_path / "last.pth")["iteration"] == 2


def test_stale_temporaries_are_removed(tmp_path):
    (tmp_path / ".last.pth.abc.tmp").write_bytes(b"half a checkpoint")
    save_checkpoint(tmp_path / "last.pth", {"iteration": 1})
    assert [p.name for p in remove_stale_temporaries(tmp_path)] == [".last.pth.abc.tmp"]
    assert sorted(os.listdir(tmp_path)) == ["last.pth"]


def test_load_compatible_skips_mismatched_head(capsys):
    old = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.Conv2d(8, 5, 1))
    new = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.Conv2d(8, 2, 1))
    head_before = new[2].weight.detach().clone()
    loaded, skipped = load_compatible(new, old.state_dict())
    assert torch.equal(new[0].weight, old[0].weight)
    assert torch.equal(new[2].weight, head_before)  # the new classifier keeps its fresh init
    assert "0.weight" in loaded and "2.weight" not in loaded
    assert any(s.startswith("2.weight: checkpoint (5, 8, 1, 1) vs model (2, 8, 1, 1)") for s in skipped)


def test_prune_leaves_files_of_another_run_past_this_iteration(tmp_path):
    """A new run in a used work dir: its iter_2 must survive the old run's iter_4 and iter_6."""
    for it in (4, 6, 2):
        save_checkpoint(tmp_path / f"iter_{it:07d}.pth", {"iteration": it})
    prune_checkpoints(tmp_path, keep=1, upto=2)
    assert [p.name for p in iteration_checkpoints(tmp_path)] == [
        "iter_0000002.pth",
        "iter_0000004.pth",
        "iter_0000006.pth",
    ]


def test_compare_state_dicts_names_shape_clashes_missing_and_unexpected():
    from segkit.models.weights import compare_state_dicts

    own = {"a": torch.zeros(2), "b": torch.zeros(3), "c": torch.zeros(1)}
    diff = compare_state_dicts(own, {"a": torch.zeros(2), "b": torch.zeros(4), "d": torch.zeros(1)})
    assert diff.shape_clash == ["b"] and diff.missing == ["c"] and diff.unexpected == ["d"]
    assert list(diff.fitting()) == ["a"] and diff.shapes("b", "model ") == "(4,) vs model (3,)"


def test_rng_states_of_more_gpus_than_visible_restore_what_fits(monkeypatch):
    """Regression: set_rng_state_all raised IndexError when the checkpoint had more CUDA states than GPUs."""
    restored, said = [], []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "set_rng_state", lambda s, device: restored.append(device))
    state = rng_state()
    state["cuda"] = [torch.zeros(16, dtype=torch.uint8) for _ in range(4)]
    set_rng_state(state, said.append)
    assert restored == [0, 1]
    assert len(said) == 1 and "4 GPUs, 2 visible" in said[0]
