"""Every tool on a small set of every shipped data family (issue 9 item 7): train, eval (plain,
--show-dir, --slide --tta), infer, visualize (--checkpoint, --config, --classes), check, browse,
export, info. One tiny training run per family, shared by the whole matrix."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from segkit.checkpoint import load_checkpoint
from tests.conftest import SHARED_DATA
from tests.tool_loader import load_tool
from tests.tool_matrix_data import FAMILIES, TINY

# Seven tiny trainings and ~60 tool runs: about 2 minutes of CPU, several on a loaded machine
pytestmark = pytest.mark.slow


class Run:
    def __init__(self, family: str, config: str, overrides: list, root: Path, work: Path):
        self.family, self.config, self.overrides, self.root, self.work = family, config, overrides, root, work

    @property
    def checkpoint(self) -> str:
        return str(self.work / "best.pth")

    @property
    def val_split(self) -> str:
        from segkit.config import load_config

        return load_config(self.config, self.overrides).data.val_split

    def val_images(self):
        from segkit.config import load_config
        from segkit.data import build_dataset

        cfg = load_config(self.config, self.overrides)
        return [str(p[0]) for p in build_dataset(cfg.data, cfg.data.val_split).pairs]


@pytest.fixture(scope="session", params=sorted(FAMILIES))
def run(request, tmp_path_factory) -> Run:
    family = request.param
    root = tmp_path_factory.mktemp(f"matrix_{family}")
    config, extra = FAMILIES[family](root / "data", SHARED_DATA)
    overrides = [f"data.root={root / 'data'}", *TINY, *extra]
    work = root / "work"
    assert load_tool("train").main([config, *overrides, "--work-dir", str(work)]) == 0
    return Run(family, config, overrides, root, work)


def test_train_writes_checkpoints_and_metrics(run):
    assert (run.work / "best.pth").is_file() and (run.work / "last.pth").is_file()
    logged = [json.loads(line) for line in (run.work / "metrics.jsonl").read_text().splitlines()]
    assert any("val" in line for line in logged)


@pytest.mark.parametrize(
    "flags", [[], ["--show-dir", "show"], ["--slide", "--tta"]], ids=["plain", "show", "slide-tta"]
)
def test_eval(run, flags, tmp_path, capsys):
    flags = [str(tmp_path / f) if f == "show" else f for f in flags]
    out = tmp_path / "r.json"
    assert load_tool("eval").main([run.checkpoint, "--out", str(out), "--device", "cpu", *flags]) == 0, (
        capsys.readouterr().err
    )
    results = json.loads(out.read_text())
    assert 0 <= results["mIoU"] <= 1 and results["images"] == len(run.val_images())
    if "--show-dir" in flags:
        assert len(list((tmp_path / "show").glob("*.png"))) == results["images"]


def test_infer_then_visualize_three_ways(run, tmp_path, capsys):
    image = run.val_images()[0]
    assert (
        load_tool("infer").main(
            [image, "--checkpoint", run.checkpoint, "--out", str(tmp_path / "pred"), "--device", "cpu"]
        )
        == 0
    ), capsys.readouterr().err
    mask = next((tmp_path / "pred").glob(f"{Path(image).stem}*mask.png"))
    names = load_checkpoint(run.checkpoint)["meta"]["class_names"]
    visualize = load_tool("visualize").main
    for i, source in enumerate(
        [["--checkpoint", run.checkpoint], ["--config", run.config], ["--classes", ",".join(names)]]
    ):
        out = tmp_path / f"vis{i}.png"
        assert visualize([image, str(mask), *source, "--out", str(out)]) == 0, capsys.readouterr().err
        assert out.stat().st_size > 0


# check's exit code per family: 1 ("cannot train") where the few files hold only some of the family's classes
# (CamVid's 11, VOC's 21, Cityscapes' 19, ADE20K's 150); 0 where every class appears
CHECK_CODE = {"camvid": 1, "voc": 1, "cityscapes": 1, "ade20k": 1, "isbi": 0, "coco": 0, "binary": 0}


def test_check_and_browse(run, tmp_path, capsys):
    code = load_tool("check_dataset").main([run.config, *run.overrides])
    report = capsys.readouterr().out
    assert code == CHECK_CODE[run.family], report
    assert ("CANNOT TRAIN" in report and "never appear" in report) == (code == 1), report
    assert f"split '{run.val_split}': {len(run.val_images())} image/mask pairs" in report, report
    out = tmp_path / "grid.png"
    assert (
        load_tool("browse_dataset").main(
            [run.config, *run.overrides, "--num", "2", "--cell", "64", "--augment", "--out", str(out)]
        )
        == 0
    ), capsys.readouterr().err
    assert out.stat().st_size > 0


def test_export_and_info(run, tmp_path, capsys):
    out = tmp_path / "model.torchscript.pt"
    assert (
        load_tool("export").main([run.checkpoint, "--format", "torchscript", "--out", str(out), "--size", "32", "32"])
        == 0
    ), capsys.readouterr().err
    assert out.stat().st_size > 0
    assert load_tool("model_info").main([run.config, *run.overrides, "--size", "32", "32"]) == 0
    assert "GFLOPs" in capsys.readouterr().out
