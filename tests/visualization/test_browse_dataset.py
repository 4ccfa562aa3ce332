"""tools/browse_dataset.py: a grid of ground-truth overlays, optionally after the training augmentation."""

import sys
from pathlib import Path

import cv2
import numpy as np

from segkit.visualization.overlays import hatched_overlay, palette_array

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))
import browse_dataset  # noqa: E402


def test_overlay_blends_classes_and_hatches_ignored_pixels():
    image = np.full((8, 8, 3), 100, np.uint8)
    mask = np.zeros((8, 8), np.int64)
    mask[:, 4:] = 255
    out = hatched_overlay(image, mask, palette_array(1, [[200, 0, 0]]), alpha=0.5)
    assert out[0, 0].tolist() == [150, 50, 50]  # half image, half the class colour
    right = out[:, 4:].reshape(-1, 3)
    assert {tuple(p) for p in right} == {(100, 100, 100), (255, 255, 255)}  # the image under a white hatch


def test_browse_writes_a_grid_with_and_without_augmentation(sample_root, tmp_path, capsys):
    config = "configs/sample/deeplabv3plus_r18.yaml"
    out = tmp_path / "grid.png"
    args = [config, f"data.root={sample_root}", "--num", "6", "--cols", "3", "--cell", "96", "--out", str(out)]
    assert browse_dataset.main(args) == 0 and str(out) in capsys.readouterr().out
    grid = cv2.imread(str(out))
    assert grid.shape[1] > 3 * 96 and grid.shape[0] >= 2 * 96  # 2 rows of 3 cells, the legend on the right
    assert (grid[: 2 * 96, : 3 * 96] == grid[: 2 * 96, : 3 * 96, :1]).mean() < 0.9  # the cells hold colour
    assert browse_dataset.main(args + ["--augment", "--split", "val"]) == 0
    augmented = cv2.imread(str(out))
    assert augmented.shape == grid.shape and not np.array_equal(augmented, grid)
    assert browse_dataset.main([config, "data.root=/nowhere", "--out", str(out)]) == 2
    assert "data root not found: /nowhere" in capsys.readouterr().err
