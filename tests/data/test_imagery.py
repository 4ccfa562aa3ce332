"""Bit depth, bands and colour masks (issue #20): read_image keeps the stored pixel type and bands,
data.value_range maps values to 0..1, class colours become class ids."""

import cv2
import numpy as np
import pytest
import tifffile
import torch

from segkit.config import ConfigError, load_config
from segkit.data import DataError, Normalizer, read_image
from segkit.data.colors import ColorTable, read_class_csv
from segkit.data.normalize import band_ranges, measure_range, to_display, to_unit


def test_16_bit_png_keeps_its_values(tmp_path):
    """Before: img >> 8 turned 12-bit 0..4095 into 0..15."""
    values = (np.arange(64 * 64).reshape(64, 64) % 4096).astype(np.uint16)
    cv2.imwrite(str(tmp_path / "a.png"), values)
    image = read_image(tmp_path / "a.png")
    assert image.dtype == np.uint16 and image.shape == (64, 64, 3)
    assert np.array_equal(image[..., 1], values)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
def test_tiff_bands_planar_or_interleaved_read_the_same(tmp_path, dtype):
    rng = np.random.default_rng(0)
    bands = (rng.random((5, 40, 30)) * (1 if dtype == np.float32 else np.iinfo(dtype).max)).astype(dtype)
    tifffile.imwrite(tmp_path / "planar.tif", bands, planarconfig="separate", photometric="minisblack")
    tifffile.imwrite(
        tmp_path / "contig.tif", np.moveaxis(bands, 0, -1), planarconfig="contig", photometric="minisblack"
    )
    for name in ("planar.tif", "contig.tif"):
        image = read_image(tmp_path / name, channels=5)
        assert image.dtype == dtype and image.shape == (40, 30, 5)
        assert np.array_equal(image, np.moveaxis(bands, 0, -1))
    with pytest.raises(DataError, match="5 band.*data.channels=3.*set data.channels=5"):
        read_image(tmp_path / "planar.tif")


def test_rgb_tiff_and_grey_tiff_as_rgb(tmp_path):
    rgb = np.random.default_rng(1).integers(0, 65535, (20, 10, 3), dtype=np.uint16)
    tifffile.imwrite(tmp_path / "rgb.tif", rgb, photometric="rgb")
    assert np.array_equal(read_image(tmp_path / "rgb.tif"), rgb)  # RGB order, not OpenCV's BGR
    tifffile.imwrite(tmp_path / "grey.tif", rgb[..., 0])
    assert np.array_equal(read_image(tmp_path / "grey.tif"), np.repeat(rgb[..., :1], 3, axis=2))
    assert read_image(tmp_path / "grey.tif", channels=1).shape == (20, 10, 1)


def test_value_range_maps_to_unit_per_band():
    image = np.stack([np.full((2, 2), 100, np.uint16), np.full((2, 2), 4000, np.uint16)], axis=2)
    out = to_unit(image, [[0, 200], [3000, 5000]])
    assert out.dtype == np.float32 and np.allclose(out[0, 0], [0.5, 0.5])
    assert np.allclose(to_unit(image, [0, 4000])[0, 0], [0.025, 1.0])  # one pair for every band
    assert to_unit(np.zeros((2, 2, 3), np.uint8)).dtype == np.uint8  # 8-bit, no range: stays uint8
    assert np.allclose(to_unit(np.full((1, 1, 1), 65535, np.uint16)), 1.0)  # no range: the type's
    with pytest.raises(DataError, match="one \\[lo, hi\\] per band"):
        band_ranges([[0, 1], [0, 1]], 3)
    with pytest.raises(DataError, match="hi must be above"):
        band_ranges([5, 5], 1)


def test_measured_range_is_the_percentiles():
    values = np.arange(10001, dtype=np.uint16).reshape(-1, 1, 1)
    ((lo, hi),) = measure_range([values])
    assert lo == pytest.approx(50, abs=1) and hi == pytest.approx(9950, abs=1)


def test_normalizer_gives_the_same_for_uint8_and_unit_float():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (1, 3, 8, 8), dtype=np.uint8)
    norm = Normalizer([0.4, 0.5, 0.6], [0.2, 0.3, 0.4])
    a = norm(torch.from_numpy(image))
    b = norm(torch.from_numpy(image.astype(np.float32) / 255))
    assert torch.allclose(a, b, atol=1e-5)
    with pytest.raises(DataError, match="4 band"):
        norm(torch.zeros(1, 4, 2, 2))


def test_display_stretches_deep_images_only():
    deep = (np.random.default_rng(0).random((30, 30, 4)) * 4095).astype(np.uint16)
    shown = to_display(deep)
    assert shown.dtype == np.uint8 and shown.shape == (30, 30, 3) and shown.max() == 255 and shown.min() == 0
    assert np.array_equal(to_display(deep, bands=[4, 4, 4])[..., 0], to_display(deep[..., 3:])[..., 0])
    eight = np.random.default_rng(1).integers(0, 200, (5, 5, 3), dtype=np.uint8)
    assert np.array_equal(to_display(eight), eight)


def test_channels_set_in_channels_and_need_one_mean_per_band():
    cfg = load_config("sample/fcn_r18", ["data.channels=4", "data.mean=[0.5,0.5,0.5,0.5]", "data.std=[1,1,1,1]"])
    assert cfg.model.backbone.in_channels == 4
    cfg = load_config(
        "sample/fcn_r18",
        ["data.channels=4", "data.mean=[0.5,0.5,0.5,0.5]", "data.std=[1,1,1,1]", "model.backbone.in_channels=3"],
    )
    assert cfg.model.backbone.in_channels == 3  # set: kept
    assert load_config("sample/fcn_r18").model.backbone.in_channels == 3
    with pytest.raises(ConfigError, match="data.mean has 3 values for data.channels=4"):
        load_config("sample/fcn_r18", ["data.channels=4"])


def test_class_colours_map_to_ids_and_unknown_colours_are_named(tmp_path):
    (tmp_path / "class_dict.csv").write_text("name,r,g,b\nSky,128,128,128\nRoad,128,64,128\nVoid,0,0,0\n")
    rows = read_class_csv(tmp_path / "class_dict.csv")
    assert rows[1] == ("Road", (128, 64, 128))
    colours = [c for n, c in rows if n != "Void"]
    table = ColorTable(colours, ignore=[(0, 0, 0)], ignore_index=255)
    rgb = np.array([[[128, 128, 128], [128, 64, 128], [0, 0, 0]]], np.uint8)
    assert table.to_index(rgb).tolist() == [[0, 1, 255]]
    smeared = rgb.copy()
    smeared[0, 2] = (64, 96, 128)
    with pytest.raises(DataError, match=r"\[64, 96, 128\] \(1 px\).*data.unknown_colors=ignore"):
        table.to_index(smeared, "m.png")
    found = {}
    assert table.to_index(smeared, unknown=found).tolist() == [[0, 1, 255]] and found == {(64, 96, 128): 1}
    lenient = ColorTable(colours, [(0, 0, 0)], 255, unknown="ignore")
    assert lenient.to_index(smeared).tolist() == [[0, 1, 255]]
    with pytest.raises(DataError, match="listed twice"):
        ColorTable(colours, ignore=[(128, 128, 128)])
