"""The studio's server through FastAPI's TestClient: edits saved as index PNGs, undo/redo, reload, review
order, and refusals (path traversal, malformed requests) that change nothing."""

import json
import os
import shlex
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi", reason="the studio needs fastapi: pip install 'segkit[studio]'")
from fastapi.testclient import TestClient  # noqa: E402

from segkit.data import read_mask  # noqa: E402
from segkit.inference.predictor import Predictor  # noqa: E402
from segkit.studio import Studio, create_app  # noqa: E402
from tests.tool_loader import load_tool  # noqa: E402


@pytest.fixture(scope="module")
def predictor(sample_run):
    return Predictor.from_checkpoint(sample_run / "best.pth", device="cpu")


@pytest.fixture
def studio(predictor, sample_root, sample_run, tmp_path):
    images = sorted((sample_root / "images" / "val").iterdir())[:3]
    return Studio(predictor, images, tmp_path / "masks", cache_size=2, checkpoint=sample_run / "best.pth")


TOKEN = "test-token-0123456789abcdef"


def client_for(studio):
    """A client of the studio's app as its page is: the token, the studio's host, changes sent as JSON."""
    return TestClient(
        create_app(studio, token=TOKEN),
        base_url="http://127.0.0.1:8765",
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
    )


@pytest.fixture
def client(studio):
    return client_for(studio)


def stems(studio):
    return list(studio.images)


def state(folder):
    return {p.name: p.read_bytes() for p in folder.iterdir()} if folder.is_dir() else {}


def test_page_meta_and_layers(client, studio):
    assert "studio.js" in client.get("/").text and client.get("/static/studio.js").status_code == 200
    meta = client.get("/api/meta").json()
    assert meta["class_names"] == studio.predictor.class_names and len(meta["palette"]) == studio.num_classes
    assert meta["corrected"] == 0 and "--init-from" in meta["finetune"]
    stem = stems(studio)[0]
    layers = client.get(f"/api/layers/{stem}")
    w, h = int(layers.headers["x-width"]), int(layers.headers["x-height"])
    assert (w, h) == Image.open(studio.path(stem)).size and layers.headers["x-labelled"] == "0"
    assert len(layers.content) == 2 * w * h  # prediction and confidence, no label yet
    assert np.array_equal(np.frombuffer(layers.content[: w * h], np.uint8).reshape(h, w), studio.analysis(stem).pred)
    assert client.get(f"/api/image/{stem}").content == studio.path(stem).read_bytes()


def test_an_image_that_cannot_be_encoded_for_the_page_gets_a_5xx_that_names_it(client, studio, monkeypatch):
    import segkit.studio.server as server

    stem = stems(studio)[0]
    monkeypatch.setattr(server, "BROWSER_IMAGES", set())  # as if it were a TIFF: re-encoded as PNG
    assert client.get(f"/api/image/{stem}").headers["content-type"] == "image/png"
    monkeypatch.setattr(server.cv2, "imencode", lambda *a: (False, None))
    response = client.get(f"/api/image/{stem}")
    assert response.status_code == 500 and str(studio.path(stem)) in response.json()["detail"]


def test_region_fill_changes_exactly_the_connected_component_and_saves_it(client, studio, tmp_path):
    stem = stems(studio)[0]
    h, w = studio.size(stem)
    label = np.zeros((h, w), np.uint8)
    label[10:30, 10:30] = 1
    label[40:50, 40:50] = 1  # the same class, not connected to the first square
    studio.masks_dir.mkdir()
    Image.fromarray(label).save(studio.mask_path(stem))
    prediction = studio.analysis(stem).pred.copy()
    response = client.post(f"/api/edit/{stem}", json={"op": "region", "x": 15, "y": 12, "cls": 2})
    assert response.status_code == 200 and response.headers["x-box"] == "10,10,20,20"
    saved = read_mask(studio.mask_path(stem))
    _, components = cv2.connectedComponents((label == 1).astype(np.uint8), connectivity=8)
    region = components == components[12, 15]
    assert np.array_equal(saved[region], np.full(region.sum(), 2)) and np.array_equal(saved[~region], label[~region])
    assert np.frombuffer(response.content, np.uint8).tolist() == [2] * 400
    with Image.open(studio.mask_path(stem)) as im:
        assert im.mode == "P" and im.size == (w, h) and im.getpalette()[6:9] == studio.palette[2].tolist()
    assert np.array_equal(studio.analysis(stem).pred, prediction)  # the prediction is never edited
    assert (studio.masks_dir / "labelled.txt").read_text().split() == [stem]


