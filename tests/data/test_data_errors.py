"""Bad input: every case is a DataError that names the file(s) and says what to do."""

import numpy as np
import pytest

from segkit.data import DataError, build_dataset, read_image, read_mask
from tests.data_files import data_cfg, folder_set, random_pair, write_image, write_mask


def _error(fn, *args) -> str:
    with pytest.raises(DataError) as info:
        fn(*args)
    return str(info.value)


@pytest.mark.parametrize("suffix", [".jpg", ".png"])
def test_corrupt_and_truncated_images(tmp_path, suffix):
    image = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    good = write_image(tmp_path / f"good{suffix}", image)
    data = good.read_bytes()
    truncated = tmp_path / f"truncated{suffix}"
    truncated.write_bytes(data[: len(data) * 2 // 3])
    message = _error(read_image, truncated)
    assert str(truncated) in message and ("truncated" in message or "corrupt" in message) and "Re-copy" in message
    corrupt = tmp_path / f"corrupt{suffix}"
    corrupt.write_bytes(b"not an image at all" * 10)
    assert str(corrupt) in _error(read_image, corrupt)
    empty = tmp_path / f"empty{suffix}"
    empty.write_bytes(b"")
    assert str(empty) in _error(read_image, empty)


def test_jpeg_with_data_after_its_end_marker_is_not_truncated(tmp_path):
    image = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    path = write_image(tmp_path / "trailer.jpg", image)
    path.write_bytes(path.read_bytes() + b"camera trailer " * 20)  # some cameras append data
    assert read_image(path).shape == (32, 32, 3)


def test_unreadable_and_colour_masks(tmp_path):
    path = write_mask(tmp_path / "m.png", np.zeros((16, 16)))
    path.write_bytes(path.read_bytes()[:40])
    message = _error(read_mask, path)
    assert str(path) in message and "index PNG" in message
    colour = write_image(tmp_path / "colour.png", np.random.default_rng(0).integers(0, 256, (8, 8, 3), dtype=np.uint8))
    message = _error(read_mask, colour)
    assert str(colour) in message and "colour image" in message and "palette" in message
    grey_as_rgb = write_image(tmp_path / "grey.png", np.repeat(np.arange(64, dtype=np.uint8).reshape(8, 8, 1), 3, 2))
    assert (read_mask(grey_as_rgb) == np.arange(64).reshape(8, 8)).all()  # RGB with equal channels is fine


def test_mask_size_differs_from_image(tmp_path):
    folder_set(tmp_path, splits=(("train", 2),))
    write_mask(tmp_path / "masks" / "train" / "train_1.png", np.zeros((10, 10)))
    ds = build_dataset(data_cfg(root=str(tmp_path)), "train")
    message = _error(ds.read, 1)
    assert "train_1.png" in message and "10x10" in message and "32x24" in message and "Re-export" in message


def test_label_values_neither_class_nor_ignore(tmp_path):
    folder_set(tmp_path, splits=(("train", 1),), values=(0, 1, 7))
    ds = build_dataset(data_cfg(root=str(tmp_path), num_classes=3), "train")
    message = _error(ds.read, 0)
    assert "train_0.png" in message and "[7]" in message and "data.label_map" in message and "num_classes" in message
    assert ds.read_mask is not None and _error(ds.read_mask, 0) == message
    ds = build_dataset(data_cfg(root=str(tmp_path), num_classes=3, label_map={7: 255}), "train")
    assert set(np.unique(ds.read(0)[1])) == {0, 1, 255}
    with pytest.raises(DataError, match="data.label_map maps 7 to 9"):
        build_dataset(data_cfg(root=str(tmp_path), num_classes=3, label_map={7: 9}), "train")


def test_image_with_no_mask(tmp_path):
    folder_set(tmp_path, splits=(("train", 3),))
    (tmp_path / "masks" / "train" / "train_2.png").unlink()
    message = _error(build_dataset, data_cfg(root=str(tmp_path)), "train")
    assert "train_2" in message and str(tmp_path / "masks" / "train") in message and "split list" in message


def test_missing_or_empty_directories_print_the_expected_layout(tmp_path):
    message = _error(build_dataset, data_cfg(root=str(tmp_path / "nowhere")), "train")
    assert "nowhere" in message and "Expected layout" in message and "masks/train/0001.png" in message
    (tmp_path / "images" / "train").mkdir(parents=True)
    (tmp_path / "masks" / "train").mkdir(parents=True)
    message = _error(build_dataset, data_cfg(root=str(tmp_path)), "train")
    assert "no images" in message and str(tmp_path / "images" / "train") in message and "Expected layout" in message
    message = _error(build_dataset, data_cfg(root=str(tmp_path)), "val")
    assert "image folder not found" in message and "images/val" in message
    cam = data_cfg(format="camvid", root=str(tmp_path), num_classes=11, ignore_index=11)
    assert "SegNet CamVid layout" in _error(build_dataset, cam, "train")


def test_split_list_naming_a_missing_file(tmp_path):
    folder_set(tmp_path, splits=(("all", 2),))
    (tmp_path / "train.txt").write_text("all_0\nall_9\n")
    cfg = data_cfg(root=str(tmp_path), image_dir="images/all", mask_dir="masks/all", split_file="{split}.txt")
    message = _error(build_dataset, cfg, "train")
    assert "all_9" in message and "Fix the list" in message and "all_0" not in message.split(":")[-1]
    assert "split list not found" in _error(build_dataset, cfg, "val")


def test_two_files_with_one_stem(tmp_path):
    folder_set(tmp_path, splits=(("train", 1),))
    image, _ = random_pair(np.random.default_rng(0))
    write_image(tmp_path / "images" / "train" / "train_0.jpg", image)
    message = _error(build_dataset, data_cfg(root=str(tmp_path)), "train")
    assert "train_0.jpg" in message and "train_0.png" in message and "rename or remove" in message


def test_reader_classes_disagree_with_num_classes(tmp_path):
    cfg = data_cfg(format="camvid", root=str(tmp_path), num_classes=12)
    assert "data.num_classes=11" in _error(build_dataset, cfg, "train")
    assert "unknown data format" in _error(build_dataset, data_cfg(format="kitti"), "train")
