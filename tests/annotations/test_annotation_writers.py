"""segkit.annotations.WRITERS: one dict of annotation formats that `segkit infer --export` and
`segkit studio --export` both write; exports/ keeps model graphs only, one dict behind `segkit export --format`."""

import json
import shutil

import numpy as np
import pytest
from PIL import Image

from segkit.annotations import WRITERS, AnnotationWriter, WriterOptions, make_writer
from segkit.config import ConfigError
from segkit.data import read_mask
from segkit.exports import FORMATS
from tests.tool_loader import load_tool

OPTIONS = WriterOptions(["background", "vessel"], [[0, 0, 0], [255, 0, 0]], skip=[0])


def a_mask() -> np.ndarray:
    mask = np.zeros((12, 16), np.uint8)
    mask[3:8, 4:10] = 1
    return mask


@pytest.mark.parametrize("name", sorted(WRITERS))
def test_every_writer_is_made_from_the_same_options_and_writes(name, tmp_path):
    writer = make_writer(name, OPTIONS)
    assert isinstance(writer, AnnotationWriter)
    writer.add("a.png", a_mask(), np.full((12, 16), 0.75, np.float32))
    (tmp_path / "a.png").write_bytes(b"image")
    written = writer.save(tmp_path / ("out" if name == "datumaro" else "out.json"), {"a.png": tmp_path / "a.png"})
    assert written.is_file() and "vessel" in written.read_text() and "background" not in written.read_text()


def test_datumaro_writes_the_folder_with_the_images_and_refuses_a_json_path(tmp_path):
    (tmp_path / "in" / "a").mkdir(parents=True)
    Image.fromarray(a_mask()).save(tmp_path / "in" / "a" / "img.png")
    writer = WRITERS["datumaro"].from_options(OPTIONS)
    writer.add("a/img.png", a_mask())
    written = writer.save(tmp_path / "set", {"a/img.png": tmp_path / "in" / "a" / "img.png"})
    assert written == tmp_path / "set" / "annotations" / "instances_default.json"
    assert (tmp_path / "set" / "images" / "default" / "a" / "img.png").read_bytes() == (
        tmp_path / "in" / "a" / "img.png"
    ).read_bytes()
    with pytest.raises(ConfigError, match="datumaro writes a folder"):
        writer.save(tmp_path / "set.json")


def test_an_unknown_format_names_the_ones_there_are():
    with pytest.raises(ConfigError, match="--export yolo: the formats are coco, labelstudio, datumaro"):
        make_writer("yolo", OPTIONS)


def test_studio_exports_its_labels_in_every_format(sample_root, sample_run, tmp_path, capsys):
    images = sorted((sample_root / "images" / "val").iterdir())[:2]
    masks = tmp_path / "masks"
    masks.mkdir()
    shutil.copy(sample_root / "masks" / "val" / images[0].name, masks / images[0].name)  # one image labelled
    argv = [str(p) for p in images] + [
        "--checkpoint",
        str(sample_run / "best.pth"),
        "--masks",
        str(masks),
        "--export",
        "labelstudio",
        str(tmp_path / "tasks.json"),
        "--export",
        "datumaro",
        str(tmp_path / "set"),
    ]
    assert load_tool("studio").main(argv) == 0
    tasks = json.loads((tmp_path / "tasks.json").read_text())
    assert [t["data"]["image"] for t in tasks] == [f"/data/local-files/?d={images[0].name}"]
    assert (tmp_path / "tasks.label_config.xml").is_file()
    coco = json.loads((tmp_path / "set" / "annotations" / "instances_default.json").read_text())
    assert [im["file_name"] for im in coco["images"]] == [images[0].name]
    assert (tmp_path / "set" / "images" / "default" / images[0].name).is_file()
    assert read_mask(masks / images[0].name).shape == (coco["images"][0]["height"], coco["images"][0]["width"])
    assert "labelstudio labels:" in capsys.readouterr().out


def test_studio_and_infer_refuse_an_unknown_format_before_loading_anything(tmp_path, capsys):
    for tool in ("studio", "infer"):
        assert (
            load_tool(tool).main(
                ["x.png", "--checkpoint", str(tmp_path / "missing.pth"), "--export", "yolo", str(tmp_path / "y.txt")]
            )
            == 2
        )
        assert "--export yolo: the formats are coco, labelstudio, datumaro" in capsys.readouterr().err


def test_segkit_export_offers_the_formats_of_one_dict(capsys):
    with pytest.raises(SystemExit):
        load_tool("export").main(["x.pth", "--format", "tflite"])
    err = capsys.readouterr().err
    assert "invalid choice: 'tflite'" in err and "--format {onnx,torchscript}" in err
    assert {name: graph.suffix for name, graph in FORMATS.items()} == {
        "onnx": ".onnx",
        "torchscript": ".torchscript.pt",
    }
