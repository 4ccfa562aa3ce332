"""Every shipped config file loads and builds; tools/model_info.py reports on one."""

import warnings
from functools import lru_cache
from pathlib import Path

import pytest
import torch

from segkit.config import load_config
from segkit.models import build_model
from segkit.models.info import count_parameters
from tests.tool_loader import load_tool
from tests.train_helpers import ROOT

CONFIGS = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "configs").rglob("*.yaml"))
EXPERIMENTS = [p for p in CONFIGS if "/_base/" not in p]


@lru_cache(maxsize=None)  # read-only use below; loading is the slow part of these tests
def _load(path):
    overrides = ["model.backbone.pretrained=null"]  # no weights download in tests
    if "/_base/models/" in path:
        overrides.append("data.num_classes=2")  # a model base names no data set
    return load_config(ROOT / path, overrides)


@pytest.mark.parametrize("path", CONFIGS)
def test_config_loads_and_builds(path):
    cfg = _load(path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a shipped config builds without complaint
        with torch.device("meta"):  # every module is constructed; no time spent initialising weights
            model = build_model(cfg)
    assert model.decoder is not None and model.num_classes == cfg.data.num_classes


def test_every_data_set_has_every_model_and_names_are_unique():
    models = {"fcn_r50_os8", "deeplabv3_r50_os8", "deeplabv3plus_r50_os16", "unet_r34"}
    for data_set, classes in [("voc", 21), ("cityscapes", 19), ("camvid", 11)]:
        # the four standard models everywhere; a data set may add recipes (e.g. camvid's *_cpu)
        assert models <= {Path(p).stem for p in EXPERIMENTS if p.startswith(f"configs/{data_set}/")}
        for name in models:
            cfg = _load(f"configs/{data_set}/{name}.yaml")
            assert cfg.data.num_classes == classes and cfg.name == f"{data_set}_{name}"
            assert load_config(ROOT / f"configs/{data_set}/{name}.yaml").model.backbone.pretrained == "torchvision"
    names = [_load(p).name for p in EXPERIMENTS]
    assert len(names) == len(set(names)), "two configs would share work_dirs/<name>"


@pytest.mark.parametrize("name", ["fcn_r18", "deeplabv3_r18", "unet_r18"])
def test_sample_configs_run_on_cpu(name):
    cfg = _load(f"configs/sample/{name}.yaml")
    assert cfg.model.backbone.name == "resnet18" and cfg.model.backbone.pretrained is None
    assert cfg.name == f"sample_{name}"
    model = build_model(cfg).train()
    out = model(torch.randn(2, 3, *cfg.data.crop_size))["out"]
    assert out.shape == (2, cfg.data.num_classes, *cfg.data.crop_size)


def test_model_info_tool(capsys):
    model_info = load_tool("model_info")
    assert model_info.main(["configs/sample/unet_r18.yaml", "--size", "64", "96"]) == 0
    printed = capsys.readouterr().out
    params = count_parameters(build_model(_load("configs/sample/unet_r18.yaml")))["total"]
    assert f"parameters: {params / 1e6:.2f} M" in printed and "GFLOPs at 64x96:" in printed
    assert "layer4        512     32  1x512x2x3" in printed

    assert model_info.main(["configs/sample/unet_r18.yaml", "model.backbone.nme=x"]) == 2
    assert "unknown config key 'model.backbone.nme'" in capsys.readouterr().err
