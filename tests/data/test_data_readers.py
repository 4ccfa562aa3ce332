"""Each reader on a small data set the test writes in its format (and CamVid on the real data)."""

import json

import numpy as np
from pycocotools import mask as mask_utils

from segkit.config import load_config
from segkit.data import build_dataset, default_palette
from segkit.data.stats import raw_histograms
from tests.data_files import data_cfg, folder_set, random_pair, write_image, write_mask


def test_folder_pairs_by_stem_across_formats_with_label_map(tmp_path):
    rng = np.random.default_rng(0)
    for stem, image_ext, mask_ext in [
        ("a", "jpg", "png"),
        ("b", "png", "tif"),
        ("c", "bmp", "bmp"),
        ("d", "tif", "gif"),
    ]:
        image, mask = random_pair(rng, values=(0, 255))
        write_image(tmp_path / "images" / "train" / f"{stem}.{image_ext}", image)
        write_mask(tmp_path / "masks" / "train" / f"{stem}.{mask_ext}", mask)
    ds = build_dataset(data_cfg(root=str(tmp_path), num_classes=2, label_map={255: 1}), "train")
    assert [p[0].stem for p in ds.pairs] == ["a", "b", "c", "d"]
    for i in range(4):
        image, mask = ds.read(i)
        assert image.dtype == np.uint8 and image.shape == (24, 32, 3)
        assert mask.dtype == np.int64 and set(np.unique(mask)) == {0, 1}
    item = ds[0]
    assert item["image"].shape == (3, 24, 32) and item["mask"].shape == (24, 32) and item["index"] == 0


def test_folder_split_lists_relative_to_root_or_cwd(tmp_path, monkeypatch):
    folder_set(tmp_path / "data", splits=(("all", 5),))
    (tmp_path / "data" / "lists").mkdir()
    (tmp_path / "data" / "lists" / "train.txt").write_text("all_3\n# a comment\n\nall_1.png\n")
    cfg = data_cfg(
        root=str(tmp_path / "data"), image_dir="images/all", mask_dir="masks/all", split_file="lists/{split}.txt"
    )
    assert [p[0].stem for p in build_dataset(cfg, "train").pairs] == ["all_3", "all_1"]  # the list's order
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "val.txt").write_text("all_0\n")
    monkeypatch.chdir(tmp_path)
    cfg.split_file = "configs/{split}.txt"  # not under root: taken from the working directory
    assert [p[0].stem for p in build_dataset(cfg, "val").pairs] == ["all_0"]
    assert [p[0].stem for p in build_dataset(cfg, "val+val").pairs] == ["all_0"]  # joined splits keep an image once


def test_voc_palette_pngs_read_as_indices_and_aug_set(tmp_path):
    root, rng = tmp_path / "VOCdevkit" / "VOC2012", np.random.default_rng(1)
    palette = default_palette(256)
    for stem in ["2007_000032", "2007_000039", "2007_000063"]:
        image, mask = random_pair(rng, values=(0, 15, 255))  # person, with the 255 boundary band
        write_image(root / "JPEGImages" / f"{stem}.jpg", image)
        write_mask(root / "SegmentationClass" / f"{stem}.png", mask, palette)
    image, mask = random_pair(rng, values=(0, 7))
    write_image(root / "JPEGImages" / "2008_000100.jpg", image)
    write_mask(root / "SegmentationClassAug" / "2008_000100.png", mask)  # SBD: grey, no boundary
    write_mask(root / "SegmentationClassAug" / "2007_000032.png", np.full((24, 32), 3))  # VOC's own mask wins
    lists = root / "ImageSets" / "Segmentation"
    lists.mkdir(parents=True)
    (lists / "train.txt").write_text("2007_000032\n2007_000039\n")
    (lists / "val.txt").write_text("2007_000063\n")
    (lists / "aug.txt").write_text("2007_000032\n2008_000100\n")
    cfg = load_config("configs/_base/datasets/voc.yaml", [f"data.root={root}"]).data
    train = build_dataset(cfg, "train")
    assert len(train) == 2 and train.class_names[15] == "person" and len(train.class_names) == 21
    values = set(np.unique(train.read(0)[1]))
    assert values <= {0, 15, 255} and 15 in values  # indices, not palette colours
    aug = build_dataset(cfg, "train+aug")
    assert [p[0].stem for p in aug.pairs] == ["2007_000032", "2007_000039", "2008_000100"]
    assert aug.pairs[0][1].parent.name == "SegmentationClass"
    assert set(np.unique(aug.read(2)[1])) == {0, 7}


