"""Region-labeling pictures: labels inside their regions, legends of the classes present, palette PNGs."""

import cv2
import numpy as np
import pytest
from PIL import Image

from segkit.data import read_image, read_mask
from segkit.visualization import overlays as V
from tests.tool_loader import load_tool

NAMES = ["background", "ring", "box", "unused"]
PALETTE = [[0, 0, 0], [250, 10, 10], [10, 250, 10], [10, 10, 250]]


def scene():
    mask = np.zeros((120, 160), np.uint8)
    cv2.circle(mask, (50, 60), 35, 1, 12)  # a ring: its centroid is in the hole, outside the region
    mask = mask.astype(np.int64)
    mask[20:50, 110:150] = 2
    mask[100:, 140:] = 255  # ignored
    image = np.full((120, 160, 3), 90, np.uint8)
    return image, mask


def test_label_points_lie_inside_regions_even_for_a_ring():
    _, mask = scene()
    points = V.label_points(mask, num_classes=3, min_area=50)
    assert {p[0] for p in points} == {0, 1, 2}
    for cls, x, y, _ in points:
        assert mask[y, x] == cls
    ys, xs = np.nonzero(mask == 1)
    assert mask[int(ys.mean()), int(xs.mean())] != 1  # the centroid would have missed


def test_small_regions_get_no_label():
    _, mask = scene()
    assert 2 not in {p[0] for p in V.label_points(mask, 3, min_area=2000)}


def test_overlay_blends_classes_and_leaves_ignored_pixels():
    image, mask = scene()
    out = V.overlay(image, mask, V.palette_array(4, PALETTE), alpha=0.5)
    assert tuple(out[30, 120]) == (50, 170, 50)  # box: halfway between grey 90 and green
    assert tuple(out[110, 150]) == (90, 90, 90)  # ignore: the image as it was


def test_legend_lists_only_the_classes_present_inside_the_picture():
    image, mask = scene()
    out = V.render(image, mask, NAMES, PALETTE, labels=False, outlines=False)
    assert out.shape == image.shape  # lays over the image in other tools
    colours = {tuple(c) for c in out.reshape(-1, 3)}  # pure palette colours appear only as swatches
    assert (250, 10, 10) in colours and (10, 250, 10) in colours
    assert (10, 10, 250) not in colours  # "unused" is absent from the mask


def test_outlines_follow_region_edges_only():
    image, mask = scene()
    canvas = V.draw_outlines(np.zeros_like(image), mask, colour=(255, 255, 255))
    drawn = canvas[..., 0] > 0
    assert drawn[20, 110] and not drawn[35, 130]  # the box's corner, not its inside


def test_index_png_keeps_ids_and_carries_the_palette(tmp_path):
    _, mask = scene()
    path = V.save_index_png(tmp_path / "m.png", mask, V.palette_array(4, PALETTE))
    with Image.open(path) as im:
        assert im.mode == "P" and im.getpalette()[3:6] == PALETTE[1]
    assert np.array_equal(read_mask(path), mask)


def test_comparison_has_four_panels_and_a_legend():
    image, mask = scene()
    pred = mask.copy()
    pred[:10] = 2
    out = V.comparison(image, mask, pred, NAMES, PALETTE, ignore_index=255)
    assert out.shape[1] > 4 * image.shape[1] and out.shape[0] > image.shape[0]


def test_tools_visualize_draws_an_image_and_a_mask_file(tmp_path, capsys):
    image, mask = scene()
    cv2.imwrite(str(tmp_path / "img.png"), image)
    V.save_index_png(tmp_path / "mask.png", mask, V.palette_array(4, PALETTE))
    out = tmp_path / "vis.png"
    tool = load_tool("visualize")
    assert (
        tool.main(
            [str(tmp_path / "img.png"), str(tmp_path / "mask.png"), "--classes", ",".join(NAMES), "--out", str(out)]
        )
        == 0
    )
    assert cv2.imread(str(out)).shape == (120, 160, 3) and str(out) in capsys.readouterr().out
    assert tool.main([str(tmp_path / "img.png"), str(tmp_path / "nope.png")]) != 0
    assert "nope.png" in capsys.readouterr().err