def test_brush_undo_redo_and_reload(client, studio, predictor, tmp_path):
    stem = stems(studio)[1]
    prediction = studio.analysis(stem).pred.copy()
    brush = {"op": "brush", "points": [[5, 5], [25, 5]], "radius": 2, "cls": 3}
    assert client.post(f"/api/edit/{stem}", json=brush).headers["x-box"] == "3,3,5,25"
    painted = read_mask(studio.mask_path(stem))
    assert (painted[3:8, 5:26] == 3).all() and np.array_equal(painted[20:], prediction[20:])
    erase = {"op": "brush", "points": [[40, 40]], "radius": 0, "cls": studio.ignore_index}
    assert client.post(f"/api/edit/{stem}", json=erase).headers["x-box"] == "40,40,1,1"
    assert read_mask(studio.mask_path(stem))[40, 40] == studio.ignore_index
    assert client.post(f"/api/undo/{stem}").headers["x-box"] == "40,40,1,1"
    assert np.array_equal(read_mask(studio.mask_path(stem)), painted)
    client.post(f"/api/undo/{stem}")
    assert np.array_equal(read_mask(studio.mask_path(stem)), prediction)
    assert client.post(f"/api/undo/{stem}").headers["x-box"] == ""  # nothing left to undo
    client.post(f"/api/redo/{stem}")
    assert np.array_equal(read_mask(studio.mask_path(stem)), painted)
    # a new server on the same folder (a reload) serves the saved label
    again = client_for(Studio(predictor, list(studio.images.values()), studio.masks_dir))
    layers = again.get(f"/api/layers/{stem}")
    h, w = prediction.shape
    assert layers.headers["x-labelled"] == "1"
    assert np.array_equal(np.frombuffer(layers.content[2 * w * h :], np.uint8).reshape(h, w), painted)
    assert again.get("/api/meta").json()["corrected"] == 1


def test_save_accepts_the_prediction_as_the_label(client, studio):
    stem = stems(studio)[2]
    assert client.post(f"/api/save/{stem}").json()["corrected"] == 1
    assert np.array_equal(read_mask(studio.mask_path(stem)), studio.analysis(stem).pred)


@pytest.mark.parametrize(
    "body",
    [
        {"op": "region", "x": 5, "y": 5, "cls": 99},  # not a class
        {"op": "region", "x": 5, "y": 5, "cls": "1"},  # not a number
        {"op": "region", "x": -1, "y": 5, "cls": 1},  # outside the image
        {"op": "region", "x": 5, "y": 10**6, "cls": 1},
        {"op": "region", "x": 5.5, "y": 5, "cls": 1},
        {"op": "brush", "points": [[1, 1], [10**5, 1]], "radius": 2, "cls": 1},
        {"op": "brush", "points": [], "radius": 2, "cls": 1},
        {"op": "brush", "points": [[1, 1]], "radius": -3, "cls": 1},
        {"op": "brush", "points": "1,1", "radius": 2, "cls": 1},
        {"op": "delete"},
        [1, 2],
    ],
)
def test_malformed_edits_get_a_4xx_and_change_nothing(client, studio, body):
    stem = stems(studio)[0]
    response = client.post(f"/api/edit/{stem}", json=body)
    assert response.status_code == 400 and response.json()["detail"]
    assert state(studio.masks_dir) == {}


def test_other_malformed_requests(client, studio):
    stem = stems(studio)[0]
    assert client.post(f"/api/edit/{stem}", content=b"{not json").status_code == 400
    assert client.post("/api/edit/no_such_stem", json={"op": "region", "x": 1, "y": 1, "cls": 1}).status_code == 404
    assert client.post("/api/save/..%2F..%2Ftmp%2Fx").status_code == 404
    assert (
        client.get("/api/images?gt=0").status_code == 400 and client.get("/api/images?gt=0&pred=99").status_code == 400
    )
    assert state(studio.masks_dir) == {}