def test_cityscapes_label_ids_to_train_ids(tmp_path):
    city = "aachen"
    label_ids = np.array([[7, 26, 0, 33], [4, 24, 11, 255]], np.uint8).repeat(6, 0).repeat(8, 1)  # 12 x 32
    write_image(
        tmp_path / "leftImg8bit" / "train" / city / f"{city}_000000_000019_leftImg8bit.png",
        np.zeros((12, 32, 3), np.uint8),
    )
    gt = tmp_path / "gtFine" / "train" / city
    write_mask(gt / f"{city}_000000_000019_gtFine_labelIds.png", label_ids)
    write_mask(gt / f"{city}_000000_000019_gtFine_instanceIds.png", label_ids)  # must not be taken
    write_image(gt / f"{city}_000000_000019_gtFine_color.png", np.zeros((12, 32, 3), np.uint8))
    cfg = load_config("configs/_base/datasets/cityscapes.yaml", [f"data.root={tmp_path}"]).data
    ds = build_dataset(cfg, "train")
    assert len(ds) == 1 and ds.pairs[0][1].name.endswith("_gtFine_labelIds.png")
    mask = ds.read(0)[1]
    assert mask[0, ::8].tolist() == [0, 13, 255, 18]  # road, car, unlabeled, bicycle
    assert mask[6, ::8].tolist() == [255, 11, 2, 255]  # ground (ignored), person, building, 255
    assert ds.class_names[13] == "car" and len(ds.palette) == 19


def test_ade20k_reduce_zero_label(tmp_path):
    write_image(tmp_path / "images" / "training" / "ADE_train_00000001.jpg", np.zeros((8, 12, 3), np.uint8))
    write_mask(
        tmp_path / "annotations" / "training" / "ADE_train_00000001.png",
        np.array([[0, 1, 150, 12]]).repeat(8, 0).repeat(3, 1),
    )
    cfg = load_config("configs/_base/datasets/ade20k.yaml", [f"data.root={tmp_path}"]).data
    ds = build_dataset(cfg, "train")  # 'train' names ADE's 'training' folder
    assert ds.read(0)[1][0, ::3].tolist() == [255, 0, 149, 11]
    assert ds.class_names[0] == "wall" and ds.class_names[149] == "flag"


def test_label_map_has_the_last_word_after_reduce_zero_label(tmp_path):
    """SegDataset's documented order: reduce_zero_label first (0 -> ignore, v -> v-1), then label_map, whose keys
    are raw values and whose targets are final class ids. Swapping the two shifts every mapped id by one."""
    write_image(tmp_path / "images" / "train" / "a.png", np.zeros((2, 7, 3), np.uint8))
    write_mask(tmp_path / "masks" / "train" / "a.png", np.array([[0, 1, 2, 3, 4, 7, 9]]).repeat(2, 0))
    cfg = data_cfg(root=str(tmp_path), num_classes=4, reduce_zero_label=True, label_map={7: 0, 9: 3, 4: 255})
    mask = build_dataset(cfg, "train").read(0)[1]
    # raw:  0       1  2  3  4 (mapped to ignore)  7 (-> 0)  9 (-> 3)
    assert mask[0].tolist() == [255, 0, 1, 2, 255, 0, 3] and mask.dtype == np.int64


def _uncompressed_rle(region: np.ndarray) -> dict:
    """COCO's list-of-runs RLE (column-major, starting with a run of zeros), as crowd annotations use."""
    flat = region.flatten(order="F").astype(np.uint8)
    changes = np.flatnonzero(np.diff(np.concatenate([[0], flat, [1 - flat[-1]]])))
    runs = np.diff(np.concatenate([[0], changes])).tolist()
    return {"size": list(region.shape), "counts": runs}


