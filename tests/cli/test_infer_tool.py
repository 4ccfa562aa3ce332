"""tools/infer.py on real CamVid images: masks at the input's size, overlays, COCO export, bad inputs."""

import json
import re
import shutil

import cv2
import numpy as np
import pytest
from PIL import Image

from segkit.annotations.coco import decode_coco
from segkit.data import read_image, read_mask
from tests.tool_loader import load_tool


def test_mask_overlay_and_coco_export_of_a_camvid_image(camvid_run, camvid_root, tmp_path, capsys):
    image = sorted((camvid_root / "test").iterdir())[0]
    out, coco = tmp_path / "out", tmp_path / "pred.json"
    assert (
        load_tool("infer").main(
            [str(image), "--checkpoint", str(camvid_run / "last.pth"), "--out", str(out), "--export", "coco", str(coco)]
        )
        == 0
    )
    mask = read_mask(out / f"{image.stem}_mask.png")
    assert mask.shape == (360, 480) and mask.max() < 11
    with Image.open(out / f"{image.stem}_mask.png") as im:
        assert im.mode == "P" and im.getpalette()[9:12] == [128, 64, 128]  # class 3 (Road) in CamVid's colour
    overlay = read_image(out / f"{image.stem}_overlay.png")
    assert overlay.shape == (360, 480, 3)  # the input's size, the legend inside a corner
    data = json.loads(coco.read_text())
    assert [c["name"] for c in data["categories"]][:2] == ["Sky", "Building"] and data["categories"][0]["id"] == 1
    assert all(0 < a["score"] <= 1 for a in data["annotations"])
    assert np.array_equal(decode_coco(coco, image.name), mask)
    assert "1 image(s)" in capsys.readouterr().out


