"""Every tool on a small set of every shipped data family (issue 9 item 7): train, eval (plain,
--show-dir, --slide --tta), infer, visualize (--checkpoint, --config, --classes), check, browse,
export, info. One tiny training run per family, shared by the whole matrix."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from segkit.checkpoint import load_checkpoint, model_from_checkpoint
from segkit.config import load_config
from segkit.data import format_classes, read_image, read_mask
from tests.conftest import SHARED_DATA
from tests.eval_oracle import reference_scores
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

    def dataset(self):
        from segkit.config import load_config
        from segkit.data import build_dataset

        cfg = load_config(self.config, self.overrides)
        return build_dataset(cfg.data, cfg.data.val_split)

    def val_images(self):
        return [str(p[0]) for p in self.dataset().pairs]


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
    assert results["images"] == len(run.val_images())
    # the same checkpoint through the Predictor with the same --slide/--tta, the confusion counted with numpy
    reference = reference_scores(run.checkpoint, slide="--slide" in flags, tta="--tta" in flags)
    assert np.array_equal(results["confusion"], reference["confusion"])
    assert results["mIoU"] == pytest.approx(reference["mIoU"], abs=1e-12)
    if "--show-dir" in flags:
        assert len(list((tmp_path / "show").glob("*.png"))) == results["images"]
        for path, pred in zip(run.val_images(), reference["preds"]):
            picture = read_image(tmp_path / "show" / f"{Path(path).stem}.png")
            image, gt = run.dataset().read(run.val_images().index(path))
            h, w = gt.shape
            # image | ground truth | prediction | errors under a title bar: the first tile is the image itself
            bars = [b for b in range(min(h, picture.shape[0] - h + 1)) if np.array_equal(picture[b : b + h, :w], image)]
            assert len(bars) == 1 and picture.shape[1] > 4 * w + 12, picture.shape
            errors = picture[bars[0] : bars[0] + h, 3 * (w + 4) : 4 * w + 12]
            wrong = (pred != gt) & (gt != run.dataset().ignore_index)
            assert np.array_equal((errors == [220, 30, 30]).all(-1), wrong)  # red exactly where the model is wrong


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
    pictures = [read_image(tmp_path / f"vis{i}.png") for i in range(3)]
    rgb, ids = read_image(image), read_mask(mask).astype(np.int64)
    assert all(p.shape == rgb.shape for p in pictures)  # the image's size, so it lays over the image
    # the same names from the checkpoint and --classes, colours from the mask's own palette: one picture; the
    # config (read without the run's overrides) gives the same names unless the run changed them (coco: 3 classes)
    assert np.array_equal(pictures[0], pictures[2])
    if format_classes(load_config(run.config).data)[0] == names:
        assert np.array_equal(pictures[0], pictures[1])
    with Image.open(mask) as im:
        colours = np.asarray(im.getpalette()[: 3 * len(names)], np.float64).reshape(-1, 3)
    plain = tmp_path / "plain.png"
    undecorated = ["--no-outlines", "--no-labels", "--no-legend", "--out", str(plain)]
    assert visualize([image, str(mask), "--checkpoint", run.checkpoint, *undecorated]) == 0
    # without outlines, names and legend every pixel is alpha 0.5 of its class colour over the image
    assert np.array_equal(read_image(plain), np.rint(rgb * 0.5 + colours[ids] * 0.5))


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
    grid = read_image(out)
    # two 64 px cells side by side, then the legend panel, whose left margin is white
    assert grid.shape[0] >= 64 and grid.shape[1] > 2 * 64
    assert (grid[:, 128] == 255).all() and not (grid[:64, 127] == 255).all()
    assert not (grid[:64, :64] == 255).all() and not (grid[:64, 64:128] == 255).all()


def test_export_and_info(run, tmp_path, capsys):
    out = tmp_path / "model.torchscript.pt"
    assert (
        load_tool("export").main([run.checkpoint, "--format", "torchscript", "--out", str(out), "--size", "32", "32"])
        == 0
    ), capsys.readouterr().err
    scripted = torch.jit.load(str(out))
    model = model_from_checkpoint(run.checkpoint)[0].eval()
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        expected, got = model(x), scripted(x)
    expected, got = [o["out"] if isinstance(o, dict) else o for o in (expected, got)]
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)  # the graph computes what the checkpoint does
    assert load_tool("model_info").main([run.config, *run.overrides, "--size", "32", "32"]) == 0
    assert "GFLOPs" in capsys.readouterr().out