def test_review_order_worst_first_then_uncertain_and_per_cell(predictor, studio):
    a, b, c = stems(studio)
    studio.masks_dir.mkdir()
    good = studio.analysis(a).pred.copy()
    Image.fromarray(good).save(studio.mask_path(a))  # agrees with the model: mIoU 1
    Image.fromarray(np.zeros_like(good) + 5).save(studio.mask_path(b))  # all class 5: the worst
    studio = Studio(predictor, list(studio.images.values()), studio.masks_dir)  # started with ground truth
    client = client_for(studio)
    assert client.get("/api/images").json()["order"] == [a, b, c]  # nothing scored yet: as given
    studio.score_all()
    data = client.get("/api/images").json()
    assert data["order"] == [b, a, c] and data["scored"] == 3
    assert data["summaries"][a]["mIoU"] == 1.0 and data["summaries"][c]["labelled"] is False
    counts = np.bincount(studio.analysis(b).pred.ravel(), minlength=6)
    counts[5] = 0
    predicted = int(counts.argmax())  # the class most often predicted where the label says 5
    cell = client.get(f"/api/images?gt=5&pred={predicted}").json()
    assert cell["order"] == [b] and np.asarray(cell["confusion"]).sum() == 2 * good.size
    client.post(f"/api/edit/{a}", json={"op": "region", "x": 0, "y": 0, "cls": 4})  # now a disagrees with the model
    assert client.get("/api/images").json()["summaries"][a]["mIoU"] < 1.0


