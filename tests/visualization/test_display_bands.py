"""`segkit visualize` on a 4-band 16-bit TIFF (issue 20, Bands): read with its own band count, the chosen
bands stretched for display, and a band the image lacks is one clear error."""

import cv2
import numpy as np
import pytest
import tifffile

from segkit.data.normalize import to_display
from segkit.visualization import overlays as V
from tests.tool_loader import load_tool

H, W = 60, 80


@pytest.fixture
def tiff_and_mask(tmp_path):
    rng = np.random.default_rng(0)
    bands = np.dstack([rng.integers(50 * b, 900 * (b + 1), (H, W)) for b in range(4)]).astype(np.uint16)
    tifffile.imwrite(tmp_path / "tile.tif", bands, photometric="minisblack", planarconfig="contig")
    mask = np.full((H, W), 255, np.int64)  # ignored: the picture shows the image there
    mask[10:30, 20:50] = 1
    V.save_index_png(tmp_path / "mask.png", mask, V.palette_array(2, [[0, 0, 0], [250, 10, 10]]))
    return tmp_path / "tile.tif", tmp_path / "mask.png", bands, mask


@pytest.mark.parametrize("chosen", [None, "4,3,2", "3"])
def test_visualize_shows_the_chosen_bands_of_a_four_band_tiff(tiff_and_mask, tmp_path, chosen):
    image, mask_file, bands, mask = tiff_and_mask
    out = tmp_path / "vis.png"
    argv = [str(image), str(mask_file), "--classes", "background,field", "--out", str(out), "--no-outlines"]
    argv += ["--no-labels", "--no-legend"] + (["--display-bands", chosen] if chosen else [])
    assert load_tool("visualize").main(argv) == 0
    picture = cv2.cvtColor(cv2.imread(str(out)), cv2.COLOR_BGR2RGB)
    assert picture.shape == (H, W, 3)
    numbers = [int(b) for b in chosen.split(",")] if chosen else [1, 2, 3]
    expected = to_display(bands[..., [b - 1 for b in numbers]])
    unmasked = mask == 255
    assert np.array_equal(picture[unmasked], expected[unmasked])
    assert not np.array_equal(picture[~unmasked], expected[~unmasked])  # the class is painted over


def test_visualize_names_the_option_and_the_band_count_for_a_missing_band(tiff_and_mask, tmp_path, capsys):
    image, mask_file, _, _ = tiff_and_mask
    argv = [str(image), str(mask_file), "--out", str(tmp_path / "vis.png"), "--display-bands", "3,2,5"]
    assert load_tool("visualize").main(argv) == 2 and not (tmp_path / "vis.png").exists()
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and "--display-bands 3,2,5" in err and "4 band(s)" in err and str(image) in err
