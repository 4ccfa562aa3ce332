"""Predictor and tools/infer.py with backend onnxruntime/auto: same masks as eager, the graph exported
once and cached by checkpoint hash, auto's measurement made once per machine."""

import copy
import json
import shutil
import time

import numpy as np
import pytest
import torch

from segkit.data import read_image, read_mask
from segkit.inference import ort_backend
from segkit.inference.predictor import Predictor
from tests.tool_loader import load_tool

pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def checkpoint(camvid_run, tmp_path_factory):
    """A copy of the tiny CamVid checkpoint in its own folder, so the cached graph lands there."""
    folder = tmp_path_factory.mktemp("ort_ckpt")
    return shutil.copy(camvid_run / "last.pth", folder / "last.pth")


@pytest.fixture(scope="module")
def ort_predictor(checkpoint):
    return Predictor.from_checkpoint(checkpoint, device="cpu", backend="onnxruntime")


def test_onnxruntime_masks_agree_with_eager_fp32(ort_predictor, checkpoint, camvid_root):
    eager = Predictor.from_checkpoint(checkpoint, device="cpu")
    eager.dtype = None  # the same precision as the graph: fp32
    assert ort_predictor.backend == "onnxruntime"
    for path in sorted((camvid_root / "test").iterdir())[:3]:
        image = read_image(path)
        mine, want = ort_predictor.predict(image), eager.predict(image)
        assert mine.shape == (360, 480)
        assert (mine == want).mean() >= 0.995


def test_graph_is_cached_by_checkpoint_hash_and_reused(ort_predictor, checkpoint, monkeypatch):
    graph = ort_predictor.model.path
    assert graph.parent == checkpoint.parent
    assert graph.name == f"last.{ort_backend.file_hash(checkpoint)}.{ort_backend.LAYOUT}.onnx"
    monkeypatch.setattr(
        "segkit.exports.model.export_onnx", lambda *a, **k: pytest.fail("exported a cached graph again")
    )
    assert Predictor.from_checkpoint(checkpoint, device="cpu", backend="onnxruntime").model.path == graph
    changed = checkpoint.parent / "other" / "last.pth"
    changed.parent.mkdir()
    changed.write_bytes(checkpoint.read_bytes() + b"\0")  # another checkpoint: another key
    assert ort_backend.cache_stem(changed).name != ort_backend.cache_stem(checkpoint).name


def test_auto_measures_once_per_machine(ort_predictor, checkpoint, monkeypatch):
    first = Predictor.from_checkpoint(checkpoint, device="cpu", backend="auto")
    record_path = checkpoint.parent / f"{ort_backend.cache_stem(checkpoint).name}.auto.json"
    record = json.loads(record_path.read_text())
    assert first.backend == record["backend"] in ("eager", "onnxruntime")
    assert record["backend"] == min(record["seconds"], key=record["seconds"].get)
    monkeypatch.setattr(ort_backend, "race", lambda *a, **k: pytest.fail("measured again on the same machine"))
    assert Predictor.from_checkpoint(checkpoint, device="cpu", backend="auto").backend == first.backend
    record["machine"] = "another CPU"
    record_path.write_text(json.dumps(record))
    monkeypatch.setattr(ort_backend, "race", lambda *a, **k: {"eager": 1.0, "onnxruntime": 2.0})
    assert Predictor.from_checkpoint(checkpoint, device="cpu", backend="auto").backend == "eager"


def test_auto_races_int8_only_where_bench_accepted_it(ort_predictor, checkpoint, monkeypatch):
    stem = ort_backend.cache_stem(checkpoint)
    record = checkpoint.parent / f"{stem.name}.int8.json"
    graph = str(ort_predictor.model.path)  # any runnable graph stands in for the INT8 one here
    raced = []
    monkeypatch.setattr(
        ort_backend,
        "race",
        lambda fns, **k: (
            raced.append(sorted(fns)) or {name: (0.5 if name == "onnxruntime-int8" else 1.0) for name in fns}
        ),
    )
    record.write_text(json.dumps({"accepted": False, "drop": 0.9, "graph": graph}))
    assert Predictor.from_checkpoint(checkpoint, device="cpu", backend="auto").backend != "onnxruntime-int8"
    record.write_text(json.dumps({"accepted": True, "drop": 0.2, "graph": graph}))
    chosen = Predictor.from_checkpoint(checkpoint, device="cpu", backend="auto")
    assert chosen.backend == "onnxruntime-int8" and raced[-1] == ["eager", "onnxruntime", "onnxruntime-int8"]
    record.unlink()


