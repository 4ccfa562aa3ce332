"""Prediction exports for annotation tools, checked with the tools' own readers: pycocotools in segkit's
venv and, in a venv of their own (they cannot share segkit's pins; see tests/clients-requirements.txt),
datumaro's COCO importer and Label Studio's brush decoders and COCO importers (label_studio_sdk's and
label-studio-converter's)."""

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from segkit.annotations.coco import CocoExport, decode_coco
from segkit.annotations.labelstudio import LabelStudioExport, brush_rle
from segkit.annotations.regions import region_polygons, unique_file_names
from segkit.data import read_image, read_mask
from tests.tool_loader import load_tool

NAMES = ["background", "vessel", "lesion"]
PALETTE = [[0, 0, 0], [200, 30, 30], [30, 200, 30]]


def vessel_mask(h=64, w=80) -> np.ndarray:
    """Background with a one-pixel-wide diagonal vessel, a thicker curved one, and a 3x3 lesion."""
    mask = np.zeros((h, w), np.int64)
    for i in range(min(h, w) - 4):
        mask[i + 2, i + 2] = 1
    yy, xx = np.mgrid[:h, :w]
    mask[np.abs(yy - (h / 2 + 10 * np.sin(xx / 9))) < 2] = 1
    mask[50:53, 10:13] = 2
    return mask


def rasterise(polygons, h, w) -> np.ndarray:
    return mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(polygons, h, w))).astype(bool)


def test_polygons_draw_back_every_pixel_of_thin_and_one_pixel_regions():
    region = np.zeros((20, 20), bool)
    region[3:12, 4:15] = True
    region[17, 17] = True
    region[15, 2:12] = True  # a one-pixel-wide line
    polygons = region_polygons(region)
    assert len(polygons) == 3 and all(len(p) >= 6 for p in polygons)
    assert np.array_equal(rasterise(polygons, 20, 20), region)


def test_same_base_names_get_distinct_names_relative_to_their_common_folder(tmp_path):
    paths = [tmp_path / "a" / "img.png", tmp_path / "b" / "img.png", tmp_path / "b" / "other.png"]
    assert unique_file_names(paths) == dict(zip(paths, ["a/img.png", "b/img.png", "b/other.png"]))
    assert unique_file_names(paths[1:]) == dict(zip(paths[1:], ["img.png", "other.png"]))


def test_coco_skips_classes_and_writes_the_datumaro_layout_for_a_folder(tmp_path):
    coco = CocoExport(NAMES, skip=[0])
    coco.add("v.png", vessel_mask())
    path = coco.save(tmp_path / "set")
    assert path == tmp_path / "set" / "annotations" / "instances_default.json"
    data = json.loads(path.read_text())
    assert [c["name"] for c in data["categories"]] == ["vessel", "lesion"]
    assert sorted(a["category_id"] for a in data["annotations"]) == [2, 3]
    want = np.where(vessel_mask() == 0, 255, vessel_mask())
    assert np.array_equal(decode_coco(path, "v.png"), want)


def test_coco_polygons_one_annotation_per_region_with_its_own_score(tmp_path):
    mask = vessel_mask()
    confidence = np.where(mask == 2, 0.9, 0.4).astype(np.float32)
    coco = CocoExport(NAMES, skip=[0], polygons=True)
    coco.add("v.png", mask, confidence)
    lesion = [a for a in coco.annotations if a["category_id"] == 3]
    assert len(lesion) == 1 and lesion[0]["score"] == pytest.approx(0.9)
    assert isinstance(lesion[0]["segmentation"], list) and lesion[0]["bbox"] == [10.0, 50.0, 3.0, 3.0]
    drawn = np.zeros(mask.shape, bool)
    for a in coco.annotations:
        if a["category_id"] == 2:
            drawn |= rasterise(a["segmentation"], *mask.shape)
    assert np.array_equal(drawn, mask == 1)  # the one-pixel diagonal vessel included


def test_label_studio_tasks_name_each_class_and_the_config_declares_only_exported_ones(tmp_path):
    mask = vessel_mask()
    export = LabelStudioExport(NAMES, PALETTE, skip=[0])
    export.add("a/v.png", mask, np.full(mask.shape, 0.5, np.float32))
    path = export.save(tmp_path / "tasks.json")
    task = json.loads(path.read_text())[0]
    assert task["data"]["image"] == "/data/local-files/?d=a/v.png"
    results = task["predictions"][0]["result"]
    assert [r["value"]["brushlabels"] for r in results] == [["vessel"], ["lesion"]]
    assert all(r["original_width"] == 80 and r["original_height"] == 64 and r["score"] == 0.5 for r in results)
    config = (tmp_path / "tasks.label_config.xml").read_text()
    assert '<BrushLabels name="label" toName="image">' in config and 'value="background"' not in config


