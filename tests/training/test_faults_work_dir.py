"""Fault injection around the work dir (issue 10 items 2-4, 6, 9): an unreadable last.pth, a user
rewriting best.pth, two runs in one work dir, a late-validated typo, a full disk. Each asserts that
a checkpoint exists where promised, that no file a user had is changed or lost, and that the
message names the file or key and the fix."""

import hashlib
import os
import re
import signal
import subprocess

import numpy as np
import PIL.Image
import pytest
import torch

from segkit.checkpoint import FORMAT, CheckpointError, load_checkpoint, save_checkpoint
from segkit.config import ConfigError
from segkit.training import engine
from segkit.training.engine import train
from segkit.training.workdir import LOCK_NAME, WorkDirError
from tests.tool_loader import load_tool
from tests.train_helpers import CONFIG, ROOT, read_log, tiny_config, tiny_overrides, train_command
from tests.training.test_faults import _train_records, _wait_for


def _md5(path):
    return hashlib.md5(path.read_bytes()).hexdigest()


def _listing(work):
    """Every file and its md5, but train.log: the run's own log, which records the refusal."""
    return sorted((str(p.relative_to(work)), _md5(p)) for p in work.rglob("*") if p.is_file() and p.name != "train.log")


def _numpy_checkpoint(path):
    """A legitimate file that weights_only refuses: a NumPy array inside."""
    torch.save({"format": FORMAT, "iteration": 7, "model": {}, "extra": np.zeros(3)}, path)
    return path


