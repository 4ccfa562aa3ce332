"""The studio on N-band and deep images (issue 20, Bands): the model sees the bands its checkpoint names, the
page shows ``--display-bands`` of them stretched to 8-bit RGB, and a band the images lack is one clear error."""

import cv2
import numpy as np
import pytest
import tifffile
import torch

pytest.importorskip("fastapi", reason="the studio needs fastapi: pip install 'segkit[studio]'")

from segkit.checkpoint import checkpoint_meta, save_checkpoint, training_state  # noqa: E402
from segkit.config import load_config, to_dict  # noqa: E402
from segkit.data import read_image  # noqa: E402
from segkit.data.normalize import to_display  # noqa: E402
from segkit.inference.predictor import Predictor  # noqa: E402
from segkit.models import build_model  # noqa: E402
from segkit.studio import Studio  # noqa: E402
from tests.studio.test_studio import client_for  # noqa: E402
from tests.tool_loader import load_tool  # noqa: E402

H, W = 40, 56
NAMES = ["background", "field", "water"]


@pytest.fixture(scope="module")
def four_band(tmp_path_factory):
    """An untrained 4-band (12-bit in uint16) FCN checkpoint, and two 4-band uint16 TIFFs: one interleaved,
    one planar, each band with its own range so that a wrong band or stretch shows in the pixels."""
    folder = tmp_path_factory.mktemp("four_band")
    cfg = load_config(
        "sample/fcn_r18",
        [
            "data.channels=4",
            "data.value_range=[0,4095]",
            "data.mean=[0.5,0.5,0.5,0.5]",
            "data.std=[0.25,0.25,0.25,0.25]",
            f"data.num_classes={len(NAMES)}",
        ],
    )
    torch.manual_seed(0)
    model = build_model(cfg)
    meta = checkpoint_meta(cfg, NAMES, [[0, 0, 0], [0, 200, 0], [0, 0, 200]])
    checkpoint = save_checkpoint(folder / "best.pth", training_state(model.state_dict(), to_dict(cfg), meta))
    rng = np.random.default_rng(0)
    images = []
    for i, planar in enumerate((False, True)):
        bands = np.dstack([rng.integers(100 * b, 1000 * (b + 1), (H, W)) for b in range(4)]).astype(np.uint16)
        path = folder / "images" / f"tile{i}.tif"
        path.parent.mkdir(exist_ok=True)
        if planar:
            tifffile.imwrite(path, np.moveaxis(bands, -1, 0), photometric="minisblack", planarconfig="separate")
        else:
            tifffile.imwrite(path, bands, photometric="minisblack", planarconfig="contig")
        images.append(path)
    return checkpoint, images


def page_image(client, stem) -> np.ndarray:
    response = client.get(f"/api/image/{stem}")
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    bgr = cv2.imdecode(np.frombuffer(response.content, np.uint8), cv2.IMREAD_UNCHANGED)
    assert bgr.dtype == np.uint8 and bgr.shape == (H, W, 3)  # 8-bit RGB, the image's size
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


@pytest.mark.parametrize("bands", [(4, 3, 2), (2,), None])
def test_the_page_shows_the_chosen_bands_stretched_and_the_model_sees_all_four(four_band, tmp_path, bands):
    checkpoint, images = four_band
    predictor = Predictor.from_checkpoint(checkpoint, device="cpu")
    studio = Studio(predictor, images, tmp_path / "masks", display_bands=bands)
    client = client_for(studio)
    for stem, path in studio.images.items():
        stored = tifffile.imread(path)
        stored = np.moveaxis(stored, 0, -1) if stored.shape[0] == 4 else stored  # the planar one
        shown = page_image(client, stem)
        chosen = [b - 1 for b in (bands or (1, 2, 3))]
        assert np.array_equal(shown, to_display(stored[..., chosen]))  # the chosen bands, stretched one by one
        if bands == (2,):
            assert np.array_equal(shown[..., 0], shown[..., 1]) and np.array_equal(shown[..., 0], shown[..., 2])
        # predictions run on all four bands: the layers carry the model's own argmax of the file
        layers = client.get(f"/api/layers/{stem}")
        assert layers.status_code == 200 and (int(layers.headers["x-width"]), int(layers.headers["x-height"])) == (W, H)
        expected = predictor.logits([path])[0].argmax(0).to(torch.uint8).numpy()
        assert np.array_equal(np.frombuffer(layers.content[: H * W], np.uint8).reshape(H, W), expected)
    assert predictor.prepare(images[0]).shape == (H, W, 4)


def test_a_band_the_images_lack_is_one_clear_error(four_band, tmp_path, monkeypatch, capsys):
    import uvicorn

    checkpoint, images = four_band
    served = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: served.append(app))
    common = [str(p) for p in images] + ["--checkpoint", str(checkpoint), "--masks", str(tmp_path / "masks")]
    assert load_tool("studio").main(common + ["--display-bands", "5,3,2"]) == 2 and not served
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and "--display-bands 5,3,2" in err and "4 band(s)" in err and "1..4" in err
    for bad in ("3,2", "0,1,2", "r,g,b"):
        with pytest.raises(SystemExit):
            load_tool("studio").main(common + ["--display-bands", bad])
        assert "--display-bands" in capsys.readouterr().err
    assert load_tool("studio").main(common + ["--display-bands", "4,3,2"]) == 0 and served


def test_a_16_bit_png_is_stretched_for_the_page_not_served_dark(sample_run, tmp_path):
    """A browser shows a 16-bit PNG scaled to its 65535 range: 12-bit data would look black."""
    predictor = Predictor.from_checkpoint(sample_run / "best.pth", device="cpu")
    rng = np.random.default_rng(1)
    deep = rng.integers(0, 4096, (H, W, 3)).astype(np.uint16)
    path = tmp_path / "deep.png"
    assert cv2.imwrite(str(path), cv2.cvtColor(deep, cv2.COLOR_RGB2BGR))
    studio = Studio(predictor, [path], tmp_path / "masks")
    shown = page_image(client_for(studio), "deep")
    assert np.array_equal(shown, to_display(read_image(path))) and shown.max() == 255
