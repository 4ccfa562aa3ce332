"""The training loop's pieces: LR schedule, parameter groups, data stream, accumulation, clipping,
CPU bf16, init-from, and what a run leaves in its work dir."""

import re

import numpy as np
import pytest
import torch

from segkit.checkpoint import load_checkpoint, model_from_checkpoint
from segkit.config import load_config
from segkit.data.loaders import TrainSampler
from segkit.models import build_model
from segkit.runtime import seed_everything
from segkit.training.engine import train
from segkit.training.optim import build_optimizer, lr_factor
from tests.train_helpers import read_log, tiny_config


def test_lr_warmup_then_poly_to_min_lr():
    t = load_config(
        None,
        [
            "data.num_classes=2",
            "train.iterations=100",
            "train.lr=0.1",
            "train.warmup_iters=10",
            "train.warmup_ratio=0.1",
            "train.poly_power=1.0",
            "train.min_lr=0.001",
        ],
    ).train
    assert lr_factor(0, t) == pytest.approx(0.1)  # warm-up starts at warmup_ratio
    assert lr_factor(5, t) == pytest.approx((0.55) * (0.01 + 0.99 * 0.95))
    assert lr_factor(10, t) == pytest.approx(0.01 + 0.99 * 0.9)  # warm-up over: pure poly
    assert lr_factor(100, t) == pytest.approx(0.01)  # min_lr / lr at the end
    factors = [lr_factor(i, t) for i in range(10, 101)]
    assert all(a > b for a, b in zip(factors, factors[1:]))


def test_param_groups_backbone_lr_and_no_decay():
    cfg = load_config(
        None,
        [
            "data.num_classes=3",
            "model.backbone.name=resnet18",
            "train.lr=0.1",
            "train.backbone_lr_mult=0.1",
            "train.no_decay_norm_bias=true",
            "train.weight_decay=0.01",
        ],
    )
    model = build_model(cfg)
    groups = build_optimizer(cfg, model).param_groups
    by_id = {id(p): g for g in groups for p in g["params"]}
    assert by_id[id(model.backbone.conv1.weight)]["lr"] == pytest.approx(0.01)
    assert by_id[id(model.backbone.conv1.weight)]["weight_decay"] == 0.01
    assert by_id[id(model.backbone.bn1.weight)]["weight_decay"] == 0.0
    head = [p for n, p in model.decoder.named_parameters() if p.ndim == 4][-1]
    assert by_id[id(head)]["lr"] == pytest.approx(0.1)
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))
    adamw = build_optimizer(
        load_config(None, ["data.num_classes=3", "model.backbone.name=resnet18", "train.optimizer=adamw"]), model
    )
    assert isinstance(adamw, torch.optim.AdamW)


@pytest.mark.parametrize("name", ["sgd", "adamw"])
def test_cpu_optimizer_is_fused_and_steps_like_the_for_loop(name):
    cfg = load_config(
        None,
        [
            "data.num_classes=3",
            "model.backbone.name=resnet18",
            f"train.optimizer={name}",
            "train.no_decay_norm_bias=true",
            "train.weight_decay=0.01",
            "train.lr=0.05",
        ],
    )
    torch.manual_seed(0)
    fused_model = build_model(cfg)
    loop_model = build_model(cfg)
    loop_model.load_state_dict(fused_model.state_dict())
    fused = build_optimizer(cfg, fused_model)
    assert all(g["fused"] for g in fused.param_groups)  # one pass over all parameters on the CPU too
    cls = torch.optim.SGD if name == "sgd" else torch.optim.AdamW
    extra = {"momentum": cfg.train.momentum} if name == "sgd" else {}
    loop = cls(
        [
            {
                **g,
                "params": [
                    dict(loop_model.named_parameters())[n]
                    for n, q in fused_model.named_parameters()
                    if any(q is r for r in g["params"])
                ],
                "fused": False,
                "foreach": False,
            }
            for g in fused.param_groups
        ],
        lr=cfg.train.lr,
        **extra,
    )
    for step in range(3):
        for model, opt in ((fused_model, fused), (loop_model, loop)):
            torch.manual_seed(step)
            for q in model.parameters():
                q.grad = torch.randn_like(q)
            opt.step()
    for (n, a), b in zip(fused_model.named_parameters(), loop_model.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=n)


def test_train_sampler_resumes_mid_epoch_and_shards():
    full = TrainSampler(10, batch_size=2, seed=3)
    stream = [next(it) for it in [iter(full)] for _ in range(25)]  # 2.5 epochs of 5 batches
    later = iter(TrainSampler(10, batch_size=2, seed=3, start_batch=7))
    assert [next(later) for _ in range(11)] == stream[14:25]
    assert sorted(i for i, _ in stream[:10]) == list(range(10))  # an epoch is a permutation
    assert [i for i, _ in stream[:10]] != [i for i, _ in stream[10:20]]  # reshuffled each epoch
    assert len({s for _, s in stream}) == 25  # every sample draw has its own augmentation seed
    rank0, rank1 = (TrainSampler(11, 2, 3, rank=r, world_size=2).epoch(0)[0] for r in (0, 1))
    assert len(rank0) == len(rank1) == 4 and not set(rank0) & set(rank1)


def test_accumulation_equals_one_bigger_batch(sample_root, tmp_path):
    """Two accumulated batches of 2 = one batch of 4 (GroupNorm and no dropout, so nothing else differs)."""
    common = [
        "model.backbone.norm=gn",
        "model.backbone.norm_groups=16",
        "model.decoder.dropout=0",
        "train.deterministic=true",
    ]
    a = train(tiny_config(sample_root, 2, "train.batch_size=2", "train.accumulate=2", *common), str(tmp_path / "a"))
    b = train(tiny_config(sample_root, 2, "train.batch_size=4", *common), str(tmp_path / "b"))
    wa, wb = (load_checkpoint(tmp_path / d / "last.pth")["model"] for d in "ab")
    for k in wa:
        assert torch.allclose(wa[k], wb[k], atol=1e-5, rtol=1e-4), k
    assert a["mIoU"] == pytest.approx(b["mIoU"], abs=1e-3)


