"""Pairing rules of the folder reader (suffixes, a key regex), the hint when nothing pairs, ignore masks."""

import re
import shlex

import numpy as np
import pytest

from segkit.config import load_config
from segkit.data import DataError, build_dataset
from segkit.data.check import check_dataset
from tests.data_files import data_cfg, drive_set, folder_set, write_image, write_mask

DRIVE = dict(image_dir="training/images", mask_dir="training/1st_manual", num_classes=2, label_map={255: 1})


def _keys(dataset):
    return [(image.name, mask.name) for image, mask in dataset.pairs]


@pytest.mark.parametrize("image_suffix, mask_suffix", [("_training", "_manual1"), ("_training.tif", "_manual1.gif")])
def test_suffixes_pair_drive_names_with_or_without_the_extension(tmp_path, image_suffix, mask_suffix):
    drive_set(tmp_path, n=3)
    ds = build_dataset(
        data_cfg(root=str(tmp_path), image_suffix=image_suffix, mask_suffix=mask_suffix, **DRIVE), "train"
    )
    assert _keys(ds) == [(f"{i}_training.tif", f"{i}_manual1.gif") for i in (21, 22, 23)]
    assert set(np.unique(ds.read(0)[1])) == {0, 1}  # 0/255 GIF masks through label_map {255: 1}


def test_pair_pattern_takes_the_key_group_and_must_have_one(tmp_path):
    drive_set(tmp_path, n=2)
    ds = build_dataset(data_cfg(root=str(tmp_path), pair_pattern=r"(?P<key>\d+)_", **DRIVE), "train")
    assert _keys(ds) == [("21_training.tif", "21_manual1.gif"), ("22_training.tif", "22_manual1.gif")]
    with pytest.raises(DataError, match=r"data.pair_pattern '\(\\d\+\)_' has no group named 'key'"):
        build_dataset(data_cfg(root=str(tmp_path), pair_pattern=r"(\d+)_", **DRIVE), "train")
    with pytest.raises(DataError, match="not a valid regex"):
        build_dataset(data_cfg(root=str(tmp_path), pair_pattern="(?P<key>", **DRIVE), "train")


def _proposed_options(message):
    found = re.search(r"set (data\.\S+=\S+(?: data\.\S+=\S+)*) \(", message)
    assert found, message
    return dict(option.split("=", 1) for option in shlex.split(found.group(1)))


def test_nothing_pairs_shows_keys_from_both_sides_and_the_suffixes_that_would(tmp_path):
    drive_set(tmp_path, n=4)
    with pytest.raises(DataError) as info:
        build_dataset(data_cfg(root=str(tmp_path), **DRIVE), "train")
    message = str(info.value)
    assert "'21_training', '22_training'" in message and "'21_manual1', '22_manual1'" in message
    options = _proposed_options(message)
    assert options == {"data.image_suffix": "_training", "data.mask_suffix": "_manual1"}
    assert "4 of 4 images pair" in message
    fields = {key.split(".")[1]: value for key, value in options.items()}
    assert len(build_dataset(data_cfg(root=str(tmp_path), **fields, **DRIVE), "train")) == 4


