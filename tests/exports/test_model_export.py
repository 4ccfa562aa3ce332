"""Exported models (ONNX in onnxruntime, TorchScript) match PyTorch at two sizes; COCO export round-trips."""

import json

import numpy as np
import pytest
import torch

from segkit.annotations.coco import CocoExport, decode_coco
from segkit.checkpoint import model_from_checkpoint
from segkit.exports.model import export_onnx, verify
from tests.tool_loader import load_tool


def test_onnx_export_matches_pytorch_in_onnxruntime_at_two_sizes(camvid_run, tmp_path, capsys):
    ort = pytest.importorskip("onnxruntime")
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxscript")
    out = tmp_path / "model.onnx"
    assert (
        load_tool("export").main(
            [str(camvid_run / "last.pth"), "--format", "onnx", "--out", str(out), "--size", "96", "128"]
        )
        == 0
    )
    assert "max |logit difference|" in capsys.readouterr().out
    model, _, meta = model_from_checkpoint(camvid_run / "last.pth")
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    for shape in ((1, 3, 96, 128), (2, 3, 75, 101)):  # neither is the traced size's multiple
        x = torch.randn(*shape)
        with torch.no_grad():
            want = model(x)["out"].numpy()
        got = session.run(None, {"image": x.numpy()})[0]
        assert got.shape == want.shape == (shape[0], 11, *shape[2:])
        np.testing.assert_allclose(got, want, atol=1e-4, rtol=0)
    props = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert json.loads(props["segkit.class_names"]) == meta["class_names"]


@pytest.mark.filterwarnings("ignore:.*torch.jit.load:FutureWarning")
def test_torchscript_export_has_dynamic_sizes_and_carries_meta(camvid_run, tmp_path):
    model, _, meta = model_from_checkpoint(camvid_run / "last.pth")
    assert (
        load_tool("export").main(
            [
                str(camvid_run / "last.pth"),
                "--format",
                "torchscript",
                "--out",
                str(tmp_path / "m.pt"),
                "--size",
                "64",
                "96",
                "--no-verify",
            ]
        )
        == 0
    )
    assert verify(tmp_path / "m.pt", model, ((64, 96), (45, 77))) < 1e-4
    extra = {"segkit_meta.json": ""}
    torch.jit.load(str(tmp_path / "m.pt"), _extra_files=extra)
    assert json.loads(extra["segkit_meta.json"])["mean"] == meta["mean"]


@pytest.mark.slow
def test_legacy_onnx_exporter_has_dynamic_sizes(camvid_run, tmp_path):
    pytest.importorskip("onnxruntime")
    model, _, meta = model_from_checkpoint(camvid_run / "last.pth")
    path = export_onnx(model, tmp_path / "legacy.onnx", meta, (64, 96), dynamo=False)
    assert verify(path, model, ((64, 96), (45, 77))) < 1e-4


def test_export_refuses_a_foreign_checkpoint(tmp_path, capsys):
    torch.save({"state_dict": {}}, tmp_path / "other.pth")
    assert load_tool("export").main([str(tmp_path / "other.pth"), "--format", "onnx"]) == 2
    assert "not a segkit checkpoint" in capsys.readouterr().err


def test_coco_export_round_trips_with_pycocotools(tmp_path):
    rng = np.random.default_rng(0)
    masks = {"a.png": rng.integers(0, 4, (30, 41)), "b.png": np.full((12, 9), 2)}
    coco = CocoExport(["w", "x", "y", "z", "unused"])
    for name, mask in masks.items():
        coco.add(name, mask, confidence=np.full(mask.shape, 0.5, np.float32))
    path = coco.save(tmp_path / "c.json")
    data = json.loads(path.read_text())
    assert [c["id"] for c in data["categories"]] == [1, 2, 3, 4, 5]
    assert len(data["annotations"]) == 4 + 1  # one per (image, class present)
    for name, mask in masks.items():
        assert np.array_equal(decode_coco(path, name), mask)


@pytest.mark.parametrize("dynamo", [True, False])
def test_unet_exports_resize_at_odd_sizes(tmp_path, dynamo):
    # U-Net's logits are the input size only when it is even: a graph captured at an even size must keep the
    # final resize (segkit.models.segmenter.to_size skips it only in eager mode)
    pytest.importorskip("onnxruntime")
    if dynamo:
        pytest.importorskip("onnxscript")
    from segkit.config import load_config
    from segkit.models import build_model

    cfg = load_config(
        None,
        [
            "model.decoder.name=unet",
            "model.backbone.name=resnet18",
            "model.backbone.output_stride=32",
            "data.num_classes=3",
        ],
    )
    model = build_model(cfg).eval()
    path = export_onnx(model, tmp_path / "unet.onnx", {"class_names": ["a", "b", "c"]}, (64, 96), dynamo=dynamo)
    assert verify(path, model, ((64, 96), (45, 77))) < 1e-4
    from segkit.exports.model import LogitsOnly

    with torch.no_grad():
        traced = torch.jit.trace(LogitsOnly(model).eval(), torch.randn(1, 3, 64, 96))
        assert traced(torch.randn(1, 3, 45, 77)).shape == (1, 3, 45, 77)