def test_clip_grad_bounds_the_update(sample_root, tmp_path):
    lr, clip = 0.5, 1e-3
    cfg = tiny_config(
        sample_root,
        1,
        f"train.lr={lr}",
        f"train.clip_grad={clip}",
        "train.momentum=0",
        "train.weight_decay=0",
        "train.warmup_iters=0",
    )
    train(cfg, str(tmp_path))
    seed_everything(cfg.train.seed)
    model = build_model(cfg)  # as the run started
    before = model.state_dict()
    after = load_checkpoint(tmp_path / "last.pth")["model"]
    step = torch.cat([(after[k] - before[k]).flatten() for k, _ in model.named_parameters()])
    assert 0 < step.norm() <= lr * clip * 1.001


def test_cpu_bf16_autocast_trains_and_saves_fp32(sample_root, tmp_path):
    results = train(tiny_config(sample_root, 2, "train.amp=bf16", "train.device=cpu"), str(tmp_path))
    assert np.isfinite(results["mIoU"])
    ckpt = load_checkpoint(tmp_path / "last.pth")
    assert all(v.dtype in (torch.float32, torch.int64) for v in ckpt["model"].values())
    records = read_log(tmp_path)
    assert all(np.isfinite(r["loss"]) for r in records if "loss" in r)


def test_run_leaves_a_complete_work_dir(sample_root, tmp_path, capsys):
    results = train(
        tiny_config(
            sample_root,
            4,
            "train.checkpoint_interval=1",
            "train.val_interval=2",
            "train.keep_last=2",
            "model.aux_head=true",
            "train.tensorboard=true",
        ),
        str(tmp_path),
    )
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [
        "best.pth",
        "config.yaml",
        "curves.png",
        "iter_0000003.pth",
        "iter_0000004.pth",
        "last.pth",
        "metrics.jsonl",
        "tb",
        "train.log",
    ]
    assert list((tmp_path / "tb").glob("events.out.tfevents.*"))
    ckpt = load_checkpoint(tmp_path / "last.pth")
    assert ckpt["iteration"] == 4 and ckpt["best_score"] == max(ckpt["best_score"], results["mIoU"])
    assert {"model", "optimizer", "scaler", "scheduler", "config", "meta", "rng", "best_iteration"} <= set(ckpt)
    assert ckpt["meta"]["class_names"][0] == "background" and len(ckpt["meta"]["palette"]) == 6
    best = load_checkpoint(tmp_path / "best.pth")
    assert best["iteration"] == best["best_iteration"] and best["optimizer"]["state"]  # resumable
    records = read_log(tmp_path)
    assert [r["iter"] for r in records if "loss" in r] == [1, 2, 3, 4]
    assert {"loss", "ce", "aux_ce", "lr", "it_per_s"} <= set(records[0])
    assert [r["iter"] for r in records if "val" in r] == [2, 4]
    out = capsys.readouterr().out
    assert "iter 4/4" in out and "eta" in out and "mIoU" in out and "curves.png" in out
    text = (tmp_path / "train.log").read_text()  # the terminal's lines, kept in the work dir
    for line in ("training ", "iter 4/4", "validation at iteration 2:", "done: iteration 4/4"):
        assert line in text and line in out
    model, _, _ = model_from_checkpoint(tmp_path / "best.pth")
    assert not model.training


def test_init_from_another_class_count(sample_root, tmp_path, capsys):
    train(tiny_config(sample_root, 1), str(tmp_path / "six"))
    cfg = tiny_config(sample_root, 1, "data.num_classes=7", "data.class_names=[]", "train.lr=0")
    train(cfg, str(tmp_path / "seven"), init_from=str(tmp_path / "six" / "last.pth"))
    out = capsys.readouterr().out
    assert re.search(
        r"skipped decoder\.\S+: checkpoint \(6, \d+, 1, 1\) vs model \(7, \d+, 1, 1\) \(re-initialised\)", out
    )
    six, seven = (load_checkpoint(tmp_path / d / "last.pth")["model"] for d in ("six", "seven"))
    assert torch.equal(six["backbone.conv1.weight"], seven["backbone.conv1.weight"])  # lr=0 keeps what was loaded
    head = [k for k in six if six[k].shape != seven[k].shape]
    assert head and all(seven[k].shape[0] == 7 for k in head)


def test_aux_head_of_weight_zero_neither_runs_nor_trains(sample_root, tmp_path):
    from segkit.models import build_model

    cfg = tiny_config(sample_root, 2, "model.aux_head=true", "loss.aux_weight=0")
    train(cfg, str(tmp_path))
    seed_everything(cfg.train.seed)  # the same seed builds the same initial weights
    before = build_model(cfg).state_dict()
    after = load_checkpoint(tmp_path / "last.pth")["model"]
    aux = [k for k in after if k.startswith("aux_head.") and after[k].is_floating_point()]
    assert aux and all(torch.equal(before[k], after[k]) for k in aux)
    optimized = sum(len(g["params"]) for g in load_checkpoint(tmp_path / "last.pth")["optimizer"]["param_groups"])
    model = build_model(cfg)
    assert optimized == sum(1 for n, p in model.named_parameters() if not n.startswith("aux_head."))
    model.use_aux = False
    assert set(model.train()(torch.zeros(2, 3, 64, 64))) == {"out"}
