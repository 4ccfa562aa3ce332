"""train.time_budget: the schedule spans the iterations that fit, and the run ends with a validation and a checkpoint."""

import pytest

from segkit.checkpoint import load_checkpoint
from segkit.config import ConfigError
from segkit.training import budget as budget_module
from segkit.training.budget import WARMUP_STEPS, TimeBudget, parse_duration
from segkit.training.engine import train
from tests.eval_oracle import reference_scores
from tests.train_helpers import read_log, tiny_config


def test_durations_parse_and_bad_ones_name_the_key():
    assert parse_duration("4m") == 240 and parse_duration("30s") == 30 and parse_duration("1h30m") == 5400
    assert parse_duration("90") == 90 and parse_duration(2.5) == 2.5
    for bad in ("4 minutes", "m", "0s", "-3s"):
        with pytest.raises(ConfigError, match="train.time_budget"):
            parse_duration(bad)


def test_budget_skips_warm_up_steps_and_fits_the_rest():
    b = TimeBudget(seconds=100.0, start=0, cap=10_000)
    fitted = [b.observe(i + 1, 5.0 if i < WARMUP_STEPS else 1.0) for i in range(WARMUP_STEPS + 5)]
    # warm-up: 3 x 5 s; then 1 s steps until 5 s (5% of the budget) are measured at iteration 8
    assert fitted[:-1] == [None] * (WARMUP_STEPS + 4) and b.step_seconds == 1.0
    assert fitted[-1] == 8 + (100 - 15 - 5)  # what remains, at the measured speed
    assert b.observe(9, 1.0) is None  # fixed once
    assert TimeBudget(100.0, 0, cap=50).observe(1, 1.0) is None
    capped = TimeBudget(100.0, 0, cap=50)
    assert [capped.observe(i + 1, 1.0) for i in range(8)][-1] == 50  # train.iterations bounds it


def test_a_slow_start_is_re_measured_at_a_quarter_and_half_of_the_budget():
    b = TimeBudget(seconds=100.0, start=0, cap=10_000)
    fits = [b.observe(i + 1, 2.0) for i in range(WARMUP_STEPS + 3)]  # the machine is busy at first: 2 s steps
    first = fits[-1]
    assert first == 6 + (100 - 12) // 2  # 44 iterations in what remains at 2 s each
    done, spent, moved = 6, 12.0, []
    while spent < 60:  # then it is free again: 0.5 s steps
        done, spent = done + 1, spent + 0.5
        fitted = b.observe(done, 0.5)
        if fitted is not None:
            moved.append((done, fitted))
    # at 25 s spent (iteration 32) the steps since the fit took 0.5 s: 75 s left fit 150 more
    assert moved[0] == (32, 32 + 150) and moved[0][1] > first
    assert len(moved) == 1  # at 50 s the speed is unchanged: the span stays
    steady = TimeBudget(seconds=100.0, start=0, cap=10_000)
    assert [f for i in range(80) if (f := steady.observe(i + 1, 1.0)) is not None] == [100]  # fixed once, never moved


def _one_second_steps(monkeypatch) -> list:
    """Pretend every step takes 1 s, so a 10 s budget fits a known number of iterations; returns the fits."""
    fits = []
    observe = TimeBudget.observe

    def recording(self, done, seconds):
        fitted = observe(self, done, 1.0)
        if fitted is not None:
            fits.append(fitted)
        return fitted

    monkeypatch.setattr(budget_module.TimeBudget, "observe", recording)
    return fits


def test_budget_run_ends_with_validation_and_checkpoint_and_schedule_spans_the_fit(
    sample_root, tmp_path, monkeypatch, capsys
):
    fits = _one_second_steps(monkeypatch)
    cfg = tiny_config(
        sample_root,
        1000,
        "train.time_budget=10s",
        "train.val_interval=1000",
        "train.checkpoint_interval=1000",
        "train.warmup_iters=0",
    )
    results = train(cfg, str(tmp_path))
    assert fits == [10]  # measured 1 s steps after the warm-up: 10 s hold 10 iterations
    ckpt = load_checkpoint(tmp_path / "last.pth")
    assert ckpt["iteration"] == 10 and ckpt["scheduler"]["iterations"] == 10
    records = read_log(tmp_path)
    assert [r["iter"] for r in records if "val" in r] == [10]
    # the closing validation is of the model it saved: its mIoU is the one logged and the one the checkpoint gets
    logged = [r["val"]["mIoU"] for r in records if "val" in r][0]
    assert results["mIoU"] == logged == pytest.approx(reference_scores(tmp_path / "last.pth")["mIoU"], abs=1e-12)
    lrs = [r["lr"] for r in records if "lr" in r]
    assert lrs[-1] == pytest.approx(
        cfg.train.lr * (1 - 9 / 10) ** cfg.train.poly_power + 1e-4 * (1 - (1 - 9 / 10) ** 0.9), rel=1e-3
    )
    assert "schedule spans 10 iterations" in capsys.readouterr().out


def test_a_resumed_budget_run_keeps_the_span_it_fixed(sample_root, tmp_path, monkeypatch, capsys):
    fits = _one_second_steps(monkeypatch)
    cfg = tiny_config(
        sample_root, 1000, "train.time_budget=10s", "train.val_interval=1000", "train.checkpoint_interval=1000"
    )
    train(cfg, str(tmp_path), stop_at=8)
    assert fits == [10] and load_checkpoint(tmp_path / "last.pth")["scheduler"]["iterations"] == 10
    capsys.readouterr()
    train(cfg, str(tmp_path), resume="auto")
    assert fits == [10] and "time budget" not in capsys.readouterr().out  # not measured again
    assert load_checkpoint(tmp_path / "last.pth")["iteration"] == 10