@pytest.mark.parametrize("size", [96, 128, 360])
def test_region_labels_stay_inside_the_image(size):
    """A long class name on a region touching the right edge: no ink past the image (the legend
    sits there), including the text's dark edge, which once drifted a letter too far."""
    mask = np.zeros((size, size), np.int64)
    mask[:, size // 2 :] = 1
    sentinel = np.full((size, size + 60, 3), 77, np.uint8)  # the image, then where the legend goes
    V.label_regions(sentinel, mask, ["background", "a_very_long_class_name"], min_area=1)
    assert (sentinel[:, size:] == 77).all()
    assert (sentinel[:, :size] != 77).any()  # something was written


@pytest.mark.parametrize("name", ["background", "a_very_long_class_name", "Bicyclist"])
def test_label_edge_hugs_the_letters(name):
    """The dark edge surrounds the white letters and ends with them: a thicker dark stroke advanced
    further per glyph and left a ghost copy of the last letter beyond the word."""
    mask = np.ones((128, 128), np.int64)
    canvas = np.full((128, 128, 3), 128, np.uint8)
    V.label_regions(canvas, mask, ["x", name], min_area=1)
    grey = canvas.mean(axis=2)
    light_cols, dark_cols = np.nonzero((grey > 160).any(0))[0], np.nonzero((grey < 60).any(0))[0]
    assert light_cols.size and dark_cols.size
    assert dark_cols.max() <= light_cols.max() + 2 and dark_cols.min() >= light_cols.min() - 2


def vessels():
    """A dark fundus-like image with one-pixel and three-pixel vessels (class 1) on background (0)."""
    mask = np.zeros((120, 160), np.uint8)
    cv2.line(mask, (70, 115), (150, 15), 1, 1)  # every corner but the bottom-left holds a vessel
    cv2.polylines(mask, [np.array([[10, 20], [60, 40], [90, 90], [155, 100]], np.int32)], False, 1, 3)
    return np.full((120, 160, 3), 40, np.uint8), mask.astype(np.int64)


def test_skipped_background_is_neither_painted_nor_named():
    image, mask = vessels()
    kwargs = {
        "class_names": ["background", "vessel"],
        "palette": PALETTE[:2],
        "outlines": False,
        "legend": False,
        "min_area": 2000,
    }  # only the background is large enough for a name
    plain = V.render(image, mask, skip=[0], **kwargs)
    assert (plain[mask == 0] == 40).all()  # not painted, and no "background" written anywhere on it
    named = V.render(image, mask, **kwargs)
    assert (named[mask == 0] > 200).all(axis=-1).any()  # the control: unskipped, its name is written


def test_thin_vessels_keep_their_colour_without_outlines_and_the_legend_avoids_them():
    image, mask = vessels()
    kwargs = {"labels": False, "skip": [0]}
    outlined = V.render(image, mask, ["background", "vessel"], PALETTE[:2], **kwargs)
    assert (outlined[mask == 1] == 255).all(axis=-1).mean() > 0.4  # outlines whiten half the vessel pixels
    bare = V.render(image, mask, ["background", "vessel"], PALETTE[:2], outlines=False, **kwargs)
    want = np.rint(np.array([40, 40, 40]) * 0.5 + np.array(PALETTE[1]) * 0.5)
    assert (bare[mask == 1] == want).all()  # every vessel pixel shows its class colour: none under the legend
    panel = (bare >= 190).all(axis=-1) & (mask == 0)
    assert panel.any()  # the legend is drawn, inside the picture
    painted = V.render(image, mask, ["background", "vessel"], PALETTE[:2], outlines=False, labels=False)
    # background painted too: the panel still goes to the one corner without vessels, the bottom-left
    assert (painted[118, 1] >= 190).all() and (painted[1, 158] < 190).all()


def test_visualize_skips_classes_by_name_and_names_the_choices_when_wrong(tmp_path, capsys):
    image, mask = vessels()
    cv2.imwrite(str(tmp_path / "img.png"), image)
    V.save_index_png(tmp_path / "mask.png", mask, V.palette_array(2, PALETTE[:2]))
    tool = load_tool("visualize")
    base = [str(tmp_path / "img.png"), str(tmp_path / "mask.png"), "--classes", "background,vessel"]
    assert (
        tool.main(
            base
            + [
                "--skip-classes",
                "background",
                "--no-outlines",
                "--no-labels",
                "--no-legend",
                "--out",
                str(tmp_path / "v.png"),
            ]
        )
        == 0
    )
    out = cv2.imread(str(tmp_path / "v.png"))
    assert out.shape == image.shape and (out[mask == 0] == 40).all()
    assert tool.main(base + ["--skip-classes", "sky"]) == 2
    assert "'sky' is not a class; the classes are background, vessel" in capsys.readouterr().err


def test_isbi_membranes_stay_visible_with_the_cells_skipped(isbi_root):
    """Real thin structures: ISBI 2012 membranes (label 0) between cells (255)."""
    image = read_image(isbi_root / "image" / "0.png")
    mask = (read_mask(isbi_root / "label" / "0.png") == 255).astype(np.int64)  # 0 membrane, 1 cell
    out = V.render(image, mask, ["membrane", "cell"], [[255, 0, 0], [0, 0, 255]], outlines=False, skip=[1])
    assert out.shape == image.shape == (512, 512, 3)
    cell = mask == 1
    assert (out[cell] == image[cell]).all(axis=-1).mean() > 0.97  # as the image, but for the small legend
    assert (out[~cell] != image[~cell]).any(axis=-1).mean() > 0.97  # every membrane pixel painted
