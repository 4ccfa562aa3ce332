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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from bench._common import machine, markdown_table, write_section  # noqa: E402
from segkit.checkpoint import model_from_checkpoint  # noqa: E402
from segkit.config import load_config  # noqa: E402
from segkit.data import build_dataset, build_loader  # noqa: E402
from segkit.engine import amp_dtype, train  # noqa: E402
from segkit.evaluation import evaluate  # noqa: E402
from segkit.metrics import format_table  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("config", nargs="?", default="configs/camvid/deeplabv3plus_r18_cpu.yaml")
    parser.add_argument("overrides", nargs="*")
    parser.add_argument("--data", default="data/camvid", help="CamVid root (SegNet layout)")
    parser.add_argument("--work-dir", help="default work_dirs/bench_<config stem>")
    parser.add_argument("--no-write", action="store_true", help="print the results only")
    args = parser.parse_intermixed_args()
    stem = Path(args.config).stem
    cfg = load_config(args.config, [f"data.root={args.data}", *args.overrides])
    work = Path(args.work_dir or f"work_dirs/bench_{stem}")

    start = time.perf_counter()
    train(cfg, str(work))
    minutes = (time.perf_counter() - start) / 60

    model, ckpt_cfg, _ = model_from_checkpoint(work / "best.pth")
    device = torch.device("cuda" if torch.cuda.is_available() and cfg.train.device != "cpu" else "cpu")
    model = model.to(device)
    if ckpt_cfg.train.channels_last:
        model = model.to(memory_format=torch.channels_last)
    dtype = amp_dtype(ckpt_cfg.train.amp, device)
    scores = {}
    for split in (ckpt_cfg.data.val_split, ckpt_cfg.data.test_split):
        data = build_dataset(ckpt_cfg.data, split)
        scores[split] = evaluate(model, build_loader(data, ckpt_cfg.eval.batch_size, False), ckpt_cfg, device, dtype)
        print(f"{split}:\n{format_table(scores[split], data.class_names)}")

    t, m = cfg.train, cfg.model
    loss = " + ".join(f"{x.weight:g} {x.name}" + (f" (class weights {x.class_weights})" if x.class_weights else "")
                      for x in cfg.loss.terms)
    settings = (f"{m.backbone.name} (OS{m.backbone.output_stride}, from scratch) {m.decoder.name}"
                f"{f' {m.decoder.channels}ch' if m.decoder.channels else ''}; crops {list(cfg.data.crop_size)} "
                f"at scale {list(cfg.data.scale_range)}; {t.iterations} iterations x batch {t.batch_size}; "
                f"{t.optimizer} lr {t.lr:g}, wd {t.weight_decay:g}, poly, warm-up {t.warmup_iters}; loss {loss}; "
                f"amp {t.amp}; eval resize {cfg.eval.resize or 'none'}")
    rows = [[f"`{args.config}`", f"{100 * scores[ckpt_cfg.data.val_split]['mIoU']:.1f}",
             f"{100 * scores[ckpt_cfg.data.test_split]['mIoU']:.1f}", f"{minutes:.1f}", str(device)]]
    table = markdown_table(["config", "val mIoU", "test mIoU", "train minutes", "device"], rows)
    per_class = markdown_table(["class"] + list(build_dataset(ckpt_cfg.data, "test").class_names),
                               [["test IoU"] + [f"{100 * v:.1f}" for v in scores[ckpt_cfg.data.test_split]["IoU"]]])
    text = (f"### CamVid from scratch: `{stem}`\n\n{table}\n\n{per_class}\n\nSettings: {settings}. "
            f"Best checkpoint on val; test evaluated once. Published from-scratch anchors on CamVid test "
            f"(11 classes): ENet 51.3, FC-DenseNet103 66.9.\n"
            f"`python bench/camvid_train.py {' '.join([args.config, *args.overrides])} --data DATA`\n\n{machine()}")
    print(text)
    if not args.no_write:
        write_section(f"camvid-{stem}", text)


if __name__ == "__main__":
    main()
