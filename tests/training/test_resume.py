"""Resume is exact: N iterations, then a resume for N more, equals 2N straight (deterministic mode)."""

import json

import pytest

from segkit.checkpoint import load_checkpoint
from segkit.training.engine import train
from tests.train_helpers import assert_same_tensors, read_log, tiny_config

N = 3


def _state(work):
    ckpt = load_checkpoint(work / "last.pth")
    return ckpt, ckpt["model"], ckpt["optimizer"]["state"]


def test_resume_equals_uninterrupted_run(sample_root, tmp_path, capsys):
    # dropout (aux head + ASPP), augmentation, a validation mid-way: every random stream is in play.
    # The interrupted half uses 2 loader workers, the others none: the data must not depend on that.
    common = [
        "train.deterministic=true",
        "model.aux_head=true",
        "train.val_interval=2",
        "train.checkpoint_interval=2",
        "train.warmup_iters=2",
    ]
    straight = tiny_config(sample_root, 2 * N, *common)
    train(straight, str(tmp_path / "straight"))

    first = tiny_config(sample_root, 2 * N, *common, "data.num_workers=2")
    train(first, str(tmp_path / "split"), stop_at=N)
    assert load_checkpoint(tmp_path / "split" / "last.pth")["iteration"] == N
    resumed = train(straight, str(tmp_path / "split"), resume="auto")
    assert f"resumed from {tmp_path / 'split' / 'last.pth'} at iteration {N}" in capsys.readouterr().out

    a, b = _state(tmp_path / "straight"), _state(tmp_path / "split")
    assert a[0]["iteration"] == b[0]["iteration"] == 2 * N
    assert a[0]["scheduler"]["lr"] == b[0]["scheduler"]["lr"]
    assert_same_tensors(a[1], b[1], "model weights")
    for key in a[2]:
        assert_same_tensors(a[2][key], b[2][key], f"optimizer state {key}")
    assert a[0]["best_score"] == b[0]["best_score"]
    straight_log, split_log = read_log(tmp_path / "straight"), read_log(tmp_path / "split")
    assert resumed["mIoU"] == pytest.approx([r["val"]["mIoU"] for r in straight_log if "val" in r][-1], abs=1e-6)
    assert [r["iter"] for r in split_log if "loss" in r] == list(range(1, 2 * N + 1))  # one record per iteration
    assert [r["loss"] for r in split_log if "loss" in r] == [r["loss"] for r in straight_log if "loss" in r]
    assert [r["val"] for r in split_log if "val" in r] == [r["val"] for r in straight_log if "val" in r]


def test_resume_after_crash_drops_log_records_past_the_checkpoint(sample_root, tmp_path):
    work = tmp_path / "w"
    cfg = tiny_config(sample_root, 4, "train.checkpoint_interval=2")
    train(cfg, str(work), stop_at=2)
    with (work / "metrics.jsonl").open("a") as f:  # what a run killed at iteration 3 leaves behind
        f.write(json.dumps({"iter": 3, "loss": 9.0, "lr": 0.1}) + "\n" + '{"iter": 4, "lo')
    train(cfg, str(work), resume="auto")
    records = read_log(work)
    iters = [r["iter"] for r in records]
    assert iters == sorted(iters) and iters.count(3) == 1
    assert 9.0 not in [r.get("loss") for r in records]


def test_resume_refuses_a_checkpoint_for_another_model(sample_root, sample_run, tmp_path):
    from segkit.checkpoint import CheckpointError

    # sample_run trained a DeepLabV3+; its skip_channels goes back to the default, as fcn does not take it
    other = tiny_config(sample_root, 2, "model.decoder.name=fcn", "model.decoder.skip_channels=48")
    with pytest.raises(CheckpointError, match="does not fit this model.*--init-from"):
        train(other, str(tmp_path / "b"), resume=str(sample_run / "last.pth"))


