"""Regression tests for the two tools that crashed on first contact (issue 9 item 5)."""

import numpy as np
import pytest
import torch

from segkit.config import load_config
from segkit.config.files import shipped_configs
from segkit.data import format_classes, read_image
from segkit.visualization import overlays as V
from tests.data_files import write_image, write_mask
from tests.tool_loader import load_tool


@pytest.mark.parametrize("size", [64, 512])
def test_comparison_takes_a_batch_tensors_square_view(size):
    # eval --show-dir hands image[:, :h, :w].permute(1, 2, 0).numpy(): on a square image np.where kept
    # its channel-first strides and cv2.drawContours rejected the layout (ISBI, binary folder sets)
    image = torch.randint(0, 256, (3, size, size), dtype=torch.uint8).permute(1, 2, 0).numpy()
    mask = np.zeros((size, size), np.int64)
    mask[size // 4 : size // 2, size // 4 : size // 2] = 1
    picture = V.comparison(image, mask, 1 - mask, ["membrane", "cell"], None, 255)
    assert picture.flags["C_CONTIGUOUS"]
    # image | ground truth | prediction | errors, 4 px apart under a title bar, then a legend panel on the right
    bars = [b for b in range(0, picture.shape[0] - size + 1) if np.array_equal(picture[b : b + size, :size], image)]
    assert len(bars) == 1 and 0 < bars[0] < size and picture.shape[1] > 4 * size + 3 * 4, picture.shape
    tiles = picture[bars[0] : bars[0] + size]
    colours = V.palette_array(2)
    # the ground-truth tile is the image with alpha 0.6 of each pixel's class colour, but where outlines and names go
    blend = np.rint(image * 0.4 + colours[mask] * 0.6)
    assert (tiles[:, size + 4 : 2 * size + 4] == blend).all(-1).mean() > 0.6  # 0.78 at 64 px: names cover the rest
    assert np.array_equal(tiles[size - 1, 3 * (size + 4) - 1], [255, 255, 255])  # the gap before the error map
    assert (tiles[:, 3 * (size + 4) : 4 * size + 12] == [220, 30, 30]).all()  # every pixel is wrong: all red
    assert V.overlay(image, mask, V.palette_array(2)).flags["C_CONTIGUOUS"]


def _one_config_per_family() -> list:
    """The first shipped config of each data family (camvid/, voc/, ...): the classes come from the family."""
    first = {}
    for name in shipped_configs():
        if "/" in name:
            first.setdefault(name.split("/")[0], name)
    return sorted(first.values())


@pytest.mark.parametrize("name", _one_config_per_family())
def test_visualize_with_every_shipped_config_family(name, tmp_path, capsys):
    # READERS entries became builder functions and visualize unpacked them as (reader, names, palette)
    cfg = load_config(name).data
    names, palette = format_classes(cfg)
    assert len(names) == cfg.num_classes and (not palette or len(palette) == cfg.num_classes)
    image = write_image(tmp_path / "x.png", np.full((24, 32, 3), 120, np.uint8))
    mask = np.zeros((24, 32), np.uint8)
    mask[4:12, 4:20] = 1
    mask_path = write_mask(tmp_path / "m.png", mask)
    out = tmp_path / "vis.png"
    assert load_tool("visualize").main([str(image), str(mask_path), "--config", name, "--out", str(out)]) == 0
    assert read_image(out).shape == (24, 32, 3)  # the image's size, so it lays over the image
    plain = tmp_path / "plain.png"
    args = [str(image), str(mask_path), "--config", name, "--out", str(plain), "--no-outlines", "--no-labels"]
    assert load_tool("visualize").main([*args, "--no-legend"]) == 0
    # without decorations every pixel is half the grey image, half its class's colour from the config's palette
    colours = V.palette_array(cfg.num_classes, palette or None).astype(np.float64)
    expected = np.rint(120 * 0.5 + colours[mask] * 0.5)
    assert np.array_equal(read_image(plain), expected), name
    assert "error" not in capsys.readouterr().err


def test_format_classes_prefers_the_config_then_the_format():
    cfg = load_config("sample/fcn_r18").data
    assert format_classes(cfg)[0] == list(cfg.class_names)
    camvid = load_config("camvid/fcn_r50_os8").data
    names, palette = format_classes(camvid)
    assert names[0] == "Sky" and len(palette) == 11
    cfg.class_names, cfg.format = [], "folder"
    assert format_classes(cfg) == ([f"class_{i}" for i in range(6)], [])
