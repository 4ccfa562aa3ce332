"""Train a CamVid config from scratch, then evaluate its best checkpoint on val and test, and
record settings, time and mIoU in docs/BENCHMARKS.md (section ``camvid-<config stem>``).

    python bench/camvid_train.py [CONFIG] --data /path/to/camvid [key=value ...]

The CPU recipe takes about 30 minutes on 2 cores. Settings were chosen on val only; test is
evaluated once, at the end, with the checkpoint that was best on val.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Dict, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from bench._common import default_camvid, machine, markdown_table, write_section  # noqa: E402
from segkit.checkpoint import model_from_checkpoint  # noqa: E402
from segkit.config import load_config  # noqa: E402
from segkit.data import build_dataset, build_eval_loader  # noqa: E402
from segkit.evaluation.evaluator import evaluate  # noqa: E402
from segkit.evaluation.metrics import format_table  # noqa: E402
from segkit.runtime import inference_channels_last, inference_dtype  # noqa: E402
from segkit.training.engine import train  # noqa: E402


def score(checkpoint: Path, data: str | None = None) -> Dict[str, Dict]:
    """Val and test results of a checkpoint, evaluated as its own config says (eval.*)."""
    model, ckpt_cfg, _ = model_from_checkpoint(checkpoint)
    if data:
        ckpt_cfg.data.root = str(data)
    device = torch.device("cuda" if torch.cuda.is_available() and ckpt_cfg.train.device != "cpu" else "cpu")
    model = model.to(device)
    if inference_channels_last(ckpt_cfg):
        model = model.to(memory_format=torch.channels_last)
    dtype = inference_dtype(ckpt_cfg, device)
    scores = {}
    for split in ("val", "test"):
        dataset = build_dataset(ckpt_cfg.data, getattr(ckpt_cfg.data, f"{split}_split"))
        loader = build_eval_loader(dataset, ckpt_cfg.eval.batch_size, ckpt_cfg.data.num_workers)
        scores[split] = evaluate(model, loader, ckpt_cfg, device, dtype)
        scores[split]["class_names"] = list(dataset.class_names)
        print(f"{checkpoint} {split}:\n{format_table(scores[split], dataset.class_names)}")
    return scores


def run(config: str, data: str, overrides: Sequence[str] = (), work_dir: str | None = None) -> Dict:
    """Train ``config`` on CamVid at ``data``, score its best checkpoint; returns what the table needs."""
    cfg = load_config(config, [f"data.root={data}", *overrides])
    work = Path(work_dir or f"work_dirs/bench_{Path(config).stem}")
    ran_on = machine()  # the code that trains is the code of now: a commit made during the run is not it
    start = time.perf_counter()
    train(cfg, str(work))
    seconds = time.perf_counter() - start
    return {
        "cfg": cfg,
        "work": work,
        "seconds": seconds,
        "scores": score(work / "best.pth", data),
        "machine": ran_on,
        "device": "cuda" if torch.cuda.is_available() and cfg.train.device != "cpu" else "cpu",
    }


def section(config: str, overrides: Sequence[str], result: Dict) -> str:
    cfg, scores = result["cfg"], result["scores"]
    t, m = cfg.train, cfg.model
    loss = " + ".join(
        f"{x.weight:g} {x.name}" + (f" (class weights {x.class_weights})" if x.class_weights else "")
        for x in cfg.loss.terms
    )
    settings = (
        f"{m.backbone.name} (OS{m.backbone.output_stride}, from scratch) {m.decoder.name}"
        f"{f' {m.decoder.channels}ch' if m.decoder.channels else ''}; crops {list(cfg.data.crop_size)} "
        f"at scale {list(cfg.data.scale_range)}; {t.iterations} iterations x batch {t.batch_size}; "
        f"{t.optimizer} lr {t.lr:g}, wd {t.weight_decay:g}, poly, warm-up {t.warmup_iters}; loss {loss}; "
        f"amp {t.amp}; eval resize {cfg.eval.resize or 'none'}"
    )
    rows = [
        [
            f"`{config}`",
            f"{100 * scores['val']['mIoU']:.1f}",
            f"{100 * scores['test']['mIoU']:.1f}",
            f"{result['seconds'] / 60:.1f}",
            result["device"],
        ]
    ]
    table = markdown_table(["config", "val mIoU", "test mIoU", "train minutes", "device"], rows)
    per_class = markdown_table(
        ["class"] + scores["test"]["class_names"], [["test IoU"] + [f"{100 * v:.1f}" for v in scores["test"]["IoU"]]]
    )
    return (
        f"### CamVid from scratch: `{Path(config).stem}`\n\n{table}\n\n{per_class}\n\nSettings: {settings}. "
        f"Best checkpoint on val; test evaluated once. Published from-scratch anchors on CamVid test "
        f"(11 classes): ENet 51.3, FC-DenseNet103 66.9.\n"
        f"`python bench/camvid_train.py {' '.join([config, *overrides])} --data DATA`\n\n"
        f"{result.get('machine') or machine()}"
    )


def publish(config: str, overrides: Sequence[str], result: Dict) -> str:
    """Write the run's section of docs/BENCHMARKS.md (``camvid-<config stem>``); returns its text."""
    text = section(config, overrides, result)
    write_section(f"camvid-{Path(config).stem}", text)
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("config", nargs="?", default="configs/camvid/deeplabv3plus_r18_cpu.yaml")
    parser.add_argument("overrides", nargs="*")
    parser.add_argument("--data", default=str(default_camvid()), help="CamVid root (SegNet layout)")
    parser.add_argument("--work-dir", help="default work_dirs/bench_<config stem>")
    parser.add_argument("--no-write", action="store_true", help="print the results only")
    args = parser.parse_intermixed_args()
    result = run(args.config, args.data, args.overrides, args.work_dir)
    print((section if args.no_write else publish)(args.config, args.overrides, result))


if __name__ == "__main__":
    main()
