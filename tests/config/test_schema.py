"""The config loader: YAML + bases + dotted overrides, and errors that name the key and the file."""

import pytest

from segkit.config import ConfigError, from_dict, load_config, to_dict


def _write(path, text):
    path.write_text(text)
    return path


@pytest.fixture
def parent(tmp_path):
    return _write(
        tmp_path / "parent.yaml",
        "data: {num_classes: 3}\nmodel:\n  backbone: {name: resnet18}\ntrain: {lr: 0.05, iterations: 100}\n",
    )


def test_child_overrides_parent_and_command_line_overrides_both(tmp_path, parent):
    child = _write(tmp_path / "child.yaml", "base: parent.yaml\ntrain: {lr: 0.01}\n")
    cfg = load_config(child, ["train.lr=0.02", "model.backbone.multi_grid=[1,2]", "model.backbone.pretrained=null"])
    assert cfg.train.lr == 0.02 and isinstance(cfg.train.lr, float)
    assert cfg.train.iterations == 100  # from the parent
    assert cfg.model.backbone.name == "resnet18" and list(cfg.model.backbone.multi_grid) == [1, 2]
    assert cfg.model.backbone.pretrained is None
    assert cfg.name == "child"  # the file's stem unless set


def test_bases_merge_in_order(tmp_path, parent):
    _write(tmp_path / "other.yaml", "train: {lr: 0.07}\nname: from_other\n")
    cfg = load_config(_write(tmp_path / "x.yaml", "base: [parent.yaml, other.yaml]\n"))
    assert cfg.train.lr == 0.07 and cfg.name == "from_other"


@pytest.mark.parametrize(
    "text,match",
    [
        (
            "model:\n  backbone: {nme: resnet18}\n",
            r"x\.yaml: unknown config key 'model\.backbone\.nme'\. Did you mean 'model\.backbone\.name'",
        ),
        ("modell: {}\n", r"unknown config key 'modell'\. Did you mean 'model'"),
        ("train: {lr: fast}\n", r"x\.yaml: bad value for 'train\.lr'"),
        ("model: {backbone: {output_stride: 8.5}}\n", r"bad value for 'model\.backbone\.output_stride'"),
        ("model: {aux_head: maybe}\n", r"bad value for 'model\.aux_head'"),
        ("model: {backbone: {multi_grid: 3}}\n", r"bad value for 'model\.backbone\.multi_grid': expected a list"),
        ("- just\n- a list\n", r"expected a mapping at the top level"),
        ("model: {backbone: [unclosed\n", r"not valid YAML"),
    ],
)
def test_bad_files_name_the_file_and_key(tmp_path, parent, text, match):
    path = _write(tmp_path / "x.yaml", "base: parent.yaml\n" + text if not text.startswith("-") else text)
    with pytest.raises(ConfigError, match=match):
        load_config(path)


def test_unknown_key_lists_its_valid_siblings(parent):
    with pytest.raises(ConfigError) as err:
        load_config(parent, ["model.decoder.skip_chanels=32"])
    message = str(err.value)
    assert message.startswith("command-line override: unknown config key 'model.decoder.skip_chanels'")
    assert "Did you mean 'model.decoder.skip_channels'" in message
    assert "Valid keys under 'model.decoder': aspp_rates, channels," in message


@pytest.mark.parametrize(
    "override,match",
    [
        ("model.backbone.output_stride=abc", r"bad value for 'model\.backbone\.output_stride'"),
        ("model.backbone.multi_grid=[1,2,x]", r"bad value for 'model\.backbone\.multi_grid\[2\]'"),
        ("model.decoder.unet_channels=5", r"'model\.decoder\.unet_channels': expected a list"),
        ("train.lr", r"override 'train\.lr' must look like key=value"),
    ],
)
def test_bad_overrides_name_the_key(parent, override, match):
    with pytest.raises(ConfigError, match=match):
        load_config(parent, [override])


def test_missing_required_key_and_missing_files(tmp_path):
    with pytest.raises(ConfigError, match=r"required key\(s\) not set: data\.num_classes"):
        load_config(None)
    with pytest.raises(ConfigError, match="config file not found: .*nope.yaml"):
        load_config(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="config file not found: .*gone.yaml"):
        load_config(_write(tmp_path / "y.yaml", "base: gone.yaml\n"))


def test_circular_bases_are_caught(tmp_path):
    _write(tmp_path / "a.yaml", "base: b.yaml\n")
    _write(tmp_path / "b.yaml", "base: a.yaml\n")
    with pytest.raises(ConfigError, match="circular 'base' chain"):
        load_config(tmp_path / "a.yaml")


def test_plain_dict_round_trip_and_validation(parent):
    cfg = load_config(parent, ["model.backbone.multi_grid=[1,2]"])
    plain = to_dict(cfg)
    assert type(plain) is dict and type(plain["model"]["backbone"]["multi_grid"]) is list
    assert to_dict(from_dict(plain)) == plain
    plain["model"]["backbone"]["depth"] = 50
    with pytest.raises(ConfigError, match=r"checkpoint config: unknown config key 'model\.backbone\.depth'"):
        from_dict(plain)


def test_assignment_is_validated(parent):
    cfg = load_config(parent)
    cfg.model.backbone.output_stride = 16
    with pytest.raises(Exception, match="output_stride"):
        cfg.model.backbone.output_stride = "sixteen"