def test_two_writers_leave_a_whole_png(studio, monkeypatch):
    import segkit.studio.session as session

    stem = stems(studio)[0]
    h, w = studio.size(stem)
    target = studio.mask_path(stem)
    written, renamed, errors, done = [], [], [], threading.Event()
    real_save, real_replace = session.save_index_png, os.replace

    def save(path, *args, **kwargs):  # where each PNG is encoded: never the mask a reader opens
        written.append(Path(path))
        real_save(path, *args, **kwargs)

    def replace(src, dst):
        renamed.append((Path(src), Path(dst)))
        real_replace(src, dst)

    monkeypatch.setattr(session, "save_index_png", save)
    monkeypatch.setattr(session.os, "replace", replace)

    def paint(cls):
        try:
            for _ in range(5):
                studio.paint(stem, [[2, 2], [30, 30]], 3, cls)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    def read():  # a reader (the page, a training run) must never see half a PNG
        while not done.is_set():
            try:
                if target.is_file():
                    assert read_mask(target).shape == (h, w)
            except Exception as exc:  # noqa: BLE001 - reported below
                errors.append(exc)
                return

    reader = threading.Thread(target=read)
    reader.start()
    threads = [threading.Thread(target=paint, args=(cls,)) for cls in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    done.set()
    reader.join()
    assert not errors and read_mask(target)[16, 16] in (1, 2)
    assert len(written) == 10 and target not in written and all(p.parent == target.parent for p in written)
    assert [(src, dst) for src, dst in renamed if dst == target] == [(p, target) for p in written]
    assert [p.name for p in studio.masks_dir.iterdir()] and not list(studio.masks_dir.glob(".*"))


def test_same_named_images_from_two_folders_get_their_own_labels(predictor, sample_root, sample_run, tmp_path):
    import shutil

    first, second = sorted((sample_root / "images" / "val").iterdir())[:2]
    for folder, source in (("a", first), ("b", second)):
        (tmp_path / folder).mkdir()
        shutil.copy(source, tmp_path / folder / "img.png")
    images = [tmp_path / "a" / "img.png", tmp_path / "b" / "img.png"]
    studio = Studio(predictor, images, tmp_path / "masks")
    assert studio.images == {"a_img": images[0], "b_img": images[1]}  # as `segkit infer` names their outputs
    client = client_for(studio)
    client.post("/api/edit/b_img", json={"op": "brush", "points": [[3, 3]], "radius": 1, "cls": 1})
    assert sorted(p.name for p in studio.masks_dir.iterdir()) == ["b_img.png", "labelled.txt"]
    assert client.get("/api/layers/a_img").headers["x-labelled"] == "0"
    assert client.get("/api/image/b_img").content == second.read_bytes()
    studio.accept("a_img")
    out = tmp_path / "labels.json"
    assert (
        load_tool("studio").main(
            [str(p) for p in images]
            + [
                "--checkpoint",
                str(sample_run / "best.pth"),
                "--masks",
                str(studio.masks_dir),
                "--export",
                "coco",
                str(out),
            ]
        )
        == 0
    )
    assert [im["file_name"] for im in json.loads(out.read_text())["images"]] == ["a/img.png", "b/img.png"]
    shutil.copy(first, tmp_path / "a" / "img.jpg")  # one folder, one stem: the folder format cannot pair the labels
    one_folder = Studio(predictor, [tmp_path / "a" / "img.png", tmp_path / "a" / "img.jpg"], tmp_path / "masks")
    assert list(one_folder.images) == ["img_png", "img_jpg"]
    assert "rename them apart" in client_for(one_folder).get("/api/meta").json()["finetune"]


def test_cli_exports_labels_as_coco(studio, sample_run, tmp_path, capsys):
    stem = stems(studio)[0]
    studio.accept(stem)
    out = tmp_path / "labels.json"
    images = [str(p) for p in studio.images.values()]
    assert (
        load_tool("studio").main(
            images
            + [
                "--checkpoint",
                str(sample_run / "best.pth"),
                "--masks",
                str(studio.masks_dir),
                "--export",
                "coco",
                str(out),
            ]
        )
        == 0
    )
    data = json.loads(out.read_text())
    assert [im["file_name"] for im in data["images"]] == [studio.path(stem).name]
    assert "1 image(s)" in capsys.readouterr().out


def test_the_fine_tune_command_trains_on_the_corrected_folder(client, studio, tmp_path, capsys):
    for stem in stems(studio)[:2]:
        client.post(f"/api/edit/{stem}", json={"op": "brush", "points": [[3, 3]], "radius": 2, "cls": 1})
    meta = client.get("/api/meta").json()
    assert meta["corrected"] == 2
    words = shlex.split(meta["finetune"])
    assert words[:2] == ["segkit", "train"] and words[-2] == "--init-from"
    quick = [
        "data.num_workers=0",
        "train.device=cpu",
        "train.batch_size=2",
        "train.iterations=1",
        "train.val_interval=1",
        "train.checkpoint_interval=1",
        "train.log_interval=1",
    ]
    work = tmp_path / "finetune"
    assert load_tool("train").main(words[2:] + quick + ["--work-dir", str(work)]) == 0
    logged = [json.loads(line) for line in (work / "metrics.jsonl").read_text().splitlines()]
    assert any("val" in line for line in logged) and (work / "last.pth").is_file()
    assert "2 train / 2 val images" in capsys.readouterr().out  # the labelled ones only


def test_cli_serves_on_loopback_with_a_token_and_warns_when_opened_up(studio, sample_run, monkeypatch, capsys):
    import uvicorn

    served = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: served.append((app, kw)))
    monkeypatch.delenv("SEGKIT_STUDIO_TOKEN", raising=False)
    images = [str(p) for p in studio.images.values()]
    common = images + ["--checkpoint", str(sample_run / "best.pth"), "--masks", str(studio.masks_dir), "--port", "9"]
    assert load_tool("studio").main(common) == 0
    app, kw = served[-1]
    assert kw == {"host": "127.0.0.1", "port": 9, "log_level": "warning", "ssl_certfile": None, "ssl_keyfile": None}
    out, err = capsys.readouterr()
    token = app.state.token
    assert f"http://127.0.0.1:9/?token={token}" in out and "warning" not in err and len(token) >= 43
    assert load_tool("studio").main(common) == 0 and served[-1][0].state.token != token  # a new one per launch
    capsys.readouterr()
    monkeypatch.setenv("SEGKIT_STUDIO_TOKEN", "from-the-environment-0123")
    assert load_tool("studio").main(common + ["--host", "0.0.0.0"]) == 0
    app, kw = served[-1]
    out, err = capsys.readouterr()
    assert kw["host"] == "0.0.0.0" and app.state.token == "from-the-environment-0123"
    assert "http://127.0.0.1:9/?token=from-the-environment-0123" in out
    assert "--certfile" in err and "--keyfile" in err and "ssh -L 9:127.0.0.1:9" in err
    assert load_tool("studio").main(common + ["--token", "short"]) == 2
    assert "at least 16 characters" in capsys.readouterr().err
    assert load_tool("studio").main(common + ["--certfile", str(sample_run / "best.pth")]) == 2
    assert "--certfile and --keyfile go together" in capsys.readouterr().err
    assert load_tool("studio").main(["/nowhere/*.png", "--checkpoint", str(sample_run / "best.pth")]) == 2
    assert "no images" in capsys.readouterr().err


