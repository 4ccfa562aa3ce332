"""Acceptance (issue #20): a colour-coded copy of CamVid (Kaggle's layout: *_L.png RGB masks in the standard
CamVid colours, class_dict.csv with a Void row) checks, trains and evaluates with data.class_colors and
data.ignore_colors; an anti-aliased mask gets the unknown-colour listing; convert-masks gives back the
index masks it was made from."""

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from segkit.cli import run
from segkit.config import load_config
from segkit.data import DataError, build_dataset
from segkit.data.check import check_dataset
from segkit.data.classes import CAMVID_CLASSES, CAMVID_PALETTE
from segkit.training.engine import train

VOID = (0, 0, 0)  # CamVid's 'Unlabelled' (index 11 in the SegNet release)


def pick(camvid_root: Path, split: str, count: int):
    """``count`` (image, index mask) pairs of ``split``, chosen so that together they hold every class where the
    first 60 images allow it (training refuses a class it never sees)."""
    chosen, seen = [], set()
    candidates = sorted((camvid_root / split).iterdir())[:60]
    masks = {p: np.array(Image.open(camvid_root / f"{split}annot" / f"{p.stem}.png")) for p in candidates}
    while len(chosen) < count:
        best = max((p for p in candidates if p not in dict(chosen)), key=lambda p: len(set(np.unique(masks[p])) - seen))
        chosen.append((best, masks[best]))
        seen |= set(np.unique(masks[best]))
    return chosen


def colour_copy(camvid_root: Path, out: Path, counts=(("train", 4), ("val", 2))) -> Path:
    """images/{split}/<stem>.png linked, masks/{split}/<stem>_L.png in colour, class_dict.csv."""
    lut = np.zeros((256, 3), np.uint8)
    lut[: len(CAMVID_PALETTE)] = CAMVID_PALETTE
    lut[11] = VOID
    for split, count in counts:
        (out / "images" / split).mkdir(parents=True)
        (out / "masks" / split).mkdir(parents=True)
        for image, index in pick(camvid_root, split, count):
            (out / "images" / split / image.name).symlink_to(image)
            Image.fromarray(lut[index]).save(out / "masks" / split / f"{image.stem}_L.png")
    rows = ["name,r,g,b"] + [f"{n},{r},{g},{b}" for n, (r, g, b) in zip(CAMVID_CLASSES, CAMVID_PALETTE)]
    (out / "class_dict.csv").write_text("\n".join(rows[:3] + ["Void,0,0,0"] + rows[3:]) + "\n")  # Void mid-file
    return out


def overrides(root: Path) -> list:
    return [
        f"data.root={root}",
        "data.format=folder",
        "data.num_classes=11",
        "data.mask_suffix=_L",
        "data.class_colors=class_dict.csv",
        "data.ignore_colors=[[0,0,0]]",
        "data.class_names=[]",
        "data.palette=[]",
        "data.num_workers=0",
    ]


