"""The runtime layer: inference stands on it alone, and the eval section's precision is what runs."""

import subprocess
import sys
from pathlib import Path

import torch

from segkit.config import load_config
from segkit.runtime import inference_channels_last, inference_dtype

ROOT = Path(__file__).resolve().parents[1]


def test_predictor_imports_no_training_module():
    code = (
        "import sys, segkit.inference.predictor, segkit.inference.modes\n"
        "bad = [m for m in ('segkit.training.engine', 'segkit.training.losses', 'segkit.training.optim', 'albumentations') if m in sys.modules]\n"
        "print(','.join(bad))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": str(ROOT), "PATH": ""},
    )
    assert out.stdout.strip() == "", f"segkit.inference.predictor pulled in training modules: {out.stdout}"


def test_eval_precision_falls_back_to_training_and_can_differ():
    cpu = torch.device("cpu")
    cfg = load_config(None, ["data.num_classes=2", "train.amp=bf16", "train.channels_last=false"])
    assert inference_dtype(cfg, cpu) is torch.bfloat16 and not inference_channels_last(cfg)  # old checkpoints
    cfg = load_config(None, ["data.num_classes=2", "train.amp=bf16", "eval.amp=none", "eval.channels_last=true"])
    assert inference_dtype(cfg, cpu) is None and inference_channels_last(cfg)


def test_predictor_runs_with_the_eval_sections_precision():
    from segkit.inference.predictor import Predictor
    from segkit.models import build_model

    cfg = load_config(
        None,
        [
            "data.num_classes=2",
            "model.backbone.name=resnet18",
            "model.decoder.name=fcn",
            "train.amp=none",
            "eval.amp=bf16",
            "eval.channels_last=false",
        ],
    )
    predictor = Predictor(build_model(cfg), cfg, {}, device="cpu")
    assert predictor.dtype is torch.bfloat16 and not predictor.channels_last
    assert predictor.predict(torch.zeros(32, 40, 3, dtype=torch.uint8).numpy()).shape == (32, 40)
