"""Evaluate a checkpoint: per-class table, JSON results, confusion matrix and IoU charts.

    python tools/eval.py CHECKPOINT [key=value ...] [--config CFG] [--split val] [--slide] [--tta]
                         [--out results.json] [--show-dir DIR]

By default the data and inference settings are the checkpoint's own (its eval.* config, the
split its training validated on), so the mIoU printed equals the one logged at the end of
training. --config or key=value overrides (e.g. data.root=...) change them.
"""
import argparse
import json
import sys
from pathlib import Path


import torch
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException
from tqdm import tqdm

from segkit.checkpoint import CheckpointError, model_from_checkpoint
from segkit.config import ConfigError, load_config, to_dict
from segkit.data import DataError, build_dataset, build_eval_loader
from segkit.engine import amp_dtype
from segkit.evaluation import SaveComparisons, apply_inference_options, evaluate, json_ready
from segkit.metrics import format_table
from segkit.predictor import pick_device
from segkit.visualize import plot_confusion, plot_iou


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("checkpoint")
    parser.add_argument("overrides", nargs="*", help="dotted config overrides, e.g. data.root=data/mine")
    parser.add_argument("--config", help="take data and eval settings from this config instead of the checkpoint's")
    parser.add_argument("--split", help="data split (default: the validation split, data.val_split)")
    parser.add_argument("--slide", action="store_true", help="sliding-window inference (eval.crop_size, eval.stride)")
    parser.add_argument("--tta", action="store_true", help="test-time augmentation: flip and scales")
    parser.add_argument("--out", help="results JSON (default <checkpoint dir>/eval_<split>.json); the two "
                                      "charts go beside it")
    parser.add_argument("--show-dir", help="write image | ground truth | prediction | errors for every image here")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    return parser.parse_intermixed_args(argv)  # overrides may come after the flags


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        model, ckpt_cfg, meta = model_from_checkpoint(args.checkpoint)
        cfg = load_config(args.config, args.overrides) if args.config else with_overrides(ckpt_cfg, args.overrides)
        if list(cfg.data.mean) != list(ckpt_cfg.data.mean) or list(cfg.data.std) != list(ckpt_cfg.data.std):
            print("note: normalisation (data.mean/std) is the checkpoint's: the model was trained with it",
                  file=sys.stderr)
            cfg.data.mean, cfg.data.std = list(ckpt_cfg.data.mean), list(ckpt_cfg.data.std)
        if cfg.data.num_classes != ckpt_cfg.data.num_classes:
            raise ConfigError(f"{args.config}: data.num_classes={cfg.data.num_classes} but the checkpoint predicts "
                              f"{ckpt_cfg.data.num_classes} classes")
        apply_inference_options(cfg, True if args.slide else None, args.tta)
        split = args.split or cfg.data.val_split
        dataset = build_dataset(cfg.data, split)
        device = pick_device(args.device)
    except (CheckpointError, ConfigError, DataError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    # The model exactly as training validated it: same device kind, autocast and memory format.
    model = model.to(device)
    if cfg.train.channels_last:
        model = model.to(memory_format=torch.channels_last)
    loader = build_eval_loader(dataset, cfg.eval.batch_size, cfg.data.num_workers, pin_memory=device.type == "cuda")
    class_names = meta.get("class_names") or dataset.class_names
    palette = meta.get("palette") or dataset.palette
    show = SaveComparisons(dataset, args.show_dir, class_names, palette, cfg.data.ignore_index) if args.show_dir else None
    try:
        results = evaluate(model, tqdm(loader, desc=f"eval {split}", unit="batch", file=sys.stderr), cfg, device,
                           amp_dtype(cfg.train.amp, device), on_batch=show)
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    print(format_table(results, class_names))
    out = Path(args.out or Path(args.checkpoint).parent / f"eval_{split}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    report = {"checkpoint": str(args.checkpoint), "split": split, "images": len(dataset), "class_names": class_names,
              "eval": to_dict(cfg.eval), **results}
    out.write_text(json.dumps(json_ready(report), indent=1))
    confusion = plot_confusion(results["confusion"], class_names, out.with_name(f"{out.stem}_confusion.png"))
    iou = plot_iou(results["IoU"], class_names, out.with_name(f"{out.stem}_iou.png"), results["mIoU"])
    print(f"results: {out}\ncharts: {confusion}, {iou}")
    if show:
        print(f"{show.written} comparisons (image | ground truth | prediction | errors): {args.show_dir}")
    return 0


def with_overrides(cfg, overrides):
    """The checkpoint's config with dotted ``key=value`` overrides, checked against the schema."""
    if not overrides:
        return cfg
    bad = [o for o in overrides if "=" not in o]
    if bad:
        raise ConfigError(f"override '{bad[0]}' must look like key=value, e.g. data.root=data/mine")
    try:
        return OmegaConf.merge(cfg, OmegaConf.from_dotlist(list(overrides)))
    except OmegaConfBaseException as exc:
        raise ConfigError(f"override {' '.join(overrides)}: {str(exc).splitlines()[0]}") from exc