def test_unknown_backend_is_a_plain_error(checkpoint):
    with pytest.raises(ValueError, match="choose one of eager, onnxruntime, auto"):
        Predictor.from_checkpoint(checkpoint, device="cpu", backend="tensorrt")


def test_infer_tool_backend_onnxruntime_writes_the_predictor_masks(
    ort_predictor, checkpoint, camvid_root, tmp_path, capsys
):
    image = sorted((camvid_root / "test").iterdir())[0]
    assert (
        load_tool("infer").main(
            [
                str(image),
                "--checkpoint",
                str(checkpoint),
                "--out",
                str(tmp_path),
                "--backend",
                "onnxruntime",
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    assert "backend: onnxruntime" in capsys.readouterr().out
    assert np.array_equal(read_mask(tmp_path / f"{image.stem}_mask.png"), ort_predictor.predict(image))


def test_export_int8_is_a_quantized_graph_with_the_metadata(checkpoint, tmp_path, capsys):
    import onnx

    out = tmp_path / "model.int8.onnx"
    assert (
        load_tool("export").main([str(checkpoint), "--format", "onnx", "--int8", "--calibrate", "2", "--out", str(out)])
        == 0
    )
    printed = capsys.readouterr().out
    assert "calibrated on 2 training image(s)" in printed and "argmax agreement" in printed
    proto = onnx.load(str(out))
    assert any(node.op_type == "QuantizeLinear" for node in proto.graph.node)
    assert "segkit.class_names" in {p.key for p in proto.metadata_props}
    logits = ort_backend.OnnxModel(out)(torch.zeros(1, 3, 96, 128))["out"]
    assert logits.shape == (1, 11, 96, 128)


def test_export_int8_bad_requests_are_one_line_errors(checkpoint, tmp_path, capsys):
    export = load_tool("export")
    assert export.main([str(checkpoint), "--format", "torchscript", "--int8"]) == 2
    assert "use --format onnx" in capsys.readouterr().err
    assert export.main([str(checkpoint), "--format", "onnx", "--int8", "--data-root", str(tmp_path)]) == 2
    assert "--data-root" in capsys.readouterr().err


def test_auto_races_at_the_size_the_model_will_be_fed():
    # timed at the training crop while the images run at eval.resize, eager bf16 lost a race it wins
    from types import SimpleNamespace

    from segkit.inference.predictor import race_size

    cfg = SimpleNamespace(data=SimpleNamespace(crop_size=(224, 288)))
    assert race_size({"mode": "whole", "resize": [240, 320]}, cfg) == [240, 320]
    assert race_size({"mode": "whole", "resize": None}, cfg) == [224, 288]
    assert race_size({"mode": "slide", "crop": [512, 512], "resize": [240, 320]}, cfg) == [512, 512]


class _Sleepy(torch.nn.Module):
    """A pointwise model that takes ``pause`` seconds per forward pass."""

    def __init__(self, pause: float):
        super().__init__()
        torch.manual_seed(0)
        self.conv, self.pause = torch.nn.Conv2d(3, 11, 1), pause

    def forward(self, x):
        time.sleep(self.pause)
        return {"out": self.conv(x)}


def test_auto_in_the_tool_keeps_the_backend_fastest_through_the_whole_loop(ort_predictor, tmp_path):
    """The issue's case: "quick" is faster per call but makes the caller's own work slower (as onnxruntime's
    spinning threads slowed reading and writing); timed through the loop, "steady" is kept, and remembered."""
    predictor = copy.copy(ort_predictor)
    predictor.candidates = {"steady": (_Sleepy(0.02), None, False), "quick": (_Sleepy(0.0), None, False)}
    predictor.auto_stem = tmp_path / "model.abc"
    predictor.use_backend("quick")
    images = [np.full((32, 48, 3), i, np.uint8) for i in range(14)]
    masks = []
    for mask in predictor.predict_many(images, batch_size=2, race=True):
        if predictor.backend == "quick":
            time.sleep(0.1)  # the consumer's writing, slowed while "quick" runs
        masks.append(mask)
    assert len(masks) == 14 and predictor.backend == "steady"
    record = json.loads((tmp_path / "model.abc.pipeline.json").read_text())
    assert record["backend"] == "steady" and set(record["seconds"]) == {"steady", "quick"}
    predictor.use_backend("quick")
    list(predictor.predict_many(images[:2], batch_size=2, race=True))  # remembered: no second race
    assert predictor.backend == "steady"
