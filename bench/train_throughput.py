"""Training throughput, segkit beside torchvision / smp, same batch, size and precision, one run.

    python bench/train_throughput.py            # the real measurement; writes docs/BENCHMARKS.md
    python bench/train_throughput.py --quick    # a smoke run at a tiny size (nothing written)

For each pair and each precision (fp32; the fast path = bf16 autocast + channels-last where the
CPU runs bf16 natively, AMP on a GPU) it times training steps (forward, loss, backward, SGD step)
of segkit and of the reference in alternating fresh processes, and reports images/s, the
segkit/reference ratio and peak memory. A last column compares segkit's fast path with the
reference's default fp32 path, the switch a user actually makes.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine, markdown_table, run_worker, write_section  # noqa: E402
from _pairs import PAIRS  # noqa: E402


def measure_pairs(task: str, size: int, batch: int, warmup: int, repeats: int, models=None) -> dict:
    """{(model, mode, side): result}, segkit and reference measured back to back for each cell."""
    results = {}
    for label in models or PAIRS:
        for mode in ("fp32", "fast"):
            for side in ("segkit", "reference"):
                spec = {"task": task, "model": label, "side": side, "mode": mode, "size": size, "batch": batch,
                        "warmup": warmup, "repeats": repeats}
                results[(label, mode, side)] = r = run_worker(spec)
                print(f"{task} {label:22s} {mode:4s} {side:9s} {r['median']:.3f} s/step  "
                      f"peak {r['peak_mb']:.0f} MB", flush=True)
    return results


def table(results: dict, batch: int, unit: str = "img/s") -> str:
    rows = []
    for label, (_, ref_label, _, note) in PAIRS.items():
        if (label, "fp32", "segkit") not in results:
            continue
        ref_fp32 = batch / results[(label, "fp32", "reference")]["median"]
        for mode in ("fp32", "fast"):
            seg, ref = results[(label, mode, "segkit")], results[(label, mode, "reference")]
            s, r = batch / seg["median"], batch / ref["median"]
            vs_default = f"{s / ref_fp32:.2f}x" if mode == "fast" else ""
            rows.append([label, ref_label, f"{mode} ({seg['dtype']})", f"{s:.2f}", f"{r:.2f}", f"{s / r:.2f}x",
                         vs_default, f"{seg['peak_mb']:.0f} / {ref['peak_mb']:.0f}", note if mode == "fp32" else ""])
    return markdown_table(["segkit model", "reference", "precision", f"segkit {unit}", f"reference {unit}",
                           "segkit / reference", "segkit fast / reference fp32", "peak MB (segkit / ref)", "notes"],
                          rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="tiny size, one model, nothing written")
    args = parser.parse_args()
    if args.quick:
        results = measure_pairs("train", 64, 2, 1, 1, models=["U-Net-R34"])
        print(table(results, 2))
        return
    results = measure_pairs("train", args.size, args.batch, args.warmup, args.repeats)
    body = (f"Command: `python bench/train_throughput.py --size {args.size} --batch {args.batch}`  \n"
            f"Machine: {machine()}  \n"
            f"Training step = forward, cross-entropy (+0.4 x aux where the model has an aux head), backward, "
            f"SGD step; batch {args.batch} of {args.size}x{args.size}, median of {args.repeats} steps after "
            f"{args.warmup} warm-up steps, each model in a fresh process (peak MB = that process's peak RSS on a "
            f"CPU, peak allocated on a GPU).\n\n" + table(results, args.batch))
    write_section("train_throughput", body)
    print(body)


if __name__ == "__main__":
    main()
