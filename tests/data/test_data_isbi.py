"""The ISBI 2012 membrane set trains through the folder reader with label_map {255: 1} (configs/isbi)."""

import numpy as np

from segkit.checkpoint import model_from_checkpoint
from segkit.config import load_config
from segkit.data import build_dataset
from segkit.training.engine import train


def test_isbi_trains_through_the_folder_reader(isbi_root, tmp_path):
    cfg = load_config(
        "configs/isbi/unet_r18.yaml",
        [
            f"data.root={isbi_root}",
            "data.num_workers=0",
            "data.crop_size=[128,128]",
            "train.iterations=2",
            "train.batch_size=2",
            "train.warmup_iters=0",
            "train.val_interval=2",
            "train.checkpoint_interval=2",
            "train.log_interval=1",
            "eval.resize=[128,128]",
        ],
    )  # small inference keeps the test fast
    train_set, val_set = build_dataset(cfg.data, "train"), build_dataset(cfg.data, "val")
    assert [p[0].stem for p in train_set.pairs] == [str(i) for i in range(25)]
    assert [p[0].stem for p in val_set.pairs] == [str(i) for i in range(25, 30)]
    image, mask = val_set.read(0)
    assert image.shape == (512, 512, 3) and set(np.unique(mask)) == {0, 1}  # 255 (cell) became class 1
    results = train(cfg, str(tmp_path))
    assert sum(results["pixels"]) == 5 * 512 * 512 and 0.0 <= results["mIoU"] <= 1.0 and len(results["IoU"]) == 2
    _, _, meta = model_from_checkpoint(tmp_path / "last.pth")
    assert meta["class_names"] == ["membrane", "cell"]
