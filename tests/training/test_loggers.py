"""train.loggers: TensorBoard (with validation overlays), and MLflow / W&B tested with the real thing: a real
`mlflow server` started here, W&B in offline mode read back from its own files. Train a few iterations,
resume for a few more: one run, continued."""

from __future__ import annotations

import glob
import json
import os
import socket
import struct
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch

from segkit.checkpoint import load_checkpoint
from segkit.errors import ConfigError, MissingDependency
from segkit.training.engine import train
from segkit.training.loggers import Loggers, flatten, validation_overlays
from tests.train_helpers import tiny_config


def test_flatten_and_unknown_logger():
    assert flatten({"train": {"lr": 0.01, "loggers": ["mlflow"]}, "name": "x"}) == {
        "train.lr": "0.01",
        "train.loggers": "['mlflow']",
        "name": "x",
    }
    with pytest.raises(ConfigError, match="unknown logger 'mlfow'; choose from tensorboard, mlflow, wandb"):
        Loggers(["mlfow"], print)


class _BandsSet:
    """One validation sample as the data set hands it after #20: float32 0..1 units or uint16, any band count."""

    palette, num_classes, pairs = [[255, 0, 0], [0, 255, 0]], 2, [("scene.tif", "scene.png")]

    def __init__(self, image: np.ndarray):
        self.image = image

    def __len__(self):
        return 1

    def __getitem__(self, index):
        mask = torch.zeros(self.image.shape[:2], dtype=torch.int64)
        mask[:, : self.image.shape[1] // 2] = 1
        return {"image": torch.from_numpy(self.image).permute(2, 0, 1), "mask": mask}


class _AllClassZero(torch.nn.Module):
    def forward(self, x):
        logits = torch.zeros(x.shape[0], 2, *x.shape[2:])
        logits[:, 0] = 1
        return logits


@pytest.mark.parametrize("bands, dtype", [(4, np.float32), (3, np.float32), (1, np.uint16)])
def test_validation_overlays_of_deep_and_multiband_images_are_8bit_rgb(bands, dtype):
    # was: the raw sample went into the picture: 4 bands crashed every validation (broadcast against
    # the RGB class colours) while TensorBoard, the default logger, was on; float 0..1 images came out black
    from segkit.data.normalize import to_display

    rng = np.random.default_rng(0)
    image = rng.random((16, 20, bands), dtype=np.float32)
    if dtype == np.uint16:
        image = (image * 4095).astype(np.uint16)
    pictures = validation_overlays(_AllClassZero(), _BandsSet(image), lambda x: x.float(), torch.device("cpu"), None)
    picture = pictures["val/overlay/scene"]
    assert picture.dtype == np.uint8 and picture.shape == (16, 60, 3)
    shown = to_display(image).astype(np.uint16)
    assert shown.max() > 200  # stretched to the 8-bit range, not 0..1 truncated to black
    np.testing.assert_array_equal(picture[:, :20], shown)
    red, green = np.array([255, 0, 0]), np.array([0, 255, 0])
    np.testing.assert_array_equal(picture[:, 40:], (shown + red) // 2)  # the prediction: class 0 everywhere
    np.testing.assert_array_equal(picture[:, 20:30], (shown[:, :10] + green) // 2)  # the truth: class 1 on the left


def test_a_missing_extra_stops_the_run_before_training(sample_root, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)  # as if not installed: `import wandb` raises ImportError
    with pytest.raises(MissingDependency, match=r"segkit\[wandb\]"):
        train(tiny_config(sample_root, 2, "train.loggers=[wandb]"), str(tmp_path / "work"))
    assert not (tmp_path / "work" / "last.pth").exists()


def test_tensorboard_gets_scalars_and_validation_overlays(sample_root, tmp_path):
    pytest.importorskip("tensorboard", reason="tensorboard is the optional extra segkit[tensorboard]")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    work = tmp_path / "work"
    train(tiny_config(sample_root, 2, "train.tensorboard=true", "train.val_interval=2"), str(work))
    events = EventAccumulator(str(work / "tb"), size_guidance={"images": 0}).Reload()
    images = events.Tags()["images"]
    assert len(images) == 3 and all(t.startswith("val/overlay/val_") for t in images)
    shot = events.Images(images[0])[0]
    assert shot.step == 2 and shot.width == 3 * shot.height  # image | truth | prediction
    assert [s.step for s in events.Scalars("val/mIoU")] == [2] and "train/lr" in events.Tags()["scalars"]
    assert not (work / "val_overlays").exists()  # files only for loggers that upload them


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def mlflow_server(tmp_path):
    pytest.importorskip("mlflow", reason="the MLflow logger is the optional extra segkit[mlflow]")
    store, port = tmp_path / "server", free_port()
    store.mkdir()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--backend-store-uri",
            f"sqlite:///{store / 'mlflow.db'}",
            "--artifacts-destination",
            str(store / "artifacts"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],  # fmt: skip
        cwd=store,
        stdout=subprocess.DEVNULL,
        stderr=open(store / "server.log", "w"),
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(240):
            try:
                urllib.request.urlopen(f"{url}/health", timeout=2)
                break
            except OSError:
                if proc.poll() is not None:
                    pytest.fail(f"mlflow server exited: {(store / 'server.log').read_text()[-2000:]}")
                time.sleep(0.5)
        else:
            pytest.fail("mlflow server did not answer in 2 minutes")
        yield url, store
    finally:
        proc.terminate()
        proc.wait(30)


@pytest.mark.slow
def test_mlflow_run_continues_on_resume_and_holds_config_metrics_and_files(
    mlflow_server, sample_root, tmp_path, monkeypatch
):
    from mlflow import MlflowClient

    url, store = mlflow_server
    monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "segkit-test")
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    work = tmp_path / "work"
    cfg = tiny_config(sample_root, 4, "train.loggers=[mlflow]", "train.val_interval=2", "train.checkpoint_interval=2")
    train(cfg, str(work), stop_at=2)
    first = load_checkpoint(work / "last.pth")["loggers"]["mlflow"]
    train(cfg, str(work), resume="auto")
    assert load_checkpoint(work / "last.pth")["loggers"]["mlflow"] == first

    client = MlflowClient(url)
    experiment = client.get_experiment_by_name("segkit-test")
    runs = client.search_runs([experiment.experiment_id])
    assert [r.info.run_id for r in runs] == [first]
    run = runs[0]
    assert run.info.status == "FINISHED"
    assert [m.step for m in client.get_metric_history(first, "val/mIoU")] == [2, 4]
    assert [m.step for m in client.get_metric_history(first, "train/loss")] == [1, 2, 3, 4]
    val = [json.loads(line) for line in (work / "metrics.jsonl").read_text().splitlines() if '"val"' in line]
    assert [m.value for m in client.get_metric_history(first, "val/mIoU")] == [r["val"]["mIoU"] for r in val]
    assert run.data.params["train.lr"] == "0.01" and run.data.params["train.iterations"] == "4"
    assert run.data.params["data.root"] == str(sample_root)
    assert run.data.tags["segkit.version"] and run.data.tags["machine"] == socket.gethostname()
    assert any(k.startswith("val/IoU/") for k in run.data.metrics)
    top = {a.path for a in client.list_artifacts(first)}
    assert {"config.yaml", "curves.png", "val_overlays"} <= top and "best.pth" not in top
    assert client.list_artifacts(first, "val_overlays")
    # the server's store is the only place it went
    assert list(cwd.iterdir()) == []
    assert not list(work.glob("mlruns")) and not list(work.glob("mlflow.db"))
    assert any((store / "artifacts").rglob("curves.png"))


@pytest.mark.slow
def test_an_unreachable_mlflow_server_is_one_warning_and_training_goes_on(sample_root, tmp_path, monkeypatch, capsys):
    pytest.importorskip("mlflow", reason="the MLflow logger is the optional extra segkit[mlflow]")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{free_port()}")  # nothing listens there
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.chdir(tmp_path)
    work = tmp_path / "work"
    results = train(tiny_config(sample_root, 2, "train.loggers=[mlflow]"), str(work))
    out = capsys.readouterr().out
    assert out.count("the mlflow logger failed") == 1 and "training goes on without it" in out
    assert results["mIoU"] >= 0 and (work / "last.pth").is_file()


def wandb_records(run_dir: Path) -> list:
    """(type, {key: value}) of each run, summary, config and history record of a W&B run's .wandb file: a
    LevelDB-style log (a 7-byte ':W&B' header, 32 KiB blocks of chunks with a 7-byte header: CRC, length,
    type 1 full / 2 first / 3 middle / 4 last) of wandb's protobuf Records."""
    from wandb.proto import wandb_internal_pb2

    (path,) = run_dir.glob("*.wandb")
    data, block, pos, chunk, found = path.read_bytes(), 32768, 7, b"", []
    assert data[:4] == b":W&B"
    while pos + 7 <= len(data):
        left = block - pos % block
        _, length, kind = struct.unpack("<IHB", data[pos : pos + 7]) if left >= 7 else (0, 0, 0)
        if kind == 0:  # the zero padding at a block's end
            pos += left
            continue
        chunk += data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(chunk)
            chunk, what = b"", record.WhichOneof("record_type")
            items = {
                "history": lambda r: r.history.item,
                "summary": lambda r: r.summary.update,
                "config": lambda r: r.config.update,
                "run": lambda r: r.run.config.update,
            }.get(what)
            if items is not None:
                found.append((what, {i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in items(record)}))
    return found


@pytest.mark.slow
def test_wandb_offline_run_continues_on_resume(sample_root, tmp_path, monkeypatch):
    pytest.importorskip("wandb", reason="the W&B logger is the optional extra segkit[wandb]")
    for var in ("WANDB_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR", "WANDB_CONFIG_DIR", "WANDB_ARTIFACT_DIR"):
        (tmp_path / var).mkdir()
        monkeypatch.setenv(var, str(tmp_path / var))
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_PROJECT", "segkit-test")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.chdir(tmp_path)
    work = tmp_path / "work"
    cfg = tiny_config(sample_root, 4, "train.loggers=[wandb]", "train.val_interval=2", "train.checkpoint_interval=2")
    train(cfg, str(work), stop_at=2)
    run_id = load_checkpoint(work / "last.pth")["loggers"]["wandb"]
    train(cfg, str(work), resume="auto")
    assert load_checkpoint(work / "last.pth")["loggers"]["wandb"] == run_id

    runs = sorted(Path(p) for p in glob.glob(str(tmp_path / "WANDB_DIR" / "wandb" / "offline-run-*")))
    assert len(runs) == 2 and all(p.name.endswith(f"-{run_id}") for p in runs)  # one run id, two sessions
    records = [r for run in runs for r in wandb_records(run)]
    val = [json.loads(line) for line in (work / "metrics.jsonl").read_text().splitlines() if '"val"' in line]
    summary = [values for what, values in records if what == "summary" and "val/mIoU" in values][-1]
    assert summary["val/mIoU"] == val[-1]["val"]["mIoU"]
    config = {k: v for what, values in records if what in ("run", "config") for k, v in values.items()}
    assert config["train.lr"] == "0.01" and config["train.loggers"] == "['wandb']"
    history = [values for what, values in records if what == "history"]
    assert [row["_step"] for row in history if "val/mIoU" in row] == [2, 4]
    assert [row["val/mIoU"] for row in history if "val/mIoU" in row] == [r["val"]["mIoU"] for r in val]
    assert any(k.startswith("val/overlay/") for row in history for k in row)
    assert not (tmp_path / "wandb").exists() and os.listdir(tmp_path / "WANDB_DIR") == ["wandb"]