def _box(h, w, x0, y0, x1, y1):
    region = np.zeros((h, w), np.uint8)
    region[y0:y1, x0:x1] = 1
    return region


def test_coco_polygon_rle_crowd_and_category_order(tmp_path):
    h, w = 30, 40
    write_image(tmp_path / "val2017" / "000000000001.jpg", np.zeros((h, w, 3), np.uint8))
    write_image(tmp_path / "val2017" / "000000000002.jpg", np.zeros((h, w, 3), np.uint8))
    dog_rle = mask_utils.encode(np.asfortranarray(_box(h, w, 20, 5, 30, 15)))
    dog_rle["counts"] = dog_rle["counts"].decode()
    annotations = [
        {"id": 1, "image_id": 1, "category_id": 1, "iscrowd": 0, "segmentation": [[2, 2, 12, 2, 12, 12, 2, 12]]},
        {"id": 2, "image_id": 1, "category_id": 18, "iscrowd": 0, "segmentation": dog_rle},
        {
            "id": 3,
            "image_id": 1,
            "category_id": 3,
            "iscrowd": 1,
            "segmentation": _uncompressed_rle(_box(h, w, 0, 20, 10, 30)),
        },
        {"id": 4, "image_id": 1, "category_id": 50, "iscrowd": 0, "segmentation": [[30, 20, 38, 20, 38, 28, 30, 28]]},
        {"id": 5, "image_id": 1, "category_id": 3, "iscrowd": 0, "segmentation": [[9, 9, 16, 9, 16, 16, 9, 16]]},
    ]
    categories = [
        {"id": 1, "name": "person"},
        {"id": 3, "name": "car"},
        {"id": 18, "name": "dog"},
        {"id": 50, "name": "spoon"},
    ]
    images = [
        {"id": 1, "file_name": "000000000001.jpg", "height": h, "width": w},
        {"id": 2, "file_name": "000000000002.jpg", "height": h, "width": w},
    ]
    (tmp_path / "annotations").mkdir()
    (tmp_path / "annotations" / "instances_val2017.json").write_text(
        json.dumps({"images": images, "annotations": annotations, "categories": categories})
    )
    base = "configs/_base/datasets/coco.yaml"
    cfg = load_config(base, [f"data.root={tmp_path}", "data.num_classes=4", "data.category_ids=[0,18,1,3]"]).data
    ds = build_dataset(cfg, "val")
    assert ds.class_names == ["background", "dog", "person", "car"] and len(ds) == 2
    mask = ds.read(0)[1]
    assert mask[7, 7] == 2  # person polygon
    assert mask[10, 25] == 1  # dog RLE
    assert mask[25, 5] == 255  # crowd car: ignored
    assert mask[24, 34] == 0  # an unlisted category is dropped: background
    assert mask[11, 11] == 255 and mask[14, 14] == 3  # person and car both claim it: ignored; car alone
    assert mask[0, 0] == 0 and (ds.read(1)[1] == 0).all()  # an image with no annotation is all background
    no_background = load_config(
        base, [f"data.root={tmp_path}", "data.num_classes=3", "data.category_ids=[18,1,3]"]
    ).data
    assert build_dataset(no_background, "val").read(0)[1][0, 0] == 255  # uncovered pixels ignored
    every = load_config(base, [f"data.root={tmp_path}", "data.num_classes=5"]).data
    assert build_dataset(every, "val").class_names == ["background", "person", "car", "dog", "spoon"]


def test_camvid_reader_on_the_real_data(camvid_root):
    cfg = load_config("configs/_base/datasets/camvid.yaml", [f"data.root={camvid_root}"]).data
    sizes = {split: len(build_dataset(cfg, split)) for split in ("train", "val", "test")}
    assert sizes == {"train": 367, "val": 101, "test": 233}
    test = build_dataset(cfg, "test")
    values = set()
    for found, _ in raw_histograms(test, num_workers=0):
        values.update(found.tolist())
    assert values == set(range(12))  # 11 classes and 11 = Unlabelled, the ignore label
    image, mask = test.read(0)
    assert image.shape == (360, 480, 3) and mask.shape == (360, 480) and test.ignore_index == 11
    assert test.class_names[10] == "Bicyclist"
