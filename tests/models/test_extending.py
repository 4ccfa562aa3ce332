"""docs/extending.md as written: the decoder recipe's code block, imported from a temporary module and
registered with its one line, loads from a config, trains two steps and comes back from its checkpoint;
the registries refuse entries that would break them; a data format is one ``FORMATS`` entry."""

import importlib
import pickle
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import pytest
import torch

from segkit.config import ConfigError, from_dict, load_config, schema, to_dict
from segkit.data import FORMATS, DataFormat, build_dataset
from segkit.data.readers import folder_pairs
from segkit.inference.predictor import Predictor
from segkit.models import DECODERS, build_model
from segkit.training.engine import train
from tests.train_helpers import CONFIG, tiny_overrides

ROOT = Path(__file__).resolve().parents[2]
RECIPE = ROOT / "docs" / "extending.md"


def recipe_module(tmp_path, monkeypatch):
    """The first python block under '## A decoder' in docs/extending.md, as an importable module."""
    section = RECIPE.read_text().split("## A decoder", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    assert blocks, f"{RECIPE}: no python block under '## A decoder'"
    (tmp_path / "toy_decoder.py").write_text(blocks[0])
    monkeypatch.syspath_prepend(str(tmp_path))
    return importlib.import_module("toy_decoder")


@pytest.fixture
def toy(tmp_path, monkeypatch):
    module = recipe_module(tmp_path, monkeypatch)
    monkeypatch.setitem(DECODERS, "toy", module.ToyDecoder)  # the recipe's one line, undone after the test
    yield module
    sys.modules.pop("toy_decoder", None)


def toy_config(sample_root, *extra):
    """The tiny training setup with the toy decoder (less the DeepLabV3+ widths it sets)."""
    overrides = [o for o in tiny_overrides(sample_root, 2) if not o.startswith("model.decoder.")]
    return load_config(CONFIG, overrides + ["model.decoder.name=toy", *extra])


def test_the_decoder_recipe_trains_two_steps(toy, sample_root, tmp_path, monkeypatch):
    cfg = toy_config(sample_root, "model.decoder.toy_kernel=1", "model.decoder.channels=16")
    assert cfg.model.decoder.toy_kernel == 1
    results = train(cfg, str(tmp_path / "work"))
    assert 0.0 <= results["mIoU"] <= 1.0

    predictor = Predictor.from_checkpoint(tmp_path / "work" / "last.pth", device="cpu")
    assert isinstance(predictor.model.decoder, toy.ToyDecoder)
    assert predictor.model.decoder.head[0].kernel_size == (1, 1) and predictor.model.decoder.head[0].out_channels == 16
    assert predictor.predict(torch.zeros(40, 56, 3, dtype=torch.uint8).numpy()).shape == (40, 56)

    monkeypatch.delitem(DECODERS, "toy")  # where the registering module has not run
    with pytest.raises(ConfigError, match=r"decoder 'toy' is not registered here: import the module that registers"):
        Predictor.from_checkpoint(tmp_path / "work" / "last.pth", device="cpu")


def test_a_registered_decoders_options_are_checked_at_load_time(toy, sample_root):
    with pytest.raises(ConfigError) as error:
        toy_config(sample_root, "model.decoder.toy_kernal=1")
    assert "unknown config key 'model.decoder.toy_kernal'. Did you mean 'model.decoder.toy_kernel'" in str(error.value)
    assert "toy_kernel, unet_channels" in str(error.value)  # the valid keys include the new one
    with pytest.raises(
        ConfigError, match=r"'model\.decoder\.toy_kernel': Value 'wide' .* could not be converted to Integer"
    ):
        toy_config(sample_root, "model.decoder.toy_kernel=wide")
    cfg = load_config(CONFIG, ["model.decoder.name=deeplabv3plus", "model.decoder.toy_kernel=1"])
    with pytest.raises(
        ConfigError,
        match=r"model\.decoder\.toy_kernel=1 is an option of the toy decoder, not of "
        r"model\.decoder\.name=deeplabv3plus; remove it \(or set it to 3\)",
    ):
        with torch.device("meta"):
            build_model(cfg)


@dataclass
class _Width:
    channels: int = 32  # fcn and deeplab say Optional[int] = None


class _NoOptions(torch.nn.Module):
    pass


class _Clashing(torch.nn.Module):
    Options = _Width

    @classmethod
    def from_config(cls, feature_info, num_classes, options, norm):
        return cls()


@pytest.mark.parametrize(
    "decoder,message",
    [
        (
            _NoOptions,
            r"DECODERS\['bad'\] = '_NoOptions' needs an Options dataclass .* from_config\(feature_info, "
            r"num_classes, options, norm\) classmethod: docs/extending\.md",
        ),
        (
            _Clashing,
            r"model\.decoder\.channels is typing\.Optional\[int\] = None for fcn but <class 'int'> = 32 for bad: a "
            r"key decoders share needs one type and default",
        ),
    ],
)
def test_a_decoder_that_would_break_the_schema_is_refused_naming_it(decoder, message, monkeypatch):
    monkeypatch.setitem(DECODERS, "bad", decoder)
    with pytest.raises(TypeError, match=message):
        load_config("sample/fcn_r18")


def test_checkpoint_configs_of_earlier_versions_load():
    """Before decoders declared their options, a checkpoint's config held every DecoderConfig field."""
    saved = to_dict(load_config("sample/fcn_r18"))
    saved["model"]["decoder"] = {
        "name": "fcn",
        "channels": None,
        "dropout": None,
        "num_convs": 1,
        "aspp_rates": None,
        "separable": False,
        "skip_channels": 48,
        "unet_channels": [256, 128, 64, 32, 16],
    }
    cfg = from_dict(saved)
    assert cfg.model.decoder.name == "fcn" and list(cfg.model.decoder.unet_channels) == [256, 128, 64, 32, 16]
    with torch.device("meta"):
        build_model(cfg)


def test_a_config_pickles_with_its_decoder_schema(monkeypatch):
    """model.decoder's schema is built when a config loads; pickle finds it by name, also where nothing built it yet
    (a fresh process: a spawned data loader worker)."""
    cfg = load_config("sample/fcn_r18", ["model.decoder.channels=32"])
    data = pickle.dumps(cfg)
    assert pickle.loads(data) == cfg
    monkeypatch.delattr(schema, "RegisteredDecoderConfig")
    assert pickle.loads(data).model.decoder.channels == 32


def test_a_data_format_is_one_entry(sample_root, monkeypatch):
    def mine_pairs(cfg, split: str, issues: Optional[list] = None):
        return folder_pairs(cfg, split, issues)[:3]  # a layout of its own would be read here

    names = ["background", "disc", "box", "triangle", "ring", "bar"]
    monkeypatch.setitem(FORMATS, "mine", DataFormat(mine_pairs, names, [[i * 40] * 3 for i in range(6)]))
    cfg = load_config(CONFIG, [f"data.root={sample_root}", "data.format=mine"]).data
    ds = build_dataset(cfg, "train")
    assert len(ds) == 3 and ds.class_names == names and ds.palette[1] == [40, 40, 40]
    with pytest.raises(TypeError, match="pairs= or with dataset=, exactly one"):
        DataFormat()