def test_bad_files_in_a_folder_are_reported_and_skipped(camvid_run, camvid_root, tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    rgb = read_image(sorted((camvid_root / "test").iterdir())[1])[:96, :128]
    cv2.imwrite(str(folder / "colour.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(folder / "grey.png"), rgb[..., 0])
    cv2.imwrite(str(folder / "alpha.png"), np.dstack([rgb[..., ::-1], np.full(rgb.shape[:2], 200, np.uint8)]))
    (folder / "notes.txt").write_text("not an image")
    data = (folder / "colour.png").read_bytes()
    (folder / "cut.png").write_bytes(data[: len(data) // 2])
    out = tmp_path / "out"
    code = load_tool("infer").main(
        [str(folder), str(tmp_path / "missing.jpg"), "--checkpoint", str(camvid_run / "last.pth"), "--out", str(out)]
    )
    err = capsys.readouterr().err
    assert code == 1
    assert "notes.txt" in err and "cut.png" in err and "missing.jpg" in err
    for stem in ("colour", "grey", "alpha"):  # grayscale and RGBA are converted, not refused
        assert read_mask(out / f"{stem}_mask.png").shape == (96, 128)
    assert not (out / "cut_mask.png").exists()


def test_without_checkpoint_it_takes_the_newest_or_says_how_to_get_one(camvid_run, tmp_path, monkeypatch, capsys):
    tool = load_tool("infer")
    monkeypatch.chdir(tmp_path)
    image = tmp_path / "x.png"
    cv2.imwrite(str(image), np.full((40, 56, 3), 120, np.uint8))
    assert tool.main([str(image)]) == 2
    assert "segkit sample-data && segkit train sample/deeplabv3plus_r18" in capsys.readouterr().err
    (tmp_path / "work_dirs" / "run").mkdir(parents=True)
    shutil.copy(camvid_run / "last.pth", tmp_path / "work_dirs" / "run" / "best.pth")
    assert tool.main([str(image), "--out", str(tmp_path / "o")]) == 0
    assert "work_dirs/run/best.pth" in capsys.readouterr().out
    assert (tmp_path / "o" / "x_mask.png").is_file()


def test_an_image_named_twice_is_predicted_once_in_the_order_first_named(tmp_path, monkeypatch):
    from segkit.cli.common import expand

    monkeypatch.chdir(tmp_path)
    (tmp_path / "photos").mkdir()
    for name in ("b.jpg", "a.jpg", "c.png"):
        (tmp_path / "photos" / name).write_bytes(b"x")
    files, problems = expand(
        [
            "photos/c.png",
            "photos/",
            "photos/*.jpg",
            "./photos/a.jpg",
            str(tmp_path / "photos" / "b.jpg"),
            "photos/../photos/c.png",
        ]
    )
    assert [p.as_posix() for p in files] == ["photos/c.png", "photos/a.jpg", "photos/b.jpg"] and not problems


def test_backend_auto_on_a_small_folder_runs_eager_whatever_the_per_call_race_said(
    camvid_run, camvid_root, tmp_path, monkeypatch, capsys
):
    """Issue #20: the per-call race picked onnxruntime, which then ran at 0.59x eager in the tool; a loop race over
    a 50-image folder costs 0.89x. Below RACE_MIN_IMAGES with no loop race recorded, auto runs eager."""
    import shutil

    import segkit.inference.ort_backend as ort_backend

    checkpoint = tmp_path / "ckpt" / "last.pth"  # its own folder: the backend records are written beside it
    checkpoint.parent.mkdir()
    shutil.copy(camvid_run / "last.pth", checkpoint)
    monkeypatch.setattr(ort_backend, "choose", lambda *a, **k: {"backend": "onnxruntime", "seconds": {}})
    images = sorted((camvid_root / "test").iterdir())[:2]
    args = [*map(str, images), "--checkpoint", str(checkpoint), "--out", str(tmp_path / "out"), "--backend", "auto"]
    assert load_tool("infer").main(args) == 0
    out = capsys.readouterr().out
    assert "backend auto used eager: 2 image(s), fewer than the 200" in out, out
    assert "backend auto kept" not in out  # no race ran


def test_the_slide_window_is_set_before_the_backend_is_chosen_and_needs_slide(
    camvid_run, tmp_path, monkeypatch, capsys
):
    from segkit.inference.predictor import Predictor

    tool = load_tool("infer")
    timed = []  # backend auto times the model on the window the Predictor will use
    monkeypatch.setattr(Predictor, "_switch_backend", lambda self, *a: timed.append(dict(self.settings)))
    args = tool.parse_args(
        ["x.png", "--slide", "--crop-size", "48", "40", "--stride", "24", "20", "--backend", "auto", "--device", "cpu"]
    )
    predictor, _, _ = tool.setup(args, camvid_run / "last.pth")
    assert [(t["crop"], t["stride"]) for t in timed] == [([48, 40], [24, 20])]
    assert (predictor.settings["mode"], predictor.settings["crop"], predictor.settings["stride"]) == (
        "slide",
        [48, 40],
        [24, 20],
    )
    for ignored in (["--crop-size", "48", "40"], ["--stride", "24", "20"]):  # without --slide: a usage error
        with pytest.raises(SystemExit) as exit_:
            tool.main(["x.png", "--checkpoint", str(camvid_run / "last.pth")] + ignored)
        assert exit_.value.code == 2 and "add --slide" in capsys.readouterr().err


def test_a_foreign_checkpoint_is_a_one_line_error(tmp_path, capsys):
    (tmp_path / "model.pth").write_bytes(b"PK\x03\x04 not really a zip")
    assert load_tool("infer").main(["x.png", "--checkpoint", str(tmp_path / "model.pth")]) == 2
    err = capsys.readouterr().err
    assert "model.pth" in err and len(err.strip().splitlines()) == 1


def test_a_scene_is_streamed_into_a_tiled_tiff_equal_to_the_in_memory_slide(camvid_run, camvid_root, tmp_path, capsys):
    import tifffile

    image = read_image(sorted((camvid_root / "test").iterdir())[0])
    tifffile.imwrite(tmp_path / "scene.tif", image, tile=(64, 64))
    Image.fromarray(image).save(tmp_path / "photo.png")
    window = ["--checkpoint", str(camvid_run / "last.pth"), "--slide", "--crop-size", "96", "128"]
    window += ["--stride", "64", "96", "--out", str(tmp_path / "out")]
    assert load_tool("infer").main([str(tmp_path / "photo.png"), *window]) == 0  # 0.17 MP: an image
    assert load_tool("infer").main([str(tmp_path / "scene.tif"), *window, "--scene-megapixels", "0.1"]) == 0
    captured = capsys.readouterr()
    assert "megapixels/s" in captured.out and "window" in captured.err  # the scene's line and progress bar
    assert not (tmp_path / "out" / "scene_overlay.png").exists()
    mask = tifffile.imread(tmp_path / "out" / "scene_mask.tif")
    assert np.array_equal(mask, read_mask(tmp_path / "out" / "photo_mask.png"))


def test_under_torchrun_each_process_writes_its_share_of_the_outputs(camvid_run, camvid_root, tmp_path, monkeypatch):
    images = sorted((camvid_root / "test").iterdir())[:3]
    written = []
    for rank in (0, 1):
        monkeypatch.setenv("RANK", str(rank))
        monkeypatch.setenv("WORLD_SIZE", "2")
        out = tmp_path / f"rank{rank}"
        argv = [*map(str, images), "--checkpoint", str(camvid_run / "last.pth"), "--out", str(out)]
        assert load_tool("infer").main(argv) == 0
        written.append({p.name for p in out.glob("*_mask.png")})
    assert written[0] | written[1] == {f"{p.stem}_mask.png" for p in images}
    assert not written[0] & written[1] and len(written[0]) == 2  # inputs 0 and 2 on rank 0, input 1 on rank 1


def test_under_torchrun_an_export_is_refused_before_any_work(tmp_path, monkeypatch, capsys):
    # was: every process wrote its own share of the images over the one --export file (the last rename won)
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    argv = ["missing.png", "--checkpoint", str(tmp_path / "none.pth"), "--export", "coco", str(tmp_path / "c.json")]
    assert load_tool("infer").main(argv) == 2
    said = capsys.readouterr().err
    assert re.search(r"^error: --export coco .* under torchrun \(2 processes\).*single process", said, re.M), said
    assert not (tmp_path / "c.json").exists()