def test_weights_only_checkpoint_serves_inference_and_refuses_resume(sample_root, sample_run, tmp_path):
    from segkit.checkpoint import (
        CheckpointError,
        checkpoint_meta,
        model_from_checkpoint,
        save_checkpoint,
        training_state,
    )

    ckpt = load_checkpoint(sample_run / "last.pth")
    cfg = tiny_config(sample_root, 2)
    path = save_checkpoint(
        tmp_path / "weights.pth",
        training_state(ckpt["model"], ckpt["config"], checkpoint_meta(cfg, ["a"] * 6, [[0, 0, 0]] * 6)),
    )
    model, _, meta = model_from_checkpoint(path)  # what the benches write is what inference reads
    assert meta["class_names"] == ["a"] * 6 and not model.training
    with pytest.raises(CheckpointError, match="weights only.*--init-from"):
        train(cfg, str(tmp_path / "w"), resume=str(path))


def test_resume_says_when_the_schedule_gives_another_lr(sample_root, tmp_path, capsys):
    work = tmp_path / "w"
    train(tiny_config(sample_root, 4, "train.checkpoint_interval=2"), str(work), stop_at=2)
    capsys.readouterr()
    train(tiny_config(sample_root, 4, "train.checkpoint_interval=2", "train.lr=0.02"), str(work), resume="auto")
    assert "iteration 2 ran at LR" in capsys.readouterr().out


def test_resume_before_any_validation_says_so(sample_root, tmp_path, capsys):
    work = tmp_path / "w"
    cfg = tiny_config(sample_root, 4, "train.checkpoint_interval=1", "train.val_interval=4")
    train(cfg, str(work), stop_at=1)
    train(cfg, str(work), resume="auto", stop_at=2)
    out = capsys.readouterr().out
    assert "at iteration 1 (no validation yet)" in out and "best mIoU 0.00" not in out


def test_fp16_resume_of_a_run_saved_without_grad_scaler_starts_a_fresh_scaler():
    import torch

    from segkit.training.setup import restore_training_state

    model = torch.nn.Linear(2, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    ckpt = {"optimizer": optimizer.state_dict(), "scaler": {}}  # what amp none/bf16 saves
    scaler = torch.amp.GradScaler("cpu", enabled=True)  # fp16 now
    restore_training_state(optimizer, scaler, ckpt)  # GradScaler.load_state_dict({}) raised here
    assert scaler.get_scale() == torch.amp.GradScaler("cpu").get_scale()
    saved = torch.amp.GradScaler("cpu", init_scale=8.0)
    saved.scale(torch.ones(()))  # the scale tensor exists once used
    restore_training_state(optimizer, scaler, {"optimizer": optimizer.state_dict(), "scaler": saved.state_dict()})
    assert scaler.get_scale() == 8.0
    restore_training_state(optimizer, torch.amp.GradScaler("cpu", enabled=False), ckpt)


def test_resuming_an_unfused_checkpoint_keeps_this_runs_fused_optimizer():
    # checkpoints from before fused CPU optimizers carry fused=None in their param groups
    import torch

    from segkit.training.setup import restore_training_state

    model = torch.nn.Linear(2, 2)
    old = torch.optim.AdamW(model.parameters(), lr=0.1)
    model(torch.ones(1, 2)).sum().backward()
    old.step()
    now = torch.optim.AdamW(model.parameters(), lr=0.1, fused=True)
    restore_training_state(now, torch.amp.GradScaler("cpu", enabled=False), {"optimizer": old.state_dict()})
    assert now.param_groups[0]["fused"] is True
    assert torch.equal(now.state[model.weight]["exp_avg"], old.state[model.weight]["exp_avg"])
    now.step()  # the fused kernel takes the loaded state


def test_resume_and_init_from_load_no_pretrained_backbone_weights(sample_root, tmp_path, capsys):
    # the checkpoint's weights replace them: a file that is not there (or torchvision offline) must not matter
    from segkit.config import ConfigError

    train(tiny_config(sample_root, 1), str(tmp_path / "run"))
    absent = f"model.backbone.pretrained={tmp_path / 'absent.pth'}"
    train(tiny_config(sample_root, 1, absent), str(tmp_path / "init"), init_from=str(tmp_path / "run" / "last.pth"))
    assert "--init-from" in capsys.readouterr().out
    train(tiny_config(sample_root, 2, absent), str(tmp_path / "run"), resume="auto")
    assert load_checkpoint(tmp_path / "run" / "last.pth")["iteration"] == 2
    with pytest.raises(ConfigError, match="absent.pth"):  # a fresh start still loads them
        train(tiny_config(sample_root, 1, absent), str(tmp_path / "fresh"))