def test_resume_auto_stops_on_an_unreadable_last_pth_and_changes_nothing(sample_root, tmp_path, capsys):
    work = tmp_path / "work"
    work.mkdir()
    _numpy_checkpoint(work / "last.pth")
    (work / "metrics.jsonl").write_text('{"iter": 7, "loss": 1.0}\n')
    before = _listing(work)
    code = load_tool("train").main(
        [str(CONFIG), *tiny_overrides(sample_root, 2), "--work-dir", str(work), "--resume", "auto"]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert f"--resume auto cannot use {work / 'last.pth'}" in err and "Unsupported global" in err
    assert "--resume none" in err and "Nothing was changed" in err
    assert _listing(work) == before  # md5 of last.pth unchanged, nothing else added (the lock is gone too)


def test_a_fresh_start_moves_the_old_run_aside(sample_root, tmp_path, capsys):
    """Only an explicit fresh start replaces an old run, and even then nothing is overwritten;
    the new metrics.jsonl starts empty instead of appending to the old one."""
    work = tmp_path / "work"
    work.mkdir()
    old_md5 = _md5(_numpy_checkpoint(work / "last.pth"))
    (work / "metrics.jsonl").write_text('{"iter": 7, "loss": 1.0}\n')
    (work / "train.log").write_text("the old run's log\n")
    train(tiny_config(sample_root, 2), str(work), resume="none")
    (moved,) = (work / "previous").iterdir()
    assert f"moved them to {moved}" in capsys.readouterr().out
    assert (moved / "train.log").read_text() == "the old run's log\n"  # the new run's lines start a new log
    new_log = (work / "train.log").read_text()
    assert "the old run's log" not in new_log and "training " in new_log and f"moved them to {moved}" in new_log
    assert _md5(moved / "last.pth") == old_md5 and (moved / "metrics.jsonl").read_text().startswith('{"iter": 7')
    assert [r["iter"] for r in read_log(work) if "loss" in r] == [1, 2]
    assert load_checkpoint(work / "last.pth")["iteration"] == 2


def test_checkpoints_are_distinct_files_so_stripping_best_leaves_last_resumable(sample_root, tmp_path):
    work = tmp_path / "work"
    cfg = tiny_config(sample_root, 4, "train.keep_last=2", "train.val_interval=2", "train.checkpoint_interval=2")
    train(cfg, str(work), stop_at=2)
    names = ["last.pth", "best.pth", "iter_0000002.pth"]
    assert all((work / n).stat().st_nlink == 1 for n in names)
    assert len({(work / n).stat().st_ino for n in names}) == 3
    # a user strips the optimizer from best.pth in place (writing through the file), to share the weights
    ckpt = torch.load(work / "best.pth", weights_only=True)
    del ckpt["optimizer"], ckpt["scaler"]
    with open(work / "best.pth", "r+b") as f:
        f.truncate(0)
        torch.save(ckpt, f)
    with pytest.raises(CheckpointError, match="weights only.*--init-from"):
        train(cfg, str(work), resume=str(work / "best.pth"))
    train(cfg, str(work), resume="auto")  # last.pth kept its optimizer
    assert load_checkpoint(work / "last.pth")["iteration"] == 4


def test_a_second_run_in_a_used_work_dir_is_refused_and_a_dead_runs_lock_is_taken_over(sample_root, tmp_path, capsys):
    work = tmp_path / "work"
    args = [*tiny_overrides(sample_root, 400, "train.val_interval=1000"), "--work-dir", work]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    first = subprocess.Popen(
        train_command(*args), cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        _wait_for(first, work, lambda: len(_train_records(work)) >= 1)
        # the first run writes config.yaml once and last.pth only at its end (400): a second run that got
        # past the lock would rewrite config.yaml (2 iterations), write last.pth and start metrics.jsonl over
        before = {name: _md5(work / name) if (work / name).exists() else None for name in ("config.yaml", "last.pth")}
        log = (work / "metrics.jsonl").read_bytes()
        with pytest.raises(WorkDirError, match=rf"{work} is in use by another training \(pid {first.pid} on "):
            train(tiny_config(sample_root, 2), str(work), resume="auto")
        after = {name: _md5(work / name) if (work / name).exists() else None for name in before}
        assert after == before and before["config.yaml"] is not None
        assert (work / "metrics.jsonl").read_bytes().startswith(log)  # the first run only appended to it
    finally:
        first.send_signal(signal.SIGKILL)
        first.communicate(timeout=60)
    assert (work / LOCK_NAME).exists()  # kill -9 left its lock file behind: stale
    train(tiny_config(sample_root, 1), str(work), resume="auto")
    assert f"took over the stale lock of a run that is gone (pid {first.pid}" in capsys.readouterr().out
    assert not (work / LOCK_NAME).exists()


@pytest.mark.parametrize(
    "override, key",
    [
        ("eval.mode=slid", "eval.mode='slid'"),
        ("eval.scales=[0.5,-1]", "eval.scales"),
        ("eval.crop_size=[64]", "eval.crop_size"),
        ("data.ignore_index=3", "data.ignore_index=3 is a class id (data.num_classes=6"),
    ],
)
def test_a_late_used_setting_fails_before_the_first_step(sample_root, tmp_path, override, key):
    work = tmp_path / "work"
    with pytest.raises(ConfigError, match=re.escape(key)):
        train(tiny_config(sample_root, 2, override), str(work))
    assert not work.exists()  # nothing trained, nothing written


def test_an_error_inside_the_loop_saves_a_checkpoint_first(sample_root, tmp_path, monkeypatch, capsys):
    def broken(*args, **kwargs):
        raise RuntimeError("out of memory in validation")

    monkeypatch.setattr(engine, "evaluate", broken)
    with pytest.raises(RuntimeError, match="out of memory"):
        train(tiny_config(sample_root, 6, "train.val_interval=3"), str(tmp_path))
    assert load_checkpoint(tmp_path / "last.pth")["iteration"] == 3
    assert (tmp_path / "curves.png").exists()
    assert "saved a checkpoint of iteration 3 before stopping" in capsys.readouterr().out


def test_a_full_disk_keeps_the_previous_checkpoint_and_says_so(sample_root, tmp_path, monkeypatch):
    """The kernel's own ENOSPC (/dev/full) on the second checkpoint write."""
    real_save, calls = torch.save, []

    def full_disk_after_one(obj, f, *args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            return real_save(obj, f, *args, **kwargs)
        with open("/dev/full", "wb") as full:
            real_save(obj, full, *args, **kwargs)

    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full on this system")
    monkeypatch.setattr(torch, "save", full_disk_after_one)
    cfg = tiny_config(sample_root, 4, "train.checkpoint_interval=2", "train.keep_last=0")
    with pytest.raises(
        CheckpointError,
        match=r"cannot write checkpoint .*last\.pth: no space left on device \(the disk is full\) \(OSError 28\); "
        r"the previous last\.pth is unchanged",
    ):
        train(cfg, str(tmp_path))
    assert load_checkpoint(tmp_path / "last.pth")["iteration"] == 2
    assert not list(tmp_path.glob(".*.tmp"))


def test_a_work_dir_that_cannot_be_made_is_named(sample_root, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    with pytest.raises(WorkDirError, match=rf"cannot write to the work dir {blocker / 'work'} .*choose a writable"):
        train(tiny_config(sample_root, 2), str(blocker / "work"))
    assert blocker.read_text() == "not a folder"


def test_checkpoints_honour_the_umask(tmp_path):
    from segkit.checkpoint import copy_checkpoint, save_checkpoint

    old = os.umask(0o022)
    try:
        path = save_checkpoint(tmp_path / "last.pth", {"iteration": 1})
        copy = copy_checkpoint(path, tmp_path / "best.pth")
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o644 and copy.stat().st_mode & 0o777 == 0o644


def test_random_bytes_are_not_called_python_objects(tmp_path):
    path = tmp_path / "noise.pth"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(
        CheckpointError,
        match=r"noise\.pth cannot be read as a PyTorch checkpoint .*corrupt or not a "
        r"checkpoint",
    ) as info:
        load_checkpoint(path)
    assert "Python objects" not in str(info.value)


def test_the_checker_rejects_an_ignore_index_that_is_a_class(sample_root, capsys):
    code = load_tool("check_dataset").main(
        [str(CONFIG), f"data.root={sample_root}", "data.ignore_index=2", "--workers", "0"]
    )
    out = capsys.readouterr().out
    assert code == 1 and "ERROR: data.ignore_index=2 is a class id (data.num_classes=6" in out
    assert "OK:" not in out


def test_inputs_sharing_a_stem_get_distinct_outputs(sample_run, sample_root, tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    image = np.asarray(PIL.Image.open(next((sample_root / "images" / "val").iterdir())).convert("RGB"))
    for suffix in ("png", "jpg", "tif"):
        PIL.Image.fromarray(image).save(folder / f"shot.{suffix}")
    out = tmp_path / "out"
    assert load_tool("infer").main([str(folder), "--checkpoint", str(sample_run / "last.pth"), "--out", str(out)]) == 0
    assert sorted(p.name for p in out.glob("*_mask.png")) == [
        "shot_jpg_mask.png",
        "shot_png_mask.png",
        "shot_tif_mask.png",
    ]
    assert "3 image(s)" in capsys.readouterr().out


def test_output_stems_follow_the_export_names():
    from pathlib import Path

    from segkit.annotations.regions import unique_output_stems

    paths = [Path("a/img.png"), Path("b/img.png"), Path("c/one.png"), Path("c/shot.png"), Path("c/shot.jpg")]
    assert list(unique_output_stems(paths).values()) == ["a_img", "b_img", "c_one", "c_shot_png", "c_shot_jpg"]
    assert list(unique_output_stems([Path("x.png"), Path("y.jpg")]).values()) == ["x", "y"]


def test_a_checkpoint_on_a_really_full_disk_is_one_line_and_keeps_the_previous_one(full_tmpfs):
    """A real tmpfs, not /dev/full: torch.save wraps the kernel's ENOSPC in a RuntimeError ("unexpected pos")."""
    mount, fill = full_tmpfs
    path = mount / "last.pth"
    save_checkpoint(path, {"model": {"w": torch.zeros(10)}, "iteration": 1})
    before = _md5(path)
    fill()
    with pytest.raises(CheckpointError) as info:
        save_checkpoint(path, {"model": {"w": torch.ones(100_000)}, "iteration": 2})
    message = str(info.value)
    assert len(message.splitlines()) == 1 and "inline_container" not in message
    assert message.startswith(f"cannot write checkpoint {path}: no space left on device (the disk is full)")
    assert "the previous last.pth is unchanged" in message
    assert _md5(path) == before and load_checkpoint(path)["iteration"] == 1
    assert not list(mount.glob(".*.tmp*"))
