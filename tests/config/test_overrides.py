"""One override parser for every tool: YAML values without YAML 1.1's traps, clearing inherited
containers, (H, W) sizes checked, and mmsegmentation's --cfg-options / --amp spellings."""

import argparse

import pytest

from segkit.cli.common import add_config_args, overrides_of
from segkit.config import ConfigError, apply_overrides, load_config
from segkit.config.overrides import parse_override_value

ISBI = "isbi/unet_r18"  # its base sets data.label_map {255: 1}


@pytest.mark.parametrize(
    "text,value",
    [
        ("{255:1}", {255: 1}),  # YAML 1.1 reads 255:1 as the sexagesimal number 15301
        ("{255: 1, 0:2}", {255: 1, 0: 2}),
        ("[64,64]", [64, 64]),
        ("[road, car]", ["road", "car"]),
        ("null", None),
        ("0.02", 0.02),
        ("/data/x:y", "/data/x:y"),
    ],
)
def test_values_parse_as_written(text, value):
    assert parse_override_value(text) == value


def test_label_map_without_space_is_a_mapping():
    assert dict(load_config(ISBI, ["data.label_map={255:2}"]).data.label_map) == {255: 2}


@pytest.mark.parametrize("value", ["{}", "null"])
def test_inherited_mapping_can_be_cleared(value):
    assert dict(load_config(ISBI, [f"data.label_map={value}"]).data.label_map) == {}


def test_a_mapping_replaces_the_inherited_one_and_lists_clear():
    cfg = load_config(ISBI, ["data.label_map={0:1}", "data.class_names=null", "data.palette=[]"])
    assert dict(cfg.data.label_map) == {0: 1}
    assert list(cfg.data.class_names) == [] and list(cfg.data.palette) == []


def test_optional_keys_still_take_null():
    assert (
        load_config(
            ISBI, ["model.backbone.multi_grid=[1,2]", "model.backbone.multi_grid=null"]
        ).model.backbone.multi_grid
        is None
    )


@pytest.mark.parametrize("override", ["data.crop_size=[64]", "eval.stride=[1,2,3]"])
def test_sizes_need_height_and_width(override):
    key = override.split("=")[0]
    with pytest.raises(ConfigError, match=rf"{key}=\[.*\] must be \[H, W\]"):
        load_config(ISBI, [override])


def test_apply_overrides_leaves_the_given_config_alone():
    cfg = load_config(ISBI)
    changed = apply_overrides(cfg, ["data.label_map={}"])
    assert dict(cfg.data.label_map) == {255: 1} and dict(changed.data.label_map) == {}


@pytest.mark.parametrize(
    "override,match",
    [
        ("data.label_map={a:1}", r"bad value for 'data\.label_map"),
        ("data.nope=1", r"unknown config key 'data\.nope'"),
        ("train.lr", r"must look like key=value"),
    ],
)
def test_bad_overrides_are_one_line_errors(override, match):
    with pytest.raises(ConfigError, match=match):
        load_config(ISBI, [override])


def test_cfg_options_and_amp_are_aliases():
    parser = argparse.ArgumentParser()
    add_config_args(parser, amp_key="train.amp")
    args = parser.parse_intermixed_args([ISBI, "train.lr=0.1", "--cfg-options", "train.lr=0.2", "data.root=x", "--amp"])
    assert overrides_of(args) == ["train.lr=0.1", "train.lr=0.2", "data.root=x", "train.amp=auto"]
    cfg = load_config(args.config, overrides_of(args))
    assert cfg.train.lr == 0.2 and cfg.train.amp == "auto"