def test_a_label_of_the_wrong_size_is_refused_and_kept(client, studio):
    stem = stems(studio)[0]
    studio.masks_dir.mkdir()
    Image.fromarray(np.zeros((7, 9), np.uint8)).save(studio.mask_path(stem))
    before = state(studio.masks_dir)
    response = client.get(f"/api/layers/{stem}")
    assert response.status_code == 422 and "9x7 mask" in response.json()["detail"]
    assert client.post(f"/api/edit/{stem}", json={"op": "region", "x": 1, "y": 1, "cls": 1}).status_code == 422
    assert state(studio.masks_dir) == before


def test_the_fine_tune_command_clears_the_raw_label_mapping_of_other_data_sets(studio, tmp_path):
    from segkit.config import load_config
    from segkit.studio.server import finetune_command

    words = shlex.split(finetune_command(studio))
    overrides = [w for w in words if "=" in w]
    cfg = load_config("configs/isbi/unet_r18.yaml", overrides)  # ISBI maps raw 255 -> class 1
    assert cfg.data.label_map == {} and cfg.data.reduce_zero_label is False and cfg.data.format == "folder"
    assert cfg.data.split_file == str(studio.masks_dir / "labelled.txt")
    # a DRIVE-like config names its files 21_training.tif / 21_manual1.gif with FOV masks: the studio's are <stem>.png
    drive = tmp_path / "drive.yaml"
    drive.write_text(
        f"base: {Path('configs/isbi/unet_r18.yaml').resolve()}\n"
        "data: {image_suffix: _training, mask_suffix: _manual1, pair_pattern: '(?P<key>\\d+)_',\n"
        "       ignore_mask_dir: 'fov/{split}', ignore_mask_suffix: _training_mask}\n"
    )
    assert load_config(drive).data.pair_pattern == "(?P<key>\\d+)_"
    cfg = load_config(drive, overrides)
    assert (cfg.data.image_suffix, cfg.data.mask_suffix, cfg.data.ignore_mask_suffix) == ("", "", "")
    assert cfg.data.pair_pattern is None and cfg.data.ignore_mask_dir is None


def test_cli_without_the_web_stack_says_what_to_install(studio, sample_run, monkeypatch, capsys):
    import sys

    for name in ("segkit.studio", "segkit.studio.server"):
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "fastapi", None)  # as if fastapi were not installed
    images = [str(p) for p in studio.images.values()]
    assert load_tool("studio").main(images + ["--checkpoint", str(sample_run / "best.pth")]) == 2
    assert "pip install 'segkit[studio]'" in capsys.readouterr().err


def test_meta_names_files_relative_to_the_folders_given(predictor, sample_root, sample_run, tmp_path, monkeypatch):
    import shutil

    from segkit.config import load_config

    (tmp_path / "photos").mkdir()
    for image in sorted((sample_root / "images" / "val").iterdir())[:2]:
        shutil.copy(image, tmp_path / "photos" / image.name)
    shutil.copytree(sample_run, tmp_path / "run", ignore=shutil.ignore_patterns("*.png", "*.jsonl", "*.log"))
    monkeypatch.chdir(tmp_path)
    studio = Studio(predictor, sorted(Path("photos").iterdir()), Path("labels"), checkpoint=Path("run/best.pth"))
    client = client_for(studio)
    stem = stems(studio)[0]
    assert client.post(f"/api/save/{stem}").json()["saved"] == f"labels/{stem}.png"
    meta = client.get("/api/meta").text
    assert str(tmp_path) not in meta and str(Path.home()) not in meta
    words = shlex.split(client.get("/api/meta").json()["finetune"])
    assert words[2] == "run/config.yaml" and words[-1] == "run/best.pth"
    cfg = load_config(words[2], [w for w in words if "=" in w])
    root = Path(cfg.data.root)
    assert root == Path("photos") and (root / cfg.data.mask_dir).resolve() == (tmp_path / "labels").resolve()
    assert (root / cfg.data.split_file).read_text().split() == [stem]
