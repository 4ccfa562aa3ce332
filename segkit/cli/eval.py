"""Evaluate a checkpoint: per-class table, JSON results, confusion matrix and IoU charts.

    segkit eval CHECKPOINT [key=value ...] [--config CFG] [--split val] [--slide] [--tta]
                [--out results.json] [--show-dir DIR] [--report DIR]
    segkit eval CONFIG CHECKPOINT ...     (mmsegmentation's order: the same as --config CONFIG)
    python tools/eval.py CHECKPOINT ...   (the same, from a checkout)

By default the data and inference settings are the checkpoint's own (its eval.* config, the
split its training validated on), so the mIoU printed equals the one logged at the end of
training. --config or key=value overrides (e.g. data.root=...) change them.
"""

import argparse
import json
import sys
from pathlib import Path

import torch
from tqdm import tqdm

from segkit.checkpoint import model_from_checkpoint
from segkit.cli.common import add_override_args, output_folder, overrides_of
from segkit.config import ConfigError, apply_overrides, find_config, load_config, to_dict
from segkit.data import build_dataset, build_eval_loader
from segkit.evaluation.evaluator import PerImageMetrics, each, evaluate, json_ready
from segkit.evaluation.metrics import format_table
from segkit.evaluation.report import write_report
from segkit.inference.settings import apply_inference_options
from segkit.runtime import inference_channels_last, inference_dtype
from segkit.training import distributed
from segkit.training.plots import plot_confusion, plot_iou
from segkit.visualization.comparisons import SaveComparisons


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("checkpoint", help="a .pth checkpoint (or CONFIG CHECKPOINT, in mmsegmentation's order)")
    add_override_args(parser, amp_key="eval.amp")
    parser.add_argument("--config", help="take data and eval settings from this config instead of the checkpoint's")
    parser.add_argument("--split", help="data split (default: the validation split, data.val_split)")
    parser.add_argument("--slide", action="store_true", help="sliding-window inference (eval.crop_size, eval.stride)")
    parser.add_argument("--tta", action="store_true", help="test-time augmentation: flip and scales")
    parser.add_argument(
        "--out", help="results JSON (default <checkpoint dir>/eval_<split>.json); the two charts go beside it"
    )
    parser.add_argument(
        "--show-dir", type=output_folder, help="write image | ground truth | prediction | errors for every image here"
    )
    parser.add_argument(
        "--report",
        metavar="DIR",
        help="a static HTML report here (DIR/index.html, worst image first, with each image's comparison picture)",
    )
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    args = parser.parse_intermixed_args(argv)  # overrides may come after the flags
    if looks_like_config(args.checkpoint):
        # mmsegmentation's `eval CONFIG CHECKPOINT`: the checkpoint is the first non-override that follows
        rest = [o for o in args.overrides if "=" not in o]
        if not rest or args.config:
            parser.error(
                f"'{args.checkpoint}' is a config, not a checkpoint: segkit eval CHECKPOINT "
                f"[--config CONFIG] (or CONFIG CHECKPOINT)"
            )
        args.config, args.checkpoint = args.checkpoint, rest[0]
        args.overrides.remove(rest[0])
    args.overrides = overrides_of(args)
    return args


def looks_like_config(path: str) -> bool:
    if Path(path).suffix in (".yaml", ".yml"):
        return True
    try:
        return not Path(path).is_file() and find_config(path) is not None  # a shipped name
    except ConfigError:
        return False