# --------------------------------------------------------------------------- the tools' own packages
CLIENTS = Path(__file__).resolve().parents[2] / ".venv-clients"
REQUIREMENTS = Path(__file__).resolve().parents[1] / "clients-requirements.txt"


@pytest.fixture(scope="session")
def clients_python() -> Path:
    """Python of the clients venv, built on first use from tests/clients-requirements.txt."""
    python = CLIENTS / "bin" / "python"
    if not python.exists():
        try:
            subprocess.run([sys.executable, "-m", "venv", str(CLIENTS)], check=True, capture_output=True)
            subprocess.run(
                [str(python), "-m", "pip", "install", "-q", "-r", str(REQUIREMENTS)],
                check=True,
                capture_output=True,
                timeout=1200,
            )
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
            shutil.rmtree(CLIENTS, ignore_errors=True)
            pytest.skip(f"could not build {CLIENTS} from {REQUIREMENTS.name} (no package index?): {exc}")
    return python


def test_clients_requirements_are_pinned():
    """The clients venv is built once and kept: unpinned, two machines would test against different releases."""
    lines = [line.strip() for line in REQUIREMENTS.read_text().splitlines() if line.strip()[:1] not in ("", "#")]
    assert lines and all("==" in line for line in lines), lines


def in_clients(python: Path, code: str, *args) -> dict:
    """Run ``code`` in the clients venv (segkit importable, torch not); it prints one JSON object."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    run = subprocess.run(
        [str(python), "-c", textwrap.dedent(code), *map(str, args)],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


def test_datumaro_imports_the_coco_folder_with_same_named_images_and_no_background(clients_python, tmp_path):
    masks = {tmp_path / "in" / "a" / "img.png": vessel_mask(), tmp_path / "in" / "b" / "img.png": vessel_mask().T}
    names = unique_file_names(list(masks))
    coco = CocoExport(NAMES, skip=[0])
    for path, mask in masks.items():
        coco.add(names[path], mask, np.full(mask.shape, 0.5, np.float32))
    coco.save(tmp_path / "set")
    got = in_clients(
        clients_python,
        """
        import json, sys
        import datumaro as dm
        dataset = dm.Dataset.import_from(sys.argv[1], "coco_instances")
        labels = [l.name for l in dataset.categories()[dm.AnnotationType.label]]
        items = {item.id: {labels[a.label]: int(a.image.sum()) for a in item.annotations
                           if a.type == dm.AnnotationType.mask} for item in dataset}
        print(json.dumps({"labels": labels, "items": items}))
        """,
        tmp_path / "set",
    )
    assert got["labels"] == ["vessel", "lesion"]
    assert got["items"] == {
        name[:-4]: {"vessel": int((m == 1).sum()), "lesion": int((m == 2).sum())}
        for name, m in zip(names.values(), masks.values())
    }


def test_label_studio_importers_read_coco_polygons(clients_python, tmp_path):
    coco = CocoExport(NAMES, skip=[0], polygons=True)
    coco.add("v.png", vessel_mask())
    coco.save(tmp_path / "c.json")
    got = in_clients(
        clients_python,
        """
        import json, subprocess, sys
        from label_studio_sdk.converter.imports.coco import convert_coco_to_ls
        convert_coco_to_ls(sys.argv[1], sys.argv[2] + "/sdk.json", out_type="predictions")
        cli = [sys.executable, "-c", "from label_studio_converter.main import main; main()"]
        subprocess.run(cli + ["import", "coco", "-i", sys.argv[1], "-o", sys.argv[2] + "/conv.json",
                              "--out-type", "predictions"], check=True, capture_output=True)
        labels = {}
        for name in ("sdk", "conv"):
            results = json.load(open(f"{sys.argv[2]}/{name}.json"))[0]["predictions"][0]["result"]
            labels[name] = sorted(r["value"]["polygonlabels"][0] for r in results if r["type"] == "polygonlabels")
        print(json.dumps(labels))
        """,
        tmp_path / "c.json",
        tmp_path,
    )
    want = sorted(NAMES[a["category_id"] - 1] for a in coco.annotations)
    assert got == {"sdk": want, "conv": want}


def test_label_studio_decoders_read_our_brush_masks_and_the_sdk_accepts_the_tasks(clients_python, tmp_path):
    mask = vessel_mask()
    mask[0, :] = 2  # a run longer than 256 values (16-bit length field)
    export = LabelStudioExport(NAMES, PALETTE, skip=[0])
    assert export.encode is brush_rle  # no Label Studio package in segkit's venv: our encoder is tested here
    export.add("v.png", mask)
    polygons = LabelStudioExport(NAMES, PALETTE, skip=[0], polygons=True)
    polygons.add("v.png", mask)
    got = in_clients(
        clients_python,
        """
        import json, sys
        import numpy as np
        from label_studio_converter.brush import decode_rle as converter_decode
        from label_studio_sdk.converter.brush import decode_rle as sdk_decode
        from label_studio_sdk.label_interface import LabelInterface
        from segkit.annotations.labelstudio import brush_encoder
        out = {"encoder": brush_encoder().__module__}
        for path in sys.argv[1:]:
            task = json.load(open(path))[0]
            interface = LabelInterface(open(path.replace(".json", ".label_config.xml")).read())
            out[path] = interface.validate_prediction(task["predictions"][0], return_errors=True)
        results = json.load(open(sys.argv[1]))[0]["predictions"][0]["result"]
        out["sums"] = [[int(decode(r["value"]["rle"]).reshape(-1, 4)[:, 3].astype(bool).sum()) for r in results]
                       for decode in (converter_decode, sdk_decode)]
        print(json.dumps(out))
        """,
        export.save(tmp_path / "brush.json"),
        polygons.save(tmp_path / "polygons.json"),
    )
    want = [int((mask == 1).sum()), int((mask == 2).sum())]
    assert got == {
        "encoder": "label_studio_sdk.converter.brush",
        "sums": [want, want],
        str(tmp_path / "brush.json"): [],
        str(tmp_path / "polygons.json"): [],
    }
    points = [p for r in polygons.tasks[0]["predictions"][0]["result"] for p in r["value"]["points"]]
    assert all(0 <= x <= 100 and 0 <= y <= 100 for x, y in points)


def test_infer_exports_same_named_camvid_images_as_a_datumaro_data_set_and_label_studio_tasks(
    camvid_run, camvid_root, clients_python, tmp_path, capsys
):
    image = min((camvid_root / "test").iterdir())
    for folder in ("a", "b"):
        (tmp_path / "in" / folder).mkdir(parents=True)
        shutil.copy(image, tmp_path / "in" / folder / "img.png")
    argv = [
        str(tmp_path / "in" / "a"),
        str(tmp_path / "in" / "b"),
        "--checkpoint",
        str(camvid_run / "last.pth"),
        "--out",
        str(tmp_path / "out"),
        "--export",
        "coco",
        str(tmp_path / "set"),
        "--export",
        "labelstudio",
        str(tmp_path / "ls.json"),
        "--skip-classes",
        "Sky",
        "--no-outlines",
        "--no-labels",
        "--no-legend",
    ]
    assert load_tool("infer").main(argv) == 0
    sky = read_mask(tmp_path / "out" / "a_img_mask.png") == 0
    overlay = read_image(tmp_path / "out" / "a_img_overlay.png")
    assert (tmp_path / "out" / "b_img_mask.png").is_file()  # same base name, distinct outputs
    assert sky.any() and overlay.shape == (360, 480, 3)
    assert (overlay[sky] == read_image(image)[sky]).all()  # not painted, outlined, named or under a legend
    assert "Label Studio's COCO importers read polygons only" in capsys.readouterr().out
    tasks = json.loads((tmp_path / "ls.json").read_text())
    assert [t["data"]["image"] for t in tasks] == ["/data/local-files/?d=a/img.png", "/data/local-files/?d=b/img.png"]
    assert all(r["value"]["brushlabels"] != ["Sky"] for t in tasks for r in t["predictions"][0]["result"])
    got = in_clients(
        clients_python,
        """
        import json, sys
        import datumaro as dm
        dataset = dm.Dataset.import_from(sys.argv[1], "coco_instances")
        labels = [l.name for l in dataset.categories()[dm.AnnotationType.label]]
        print(json.dumps({"labels": labels, "items": sorted(item.id for item in dataset),
                          "sizes": sorted({item.media.data.shape[:2] for item in dataset})}))
        """,
        tmp_path / "set",
    )
    assert got["items"] == ["a/img", "b/img"] and got["sizes"] == [[360, 480]] and "Sky" not in got["labels"]


def test_infer_refuses_an_unknown_format_or_class_before_predicting(camvid_run, camvid_root, tmp_path, capsys):
    image = str(min((camvid_root / "test").iterdir()))
    tool, ckpt = load_tool("infer"), ["--checkpoint", str(camvid_run / "last.pth"), "--out", str(tmp_path / "o")]
    assert tool.main([image, *ckpt, "--export", "yolo", str(tmp_path / "y.txt")]) == 2
    assert "--export yolo: the formats are coco, labelstudio" in capsys.readouterr().err
    assert tool.main([image, *ckpt, "--skip-classes", "background"]) == 2
    assert "'background' is not a class; the classes are Sky, Building" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()  # nothing half-written
