"""Pixel counts, presence counts and median-frequency weights."""

import numpy as np
import pytest

from segkit.config import load_config
from segkit.data import build_dataset
from segkit.data.stats import class_statistics, median_frequency_weights
from tests.data_files import data_cfg, write_image, write_mask


def test_median_frequency_weights_by_hand():
    # freq over all labelled pixels: .1 .3 .6 -> median .3 -> weights 3, 1, .5; absent classes get 0
    assert np.allclose(median_frequency_weights([10, 30, 60, 0]), [3.0, 1.0, 0.5, 0.0])
    # SegNet: freq_c = pixels of c / pixels of the images holding c
    assert np.allclose(median_frequency_weights([10, 30, 60], image_pixels=[100, 100, 200]), [3.0, 1.0, 1.0])
    assert median_frequency_weights([0, 0]) == [0.0, 0.0]


def test_class_statistics_count_mapped_labels_with_workers(tmp_path):
    masks = [np.array([[0, 0, 1, 255]]), np.array([[1, 1, 7, 7]]), np.array([[0, 0, 0, 0]])]
    for i, mask in enumerate(masks):
        write_image(tmp_path / "images" / "train" / f"{i}.png", np.zeros((1, 4, 3), np.uint8))
        write_mask(tmp_path / "masks" / "train" / f"{i}.png", mask)
    ds = build_dataset(data_cfg(root=str(tmp_path), num_classes=3, label_map={7: 2}), "train")
    pixels, images, image_pixels = class_statistics(ds, num_workers=2)
    assert pixels.tolist() == [6, 3, 2]  # 255 is ignored, 7 is class 2
    assert images.tolist() == [2, 2, 1] and image_pixels.tolist() == [8, 8, 4]  # whole images, ignored pixels too


def test_camvid_frequencies_and_segnet_weights(camvid_root):
    cfg = load_config("configs/_base/datasets/camvid.yaml", [f"data.root={camvid_root}"]).data
    train = build_dataset(cfg, "train")
    pixels, images, image_pixels = class_statistics(train, num_workers=0)
    all_pixels = 367 * 360 * 480
    published = [0.169, 0.233, 0.010, 0.317, 0.045, 0.097, 0.012, 0.011, 0.059, 0.006, 0.003]  # shared/data/README.md
    assert np.allclose(pixels / all_pixels, published, atol=0.0015)
    weights = np.array(median_frequency_weights(pixels, image_pixels))
    segnet = np.array([0.2595, 0.1826, 4.5640, 0.1417, 0.9051, 0.3826, 9.6446, 1.8418, 0.6823, 6.2478, 7.3614])
    # SegNet's published weights do not come out of this release of the labels under SegNet's own definition
    # (nor under the all-pixels one): SignSymbol (3.85 vs 9.64) and Bicyclist (8.86 vs 7.36) differ most.
    # The other nine agree within 16%; the largest weights go to Pole, Pedestrian and Bicyclist.
    others = [0, 1, 2, 3, 4, 5, 7, 8, 9]
    assert np.allclose(weights[others], segnet[others], rtol=0.16)
    assert set(np.argsort(weights)[-3:]) == {2, 9, 10} and weights[3] == weights.min()  # Road, the most common


def test_auto_class_weights_are_cached_in_the_work_dir_per_file_list_and_mapping(tmp_path, monkeypatch):
    from segkit.data import stats
    from tests.data_files import folder_set

    folder_set(tmp_path / "data", splits=(("train", 4),))
    ds = build_dataset(data_cfg(root=str(tmp_path / "data")), "train")
    work = tmp_path / "work"
    work.mkdir()
    weights, cached = stats.cached_class_weights(ds, work)
    assert not cached and weights == stats.class_weights(ds) and (work / stats.CACHE_FILE).is_file()
    monkeypatch.setattr(stats, "class_weights", lambda *a, **k: pytest.fail("recomputed"))
    assert stats.cached_class_weights(ds, work) == (weights, True)
    monkeypatch.undo()
    fewer = build_dataset(data_cfg(root=str(tmp_path / "data")), "train")
    fewer.pairs = fewer.pairs[:3]
    assert stats.cached_class_weights(fewer, work)[1] is False  # another file list
    remapped = build_dataset(data_cfg(root=str(tmp_path / "data"), label_map={2: 255}), "train")
    again, cached = stats.cached_class_weights(remapped, work)
    assert not cached and again[2] == 0.0  # another label mapping: class 2 is now ignored


class _SignalProbe:
    """A data set whose mask pixels say whether the process reading them ignores Ctrl-C."""

    def __init__(self, image_path):
        self.pairs = [(image_path, image_path)]
        self.channels = 3  # what a data set of RGB images says

    def __len__(self) -> int:
        return 1

    def raw_mask(self, index: int) -> np.ndarray:
        import signal

        return np.full((1, 4), int(signal.getsignal(signal.SIGINT) == signal.SIG_IGN))


def test_scan_workers_ignore_stop_signals(tmp_path):
    # the class-weight scan runs inside training set-up: a Ctrl-C there must reach the main process
    # only (which stops cleanly), not kill a worker mid-read with a traceback
    from segkit.data.check import SplitCheck, _scan
    from segkit.data.stats import raw_histograms

    write_image(tmp_path / "a.png", np.zeros((1, 4, 3), np.uint8))
    probe = _SignalProbe(tmp_path / "a.png")
    assert raw_histograms(probe, num_workers=0)[0][0].tolist() == [0]  # this process does not ignore it
    assert raw_histograms(probe, num_workers=1)[0][0].tolist() == [1]
    assert [h[0].tolist() for h in _scan(probe, SplitCheck("train"), 1, False)] == [[1]]
