"""The walking skeleton: sample data -> train a few steps -> checkpoint -> evaluate -> same numbers."""
import torch

from segkit.checkpoint import model_from_checkpoint
from segkit.config import load_config
from segkit.data import build_dataset, build_loader
from segkit.engine import train
from segkit.evaluation import evaluate


def test_train_checkpoint_evaluate_agree(sample_root, tmp_path):
    cfg = load_config("configs/sample/deeplabv3plus_r18.yaml", [
        f"data.root={sample_root}", "data.num_workers=0", "train.iterations=4", "train.batch_size=2",
        "train.val_interval=4", "train.checkpoint_interval=4", "train.log_interval=2"])
    results = train(cfg, str(tmp_path))
    model, ckpt_cfg, meta = model_from_checkpoint(tmp_path / "last.pth")
    assert meta["class_names"] == list(cfg.data.class_names)
    loader = build_loader(build_dataset(ckpt_cfg.data, ckpt_cfg.data.val_split), 1, False)
    again = evaluate(model, loader, ckpt_cfg, torch.device("cpu"))
    assert again["mIoU"] == results["mIoU"]