def test_nothing_pairs_with_a_constant_prefix_proposes_a_pattern_that_works(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(3):
        write_image(tmp_path / "images" / "train" / f"img_{i:03d}.png", rng.integers(0, 255, (8, 8, 3), dtype=np.uint8))
        write_mask(tmp_path / "masks" / "train" / f"label_{i:03d}.png", np.zeros((8, 8)))
    with pytest.raises(DataError) as info:
        build_dataset(data_cfg(root=str(tmp_path)), "train")
    message = str(info.value)
    assert "'img_000', 'img_001'" in message and "'label_000', 'label_001'" in message
    pattern = _proposed_options(message)["data.pair_pattern"]
    assert [p[0].name for p in build_dataset(data_cfg(root=str(tmp_path), pair_pattern=pattern), "train").pairs] == [
        "img_000.png",
        "img_001.png",
        "img_002.png",
    ]


def test_no_proposal_when_names_share_nothing(tmp_path):
    folder_set(tmp_path, splits=(("train", 2),))
    for p in (tmp_path / "masks" / "train").iterdir():
        p.rename(p.with_name("zz" + p.stem[::-1] + p.suffix))
    with pytest.raises(DataError) as info:
        build_dataset(data_cfg(root=str(tmp_path)), "train")
    assert "mask keys e.g." in str(info.value) and "set data." not in str(info.value)


def test_pairing_options_are_for_the_folder_format_only(tmp_path):
    with pytest.raises(DataError, match="data.image_suffix applies to data.format=folder only"):
        build_dataset(data_cfg(root=str(tmp_path), format="camvid", num_classes=11, image_suffix="_x"), "train")


def test_ignore_mask_zero_pixels_become_ignore_index_in_reads_and_the_checker(tmp_path):
    drive_set(tmp_path, n=2)
    fields = dict(pair_pattern=r"(?P<key>\d+)_", ignore_mask_dir="training/mask", **DRIVE)
    ds = build_dataset(data_cfg(root=str(tmp_path), **fields), "train")
    fov = np.array(ds.raw_mask(0)) != -1
    assert 0 < fov.mean() < 1
    image, mask = ds.read(0)
    assert (mask[~fov] == 255).all() and set(np.unique(mask[fov])) <= {0, 1}
    assert (ds.read_mask(1) == ds[1]["mask"].numpy()).all()
    cfg = load_config(None, ["data.num_classes=2", f"data.root={tmp_path}", "data.val_split=train"])
    for key, value in fields.items():
        setattr(cfg.data, key, value)
    lines, ok = check_dataset(cfg, ["train"])
    assert ok, lines
    assert any("outside the ignore mask" in line for line in lines), lines


def test_ignore_mask_missing_or_of_another_size(tmp_path):
    drive_set(tmp_path, n=2)
    fields = dict(root=str(tmp_path), pair_pattern=r"(?P<key>\d+)_", ignore_mask_dir="training/mask", **DRIVE)
    (tmp_path / "training" / "mask" / "22_training_mask.gif").unlink()
    with pytest.raises(DataError, match=r"1 image\(s\) have no ignore mask in .*mask.*: 22"):
        build_dataset(data_cfg(**fields), "train")
    write_mask(tmp_path / "training" / "mask" / "22_training_mask.png", np.ones((5, 5)))
    with pytest.raises(DataError, match="ignore mask .*22_training_mask.png is 5x5 but mask"):
        build_dataset(data_cfg(**fields), "train").read(1)


def test_names_outside_ascii_and_split_lists_pair(tmp_path):
    rng = np.random.default_rng(0)
    for stem in ("café_1", "ß_2", "plain_3"):
        write_image(tmp_path / "images" / "train" / f"{stem}.png", rng.integers(0, 255, (8, 8, 3), dtype=np.uint8))
        write_mask(tmp_path / "masks" / "train" / f"{stem}.png", np.zeros((8, 8)))
    ds = build_dataset(data_cfg(root=str(tmp_path)), "train")
    assert [p[0].name for p in ds.pairs] == ["café_1.png", "plain_3.png", "ß_2.png"]  # by key, as code points
    (tmp_path / "list.txt").write_text("ß_2\ncafé_1\n")
    listed = build_dataset(data_cfg(root=str(tmp_path), split_file=str(tmp_path / "list.txt")), "train")
    assert [p[1].name for p in listed.pairs] == ["ß_2.png", "café_1.png"]


def test_listing_neither_stats_nor_opens_the_files(tmp_path, monkeypatch):
    import builtins
    import os

    folder_set(tmp_path, splits=(("train", 30),))
    calls = []
    for module, name in ((os, "stat"), (os, "lstat"), (builtins, "open")):
        real = getattr(module, name)
        monkeypatch.setattr(module, name, lambda *a, _real=real, **k: calls.append(a[0]) or _real(*a, **k))
    ds = build_dataset(data_cfg(root=str(tmp_path)), "train")
    monkeypatch.undo()
    assert len(ds) == 30 and not [c for c in calls if str(c).endswith(".png")], calls  # folders only