@pytest.mark.slow
def test_colour_coded_camvid_checks_trains_and_evaluates(camvid_root, tmp_path):
    root = colour_copy(camvid_root, tmp_path / "camvid_colour")
    cfg = load_config(
        "configs/camvid/deeplabv3plus_r18_cpu.yaml",
        overrides(root)
        + [
            "data.crop_size=[96,96]",
            "train.iterations=2",
            "train.batch_size=2",
            "train.val_interval=2",
            "train.checkpoint_interval=2",
            "train.log_interval=1",
            "train.warmup_iters=0",
            "eval.resize=[120,160]",
            "train.device=cpu",
            "train.tensorboard=false",
            "model.backbone.pretrained=null",
        ],
    )

    # the oracle: every colour mask reads back as the index mask it was made from (Unlabelled -> ignore)
    dataset = build_dataset(cfg.data, "train")
    assert dataset.class_names == CAMVID_CLASSES and dataset.palette == CAMVID_PALETTE
    for i, (image, _) in enumerate(dataset.pairs):
        want = np.array(Image.open(camvid_root / "trainannot" / f"{Path(image).stem}.png")).astype(np.int64)
        want[want == 11] = cfg.data.ignore_index  # Void (black) -> ignore_index (11 in the CamVid configs)
        assert np.array_equal(dataset.read_mask(i), want)

    lines, ok = check_dataset(cfg)
    assert ok, "\n".join(lines)
    results = train(cfg, str(tmp_path / "work"))
    assert 0.0 <= results["mIoU"] <= 1.0 and len(results["IoU"]) == 11
    out = tmp_path / "eval.json"
    assert run("eval", [str(tmp_path / "work" / "last.pth"), "--out", str(out), "--device", "cpu"]) == 0
    assert json.loads(out.read_text())["mIoU"] == pytest.approx(results["mIoU"], abs=1e-6)

    # outputs keep the user's colours
    assert (
        run(
            "infer",
            [
                str(next((root / "images" / "val").iterdir())),
                "--checkpoint",
                str(tmp_path / "work" / "last.pth"),
                "--out",
                str(tmp_path / "infer"),
                "--device",
                "cpu",
            ],
        )
        == 0
    )
    written = Image.open(next((tmp_path / "infer").glob("*_mask.png")))
    assert written.mode == "P" and np.array(written.getpalette()[:33]).reshape(11, 3).tolist() == CAMVID_PALETTE


def test_anti_aliased_mask_gets_the_unknown_colour_listing(camvid_root, tmp_path, capsys):
    root = colour_copy(camvid_root, tmp_path / "camvid_colour", (("train", 2), ("val", 1)))
    smeared = next((root / "masks" / "train").iterdir())
    rgb = np.array(Image.open(smeared))
    Image.fromarray(cv2.GaussianBlur(rgb, (3, 3), 0)).save(smeared)  # what a smoothing export does to edges
    cfg = load_config("configs/camvid/deeplabv3plus_r18_cpu.yaml", overrides(root))
    lines, ok = check_dataset(cfg, ["train"])
    text = "\n".join(lines)
    assert not ok and "neither a class (data.class_colors) nor in data.ignore_colors" in text
    assert f"px in 1 file(s), e.g. {smeared.name}" in text and "data.unknown_colors=ignore" in text
    dataset = build_dataset(cfg.data, "train")
    with pytest.raises(DataError, match="neither a class"):  # what training meets
        dataset.read_mask([Path(m).name for _, m in dataset.pairs].index(smeared.name))
    lenient = load_config("configs/camvid/deeplabv3plus_r18_cpu.yaml", overrides(root) + ["data.unknown_colors=ignore"])
    lines, ok = check_dataset(lenient, ["train"])
    assert ok and "are ignored (data.unknown_colors=ignore)" in "\n".join(lines)


def test_convert_masks_writes_the_index_masks_back(camvid_root, tmp_path, capsys):
    root = colour_copy(camvid_root, tmp_path / "camvid_colour", (("train", 3),))
    out = tmp_path / "index"
    code = run(
        "convert-masks",
        [
            str(root / "masks" / "train"),
            "--class-colors",
            str(root / "class_dict.csv"),
            "--ignore-colors",
            "0,0,0",
            "--suffix",
            "_L",
            "--out",
            str(out),
        ],
    )
    assert code == 0 and "wrote 3 index mask(s) with 11 classes" in capsys.readouterr().out
    for mask in sorted(out.iterdir()):
        want = np.array(Image.open(camvid_root / "trainannot" / mask.name))
        want[want == 11] = 255
        got = Image.open(mask)
        assert got.mode == "P" and np.array_equal(np.array(got), want)
    shutil.rmtree(out)
    first = next((root / "masks" / "train").iterdir())
    Image.fromarray(cv2.GaussianBlur(np.array(Image.open(first)), (3, 3), 0)).save(first)
    assert (
        run(
            "convert-masks",
            [
                str(root / "masks" / "train"),
                "--class-colors",
                str(root / "class_dict.csv"),
                "--ignore-colors",
                "0,0,0",
                "--suffix",
                "_L",
                "--out",
                str(out),
            ],
        )
        == 1
    )
    assert "neither a class" in capsys.readouterr().err
