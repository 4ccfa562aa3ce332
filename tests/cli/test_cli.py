"""The `segkit` command: the dispatcher table, shipped config names, eval's argument orders, a light import."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from segkit.cli import COMMANDS, main
from segkit.config import ConfigError, load_config
from segkit.config.files import find_config, shipped_configs
from tests.tool_loader import load_tool

ROOT = Path(__file__).resolve().parents[2]


def test_help_lists_every_command(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in COMMANDS)


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_each_command_has_its_own_help(name, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([name, "--help"])
    assert exit_.value.code == 0
    assert f"usage: segkit {name}" in capsys.readouterr().out


def test_unknown_command_is_a_usage_error(capsys):
    assert main(["trian"]) == 2
    assert "unknown command 'trian'" in capsys.readouterr().err


def test_configs_lists_shipped_names(capsys):
    assert main(["configs"]) == 0
    names = capsys.readouterr().out.split()
    assert "sample/deeplabv3plus_r18" in names and "isbi/unet_r18" in names
    assert not any(n.startswith("_base") for n in names) and names == shipped_configs()


@pytest.mark.parametrize("name", ["sample/fcn_r18", "sample/fcn_r18.yaml"])
def test_a_shipped_name_works_where_a_path_does(name):
    assert find_config(name) == ROOT / "configs/sample/fcn_r18.yaml"
    assert load_config(name).name == "sample_fcn_r18"


def test_a_missing_config_says_how_to_find_names():
    with pytest.raises(ConfigError, match=r"config file not found: sample/nope .*segkit configs"):
        load_config("sample/nope")


def test_split_files_resolve_beside_the_config_wherever_it_lives(tmp_path, monkeypatch):
    shutil.copytree(ROOT / "configs", tmp_path / "elsewhere")
    monkeypatch.chdir(tmp_path)  # no configs/ under the working directory
    cfg = load_config(tmp_path / "elsewhere/isbi/unet_r18.yaml")
    assert cfg.data.split_file == str(tmp_path / "elsewhere/isbi/splits/{split}.txt")
    assert cfg.data.root == "data/isbi_membrane"  # data roots stay relative to the working directory


def test_eval_understands_mmseg_order():
    parse = load_tool("eval").parse_args
    args = parse(["configs/sample/fcn_r18.yaml", "run/best.pth", "data.root=x", "--cfg-options", "eval.batch_size=2"])
    assert (args.config, args.checkpoint) == ("configs/sample/fcn_r18.yaml", "run/best.pth")
    assert args.overrides == ["data.root=x", "eval.batch_size=2"]
    assert parse(["sample/fcn_r18", "best.pth"]).config == "sample/fcn_r18"


def test_eval_amp_sets_the_precision_eval_reads():
    from segkit.config import apply_overrides

    args = load_tool("eval").parse_args(["run/best.pth", "data.root=x", "--amp"])
    assert args.overrides == ["data.root=x", "eval.amp=auto"]  # was train.amp=auto: no effect on eval
    cfg = apply_overrides(load_config(None, ["data.num_classes=2", "train.amp=none"]), args.overrides)
    assert cfg.eval.amp == "auto" and cfg.train.amp == "none"


def test_eval_with_only_a_config_answers_with_the_usage(capsys):
    with pytest.raises(SystemExit):
        load_tool("eval").parse_args(["sample/fcn_r18", "data.root=x"])
    assert "'sample/fcn_r18' is a config, not a checkpoint: segkit eval CHECKPOINT" in capsys.readouterr().err


def test_import_segkit_is_light_and_exposes_the_api():
    code = (
        "import sys, segkit; heavy = [m for m in ('torch', 'matplotlib', 'tensorboard', 'albumentations') "
        "if m in sys.modules]; assert not heavy, heavy; "
        "assert segkit.load_config('sample/fcn_r18').name == 'sample_fcn_r18'; "
        "assert not any(m in sys.modules for m in ('matplotlib', 'albumentations')); "
        "from segkit import build_model, ResNetBackbone, Predictor, train, evaluate"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)


def test_python_dash_m_segkit_runs_the_dispatcher():
    out = subprocess.run(
        [sys.executable, "-m", "segkit", "--help"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    assert "sample-data" in out and "configs" in out


def test_a_missing_data_root_says_how_to_pass_one(tmp_path, monkeypatch):
    from segkit.data import DataError, build_dataset

    monkeypatch.chdir(tmp_path)
    with pytest.raises(
        DataError,
        match=r"data root not found: data/sample \(data.root, relative to the working "
        r"directory: pass data.root=/path/to/data",
    ):
        build_dataset(load_config("sample/fcn_r18").data, "train")
