"""What a training run shows: a validation bar instead of a frozen one, an ETA of training time, train.log."""

import tqdm.std

from segkit.training.progress import TrainLogger


def test_validation_shows_its_own_bar_and_stops_the_training_clock(tmp_path, capsys, monkeypatch):
    now = [1000.0]  # tqdm's clock, advanced by hand: a wall-clock bound would flake on a busy machine
    monkeypatch.setattr(tqdm.std, "time", lambda: now[0])
    log = TrainLogger(tmp_path, mode="bar", tensorboard=False)
    log.begin(total=10, start=0)
    for _ in range(3):
        log.step()
        now[0] += 0.01
    for _ in log.track(range(4), "validation"):
        now[0] += 1.0
    log.step()
    elapsed = log.bar.format_dict["elapsed"]
    log.close()
    err = capsys.readouterr().err
    assert "validation" in err and "4/4" in err  # the second bar counted the batches
    assert elapsed < 0.1, f"the 4 s of validation counted as training time ({elapsed:.2f} s)"


def test_log_mode_says_validation_is_running_and_train_log_has_lines_without_bars(tmp_path, capsys):
    log = TrainLogger(tmp_path, mode="log", tensorboard=False)
    log.info("set-up line")
    log.begin(total=10, start=0)
    log.step()
    log.train(1, {"loss": 0.5}, 0.01, 2.0)
    list(log.track([1, 2], "validation"))
    log.close()
    assert "validation: 2 batches" in capsys.readouterr().out
    text = (tmp_path / "train.log").read_text()
    assert "set-up line" in text and "iter 1/10  loss 0.5000" in text and "\r" not in text and "it/s]" not in text


def test_bar_mode_still_writes_iteration_lines_to_train_log(tmp_path):
    log = TrainLogger(tmp_path, mode="bar", tensorboard=False)
    log.begin(total=10, start=0)
    log.step()
    log.train(1, {"loss": 0.25}, 0.01, 2.0)
    log.close()
    assert "iter 1/10  loss 0.2500" in (tmp_path / "train.log").read_text()
