"""Scenes read, blended and written in bands of rows: the same mask as the in-memory slide inference, with
buffers whose size does not grow with the scene's height, and the input's georeferencing kept."""

import cv2
import numpy as np
import pytest
import tifffile
import torch
from PIL import Image

from segkit.config import load_config
from segkit.inference.modes import windows
from segkit.inference.predictor import Predictor, to_rgb
from segkit.inference.scenes import SceneReader, scene_rows
from tests.inference.test_modes import PixelModel

CROP, STRIDE, CLASSES = (128, 160), (96, 100), 5


class ContextModel(torch.nn.Module):
    """Small but not pointwise: a strided 3x3 conv, another 3x3 conv, bilinear upsampling; a pixel's logits
    depend on its neighbours, so they change near a window's edge and the blending of overlaps matters."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.a = torch.nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.b = torch.nn.Conv2d(8, CLASSES, 3, padding=1)

    def forward(self, x):
        y = self.b(torch.relu(self.a(x)))
        return {"out": torch.nn.functional.interpolate(y, size=x.shape[-2:], mode="bilinear", align_corners=False)}


def predictor_of(model=None, flip=False):
    cfg = load_config(
        "sample/fcn_r18",
        [
            f"data.num_classes={CLASSES}",
            f"eval.crop_size={list(CROP)}",
            f"eval.stride={list(STRIDE)}",
            "eval.crop_batch=3",
            f"eval.flip={str(flip).lower()}",
        ],
    )
    torch.manual_seed(0)
    return Predictor(model or ContextModel(), cfg, {}, "cpu", slide=True)


@pytest.fixture(scope="module")
def fcn():
    return predictor_of()


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    """A 700 x 900 RGB scene as a tiled TIFF, a stripped TIFF and a PNG."""
    folder = tmp_path_factory.mktemp("scene")
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (700, 900, 3), dtype=np.uint8)
    image[200:500, 300:700] //= 4  # some structure, so classes differ over the scene
    tifffile.imwrite(folder / "tiled.tif", image, tile=(64, 64))
    tifffile.imwrite(folder / "strips.tif", image, rowsperstrip=37)
    Image.fromarray(image).save(folder / "scene.png")
    return image, folder


@pytest.fixture(scope="module")
def reference(fcn, scene):
    return fcn.predict(scene[0])  # slide_logits over the whole image held in memory


@pytest.mark.parametrize("name", ["tiled.tif", "strips.tif", "scene.png"])
def test_the_streamed_mask_equals_the_in_memory_slide_mask(fcn, scene, reference, name, tmp_path):
    image, folder = scene
    out = fcn.segment_scene(folder / name, tmp_path / "mask.tif")
    mask = tifffile.imread(out)
    assert mask.shape == (700, 900) and mask.dtype == np.uint8
    assert np.array_equal(mask, reference)
    assert len(np.unique(reference)) > 1
    with tifffile.TiffFile(out) as tif:  # tiled, with the class colours as its palette
        page = tif.pages.first
        assert page.is_tiled and page.photometric == tifffile.PHOTOMETRIC.PALETTE


def test_flip_is_applied_window_by_window_and_changes_the_result(scene, tmp_path):
    image, folder = scene
    plain = tifffile.imread(predictor_of().segment_scene(folder / "tiled.tif", tmp_path / "a.tif"))
    flipped = predictor_of(flip=True).segment_scene(folder / "tiled.tif", tmp_path / "b.tif")
    assert not np.array_equal(plain, tifffile.imread(flipped))


def test_buffers_are_a_band_of_rows_whatever_the_height(tmp_path):
    """The largest logits buffer is C x crop height x width for a scene 4 and 16 crops tall; the reader holds
    at most the band plus one row of TIFF tiles; the model sees at most crop_batch windows at once."""
    model = PixelModel(CLASSES)
    predictor = predictor_of(model)
    sizes = {}
    for height in (4 * CROP[0], 16 * CROP[0]):
        path = tmp_path / f"h{height}.tif"
        tifffile.imwrite(path, np.full((height, 300, 3), 90, np.uint8), tile=(32, 32))
        stats = {}
        predictor.segment_scene(path, tmp_path / "mask.tif", stats=stats)
        sizes[height] = stats
    small, tall = sizes.values()
    assert small["logits"] == tall["logits"] == CLASSES * CROP[0] * 300
    assert tall["pixels"] <= (CROP[0] + 32) * 300 < 16 * CROP[0] * 300
    assert max(shape[0] for shape in model.seen) == 3 and {shape[-2:] for shape in model.seen} == {CROP}


def test_rows_come_in_order_and_cover_the_scene_once(scene):
    image, folder = scene
    done = []
    with SceneReader(folder / "strips.tif", to_rgb) as reader:
        rows = list(
            scene_rows(
                lambda x: torch.zeros(len(x), 2, *x.shape[1:3]), reader, 2, CROP, STRIDE, 4, progress=done.append
            )
        )
    starts = [y for y, _ in rows]
    assert starts == sorted(starts) and starts[0] == 0
    assert sum(ids.shape[0] for _, ids in rows) == 700
    assert sum(done) == len(windows(700, 900, CROP, STRIDE))


def test_a_hann_window_blends_to_the_whole_image_result_for_a_pointwise_model(scene, tmp_path):
    """Every window gives a pixel the same logits when the model sees one pixel, so any weighting of the
    overlaps must give the whole-image prediction."""
    image, folder = scene
    predictor = predictor_of(PixelModel(CLASSES))
    out = predictor.segment_scene(folder / "tiled.tif", tmp_path / "hann.tif", blend="hann")
    predictor.settings["mode"] = "whole"
    assert np.array_equal(tifffile.imread(out), predictor.predict(image))


def test_geotiff_tags_are_copied_to_the_mask(tmp_path):
    scale = (0.5, 0.5, 0.0)
    tiepoint = (0.0, 0.0, 0.0, 500000.0, 4100000.0, 0.0)
    keys = (1, 1, 0, 2, 1024, 0, 1, 1, 3072, 0, 1, 32633)  # projected, UTM zone 33N
    path = tmp_path / "geo.tif"
    tifffile.imwrite(
        path,
        np.zeros((300, 260, 3), np.uint8),
        tile=(64, 64),
        extratags=[(33550, 12, 3, scale, True), (33922, 12, 6, tiepoint, True), (34735, 3, len(keys), keys, True)],
    )
    out = predictor_of(PixelModel(CLASSES)).segment_scene(path, tmp_path / "mask.tif")
    with tifffile.TiffFile(out) as tif:
        tags = tif.pages.first.tags
        assert tuple(tags[33550].value) == scale and tuple(tags[33922].value) == tiepoint
        assert tuple(tags[34735].value) == keys


def test_multi_scale_settings_are_refused_for_a_scene(scene, tmp_path):
    predictor = predictor_of(PixelModel(CLASSES))
    predictor.settings["scales"] = [0.5, 1.0]
    with pytest.raises(ValueError, match="eval.scales"):
        predictor.segment_scene(scene[1] / "tiled.tif", tmp_path / "mask.tif")


class OneBandPixelModel(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(1, CLASSES, 1)

    def forward(self, x):
        return {"out": self.conv(x)}


@pytest.mark.parametrize("channels", [3, 1])
def test_a_png_scene_goes_in_as_the_model_takes_it_16_bit_and_one_band(tmp_path, channels):
    """A PNG scene (decoded whole) was handed to the model as read_image's 3-band native pixels: a 16-bit PNG
    went in as 0..65535 with no value range, a one-band model got three bands. It must equal the in-memory
    slide mask, which prepares the image as training did (16-bit >> 8 for an 8-bit RGB model; value_range)."""
    rng = np.random.default_rng(1)
    image = rng.integers(0, 4096, (300, 420, 3), dtype=np.uint16) * 16
    image[100:200, 150:300] //= 8
    path = tmp_path / "deep.png"
    cv2.imwrite(str(path), image[..., 0] if channels == 1 else image)
    if channels == 3:
        predictor = predictor_of(PixelModel(CLASSES))
    else:
        cfg = load_config(
            "sample/fcn_r18",
            [
                f"data.num_classes={CLASSES}",
                "data.channels=1",
                "data.mean=[0.5]",
                "data.std=[0.25]",
                "data.value_range=[0, 65535]",
                f"eval.crop_size={list(CROP)}",
                f"eval.stride={list(STRIDE)}",
            ],
        )
        predictor = Predictor(OneBandPixelModel(), cfg, {}, "cpu", slide=True)
    reference = predictor.predict(path)
    assert len(np.unique(reference)) > 1
    mask = tifffile.imread(predictor.segment_scene(path, tmp_path / "mask.tif"))
    assert np.array_equal(mask, reference)
