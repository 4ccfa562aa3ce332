"""Acceptance (issue #20): a 12-bit copy of ISBI (values x16 in 16-bit PNGs) trains with no new setting to the
val mIoU of the 8-bit data, same seed and iterations. Before, read_image shifted 16-bit data right by 8 bits
(12-bit 0..4095 -> 0..15), and the same run learned from a nearly flat image."""

from pathlib import Path

import cv2
import numpy as np
import pytest

from segkit.checkpoint import model_from_checkpoint
from segkit.config import load_config
from segkit.data.check import check_dataset
from segkit.inference.predictor import Predictor
from segkit.training.engine import train

ITERATIONS = 60  # enough for the runs to leave the trivial all-'cell' answer (mIoU ~0.40) behind


def deep_copy(isbi_root: Path, out: Path) -> Path:
    """image/*.png as uint16 values x16 (12 bits used), label/ linked."""
    (out / "image").mkdir(parents=True)
    (out / "label").symlink_to(isbi_root / "label")
    for path in sorted((isbi_root / "image").glob("*.png")):
        grey = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        assert grey.dtype == np.uint8
        cv2.imwrite(str(out / "image" / path.name), grey.astype(np.uint16) * 16)
    return out


def run(root: Path, work: Path):
    cfg = load_config(
        "configs/isbi/unet_r18.yaml",
        [
            f"data.root={root}",
            "data.num_workers=0",
            "data.crop_size=[128,128]",
            f"train.iterations={ITERATIONS}",
            "train.batch_size=4",
            "train.warmup_iters=0",
            f"train.val_interval={ITERATIONS}",
            f"train.checkpoint_interval={ITERATIONS}",
            "train.log_interval=20",
            "eval.resize=[256,256]",
            "train.device=cpu",
            "train.seed=3",
            "train.progress=log",
            "train.tensorboard=false",
        ],
    )
    return cfg, train(cfg, str(work))


@pytest.mark.slow
def test_12_bit_isbi_trains_like_the_8_bit_data(isbi_root, tmp_path):
    deep = deep_copy(isbi_root, tmp_path / "isbi16")
    assert cv2.imread(str(deep / "image" / "0.png"), cv2.IMREAD_UNCHANGED).max() > 255

    cfg = load_config("configs/isbi/unet_r18.yaml", [f"data.root={deep}", "data.num_workers=0"])
    lines, ok = check_dataset(cfg, ["train"])
    text = "\n".join(lines)
    assert ok, text
    assert "uint16" in text and "needs 12 of 16 bits" in text and "0.5/99.5 percentiles" in text

    _, eight = run(isbi_root, tmp_path / "w8")
    _, sixteen = run(deep, tmp_path / "w16")
    print(f"val mIoU after {ITERATIONS} iterations: 8-bit {eight['mIoU']:.4f}, 12-bit {sixteen['mIoU']:.4f}")
    # all-'cell' scores ~0.40; the 8-bit run measured 0.480 here (2 shared CPU cores, seed 3)
    assert eight["mIoU"] > 0.44, "the 8-bit reference did not learn: the comparison says nothing"
    assert abs(sixteen["mIoU"] - eight["mIoU"]) < 0.04

    # the measured range went into the run's config and checkpoint; inference maps values the same way
    _, saved, meta = model_from_checkpoint(tmp_path / "w16" / "last.pth")
    lo, hi = np.asarray(saved.data.value_range)[0]
    assert meta["value_range"] == list(map(list, saved.data.value_range)) and 0 <= lo < hi <= 4095
    assert "value_range" in (tmp_path / "w16" / "config.yaml").read_text()
    predictor = Predictor.from_checkpoint(tmp_path / "w16" / "last.pth", device="cpu")
    image = deep / "image" / "27.png"
    from_path = predictor.predict(image)
    from_array = predictor.predict(cv2.imread(str(image), cv2.IMREAD_UNCHANGED))
    assert np.array_equal(from_path, from_array) and from_path.shape == (512, 512)
