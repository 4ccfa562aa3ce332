"""EXIF orientation (issue 10 item 8): images are read as viewers show them, in training, checking
and inference alike; masks drawn on the displayed photo line up. Fixtures: the sample set's images
stored rotated, with the tag that turns them back."""

import shutil

import numpy as np
import pytest
from PIL import Image, ImageOps

from segkit.data import build_dataset, read_image, read_mask
from segkit.data.exif import exif_orientation
from tests.tool_loader import load_tool
from tests.train_helpers import CONFIG, tiny_config

# orientation -> how to store a displayed image so that the tag turns it back (the inverse of the tag)
STORE = {
    1: lambda a: a,
    2: np.fliplr,
    3: lambda a: np.rot90(a, 2),
    4: np.flipud,
    5: lambda a: np.swapaxes(a, 0, 1),
    6: lambda a: np.rot90(a, 1),
    7: lambda a: np.rot90(a, 2).swapaxes(0, 1),
    8: lambda a: np.rot90(a, -1),
}


def save_with_orientation(displayed: np.ndarray, path, orientation: int) -> None:
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(np.ascontiguousarray(STORE[orientation](displayed))).save(path, exif=exif)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_orientation_reads_as_viewers_show_it(tmp_path, orientation):
    displayed = np.random.default_rng(orientation).integers(0, 256, (12, 20, 3), dtype=np.uint8)
    path = tmp_path / f"o{orientation}.png"
    save_with_orientation(displayed, path, orientation)
    with Image.open(path) as im:  # PIL's own reading of the tag agrees with the fixture
        assert np.array_equal(np.asarray(ImageOps.exif_transpose(im)), displayed)
    assert exif_orientation(np.fromfile(path, np.uint8)) == orientation
    assert np.array_equal(read_image(path), displayed)


def test_a_jpeg_phone_photo_is_read_upright(tmp_path):
    displayed = np.zeros((40, 24, 3), np.uint8)
    displayed[:10] = 255  # a white top band, as the viewer shows it
    path = tmp_path / "phone.jpg"
    save_with_orientation(displayed, path, 6)
    image = read_image(path)
    assert image.shape == (40, 24, 3) and image[:8].mean() > 200 and image[12:].mean() < 50


@pytest.fixture
def rotated_set(sample_root, tmp_path):
    """The sample set with its first train and val images stored rotated plus an orientation tag;
    the masks stay as drawn on the displayed images."""
    root = tmp_path / "rotated"
    shutil.copytree(sample_root, root)
    changed = []
    for split, orientation in (("train", 6), ("val", 8)):
        path = sorted((root / "images" / split).iterdir())[0]
        displayed = read_image(path)
        save_with_orientation(displayed, path, orientation)
        changed.append((split, path, displayed))
    return root, changed


def test_training_checking_and_inference_see_the_oriented_image(rotated_set, sample_run, tmp_path, capsys):
    root, changed = rotated_set
    cfg = tiny_config(root, 2)
    for split, path, displayed in changed:
        dataset = build_dataset(cfg.data, split)
        index = [p for p, _ in dataset.pairs].index(path)
        image, mask = dataset.read(index)
        assert np.array_equal(image, displayed) and mask.shape == displayed.shape[:2]
    assert load_tool("check_dataset").main([str(CONFIG), f"data.root={root}", "--workers", "0"]) == 0
    out = tmp_path / "out"
    _, path, displayed = changed[0]
    assert load_tool("infer").main([str(path), "--checkpoint", str(sample_run / "last.pth"), "--out", str(out)]) == 0
    assert read_mask(out / f"{path.stem}_mask.png").shape == displayed.shape[:2]
    capsys.readouterr()


def test_a_mask_drawn_on_the_unturned_photo_is_named(tmp_path):
    """Portrait as shown, landscape as stored: a mask at the stored size cannot pair with it."""
    from segkit.config import load_config

    for sub in ("images/train", "masks/train"):
        (tmp_path / sub).mkdir(parents=True)
    save_with_orientation(np.zeros((40, 24, 3), np.uint8), tmp_path / "images/train/p.png", 6)
    Image.fromarray(np.zeros((24, 40), np.uint8)).save(tmp_path / "masks/train/p.png")
    cfg = load_config(CONFIG, [f"data.root={tmp_path}"])
    with pytest.raises(
        ValueError,
        match=r"is 40x24 but image .*p\.png is 24x40 .*EXIF orientation.*drawn on the "
        r"unturned image",
    ):
        build_dataset(cfg.data, "train").read(0)


def test_eval_pictures_show_the_whole_turned_image(sample_root, sample_run, tmp_path, monkeypatch, capsys):
    """--show-dir crops each picture to the image's size: the decoded (turned) one, not the file header's,
    which for orientations 5-8 has width and height swapped and cut a portrait photo square."""
    import segkit.visualization.comparisons

    root = tmp_path / "portrait"
    shutil.copytree(sample_root, root)
    path = sorted((root / "images" / "val").iterdir())[0]
    mask_path = root / "masks" / "val" / path.name
    displayed = read_image(path)[:, :96]  # 128 x 96 (H x W) as shown, stored 96 x 128 with orientation 6
    save_with_orientation(displayed, path, 6)
    Image.fromarray(read_mask(mask_path)[:, :96].astype(np.uint8)).save(mask_path)
    shown = []
    real = segkit.visualization.comparisons.comparison  # patched where SaveComparisons looks it up
    monkeypatch.setattr(
        segkit.visualization.comparisons,
        "comparison",
        lambda image, *a, **k: shown.append(image) or real(image, *a, **k),
    )
    assert (
        load_tool("eval").main(
            [
                str(sample_run / "last.pth"),
                f"data.root={root}",
                "eval.batch_size=2",
                "--show-dir",
                str(tmp_path / "show"),
            ]
        )
        == 0
    )
    assert len(shown) == 6 and any(np.array_equal(image, displayed) for image in shown)
    capsys.readouterr()