def main(argv=None) -> int:
    args = parse_args(argv)
    model, ckpt_cfg, meta = model_from_checkpoint(args.checkpoint)
    cfg = load_config(args.config, args.overrides) if args.config else apply_overrides(ckpt_cfg, args.overrides)
    if list(cfg.data.mean) != list(ckpt_cfg.data.mean) or list(cfg.data.std) != list(ckpt_cfg.data.std):
        print("note: normalisation (data.mean/std) is the checkpoint's: the model was trained with it", file=sys.stderr)
        cfg.data.mean, cfg.data.std = list(ckpt_cfg.data.mean), list(ckpt_cfg.data.std)
    if cfg.data.num_classes != ckpt_cfg.data.num_classes:
        raise ConfigError(
            f"{args.config or 'the overrides'}: data.num_classes={cfg.data.num_classes} but the "
            f"checkpoint predicts {ckpt_cfg.data.num_classes} classes; leave data.num_classes out "
            f"(the checkpoint sets it), or evaluate a checkpoint trained for that many"
        )
    apply_inference_options(cfg, True if args.slide else None, args.tta)
    split = args.split or cfg.data.val_split
    dataset = build_dataset(cfg.data, split)
    env = distributed.setup(args.device)  # under torchrun: join the group, shard the images by rank
    try:
        return evaluate_checkpoint(args, model, cfg, meta, dataset, split, env)
    finally:
        distributed.teardown(env)


def evaluate_checkpoint(args, model, cfg, meta, dataset, split, env) -> int:
    """Every image once over the processes (rank r takes images r, r + world, ...), the confusion matrix summed
    over them; rank 0 prints and writes the results."""
    device = env.device
    # The model exactly as training validated it: same device kind, autocast and memory format.
    model = model.to(device)
    if inference_channels_last(cfg):
        model = model.to(memory_format=torch.channels_last)
    loader = build_eval_loader(
        dataset, cfg.eval.batch_size, cfg.data.num_workers, env.distributed, pin_memory=device.type == "cuda"
    )
    class_names = meta.get("class_names") or dataset.class_names
    palette = meta.get("palette") or dataset.palette
    show = (
        SaveComparisons(dataset, args.show_dir, class_names, palette, cfg.data.ignore_index) if args.show_dir else None
    )
    pictures = (
        SaveComparisons(dataset, Path(args.report) / "images", class_names, palette, cfg.data.ignore_index)
        if args.report
        else None
    )
    per_image = PerImageMetrics(dataset, cfg.data.num_classes, cfg.data.ignore_index)
    results = evaluate(
        model,
        tqdm(loader, desc=f"eval {split}", unit="batch", file=sys.stderr, disable=not env.is_main),
        cfg,
        device,
        inference_dtype(cfg, device),
        on_batch=each(show, pictures, per_image),
    )

    rows = [row for rank_rows in distributed.gather(per_image.rows, env) for row in rank_rows]
    written = sum(distributed.gather(show.written if show else 0, env))
    if not env.is_main:
        return 0
    order = {Path(image).stem: i for i, (image, *_) in enumerate(dataset.pairs)}
    per_image.rows = sorted(rows, key=lambda row: order.get(row["stem"], 0))  # dataset order, as one process
    if env.distributed:
        print(f"{env.world_size} processes, {len(per_image.rows)} images, confusion matrix summed over them")
    print(format_table(results, class_names))
    out = Path(args.out or Path(args.checkpoint).parent / f"eval_{split}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "checkpoint": str(args.checkpoint),
        "split": split,
        "images": len(dataset),
        "class_names": class_names,
        "eval": to_dict(cfg.eval),
        **results,
        "per_image": per_image.rows,
    }
    out.write_text(json.dumps(json_ready(report), indent=1))
    confusion = plot_confusion(results["confusion"], class_names, out.with_name(f"{out.stem}_confusion.png"))
    iou = plot_iou(results["IoU"], class_names, out.with_name(f"{out.stem}_iou.png"), results["mIoU"])
    print(f"results: {out}\ncharts: {confusion}, {iou}")
    if show:
        print(f"{written} comparisons (image | ground truth | prediction | errors): {args.show_dir}")
    if args.report:
        title = f"{Path(args.checkpoint).name} on {split} ({len(dataset)} images)"
        print(f"report (worst image first): {write_report(args.report, per_image.rows, results, class_names, title)}")
    return 0
