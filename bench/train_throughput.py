"""Training throughput, segkit beside torchvision / smp, same batch, size and precision, one run.

    python bench/train_throughput.py            # the real measurement; writes docs/BENCHMARKS.md
    python bench/train_throughput.py --quick    # a smoke run at a tiny size, without compile (nothing written)
    python bench/train_throughput.py --compile  # also segkit's fast path under torch.compile
    python bench/train_throughput.py --avx2-only --compile  # the same on an emulated CPU without AVX-512

For each pair and each precision (fp32; the fast path = bf16 autocast + channels-last where the
CPU runs bf16 natively, AMP on a GPU) it times training steps (forward, loss, backward, SGD step)
of segkit and of the reference interleaved in one process (order reversed every other round),
and reports images/s and the segkit/reference ratio with its min-max over rounds. A last column compares segkit's fast path with the
reference's default fp32 path, the switch a user actually makes.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


from bench._common import emulate_avx2_only, load_average, machine, write_section  # noqa: E402
from bench._pairs import INTERLEAVED, measure_pairs, table  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=6, help="interleaved rounds (ratio spread over these)")
    parser.add_argument("--steps", type=int, default=1, help="timed steps per variant per round")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument(
        "--compile",
        action="store_true",
        help="add segkit's fast path under torch.compile (inductor; 25-62 s of compiling per model on 2 cores)",
    )
    parser.add_argument(
        "--avx2-only",
        action="store_true",
        help="emulate a CPU without AVX-512 (no native bf16: the fast path is fp32 + channels-last); "
        "writes its own section",
    )
    parser.add_argument("--quick", action="store_true", help="tiny size, one model, nothing written")
    args = parser.parse_args()
    if args.avx2_only:
        emulate_avx2_only()
    if args.quick:
        # no compile here: a quick run with compile did not finish in 15 minutes at load average 18 on 2 cores
        results = measure_pairs("train", 64, 2, 1, 2, 1, models=["U-Net-R34"])
        print(f"Machine: {machine()}\n\n{table(results, 2)}")
        return
    load = load_average()
    results = measure_pairs("train", args.size, args.batch, args.warmup, args.rounds, args.steps, compile=args.compile)
    flags = f"{' --avx2-only' if args.avx2_only else ''}{' --compile' if args.compile else ''}"
    title = (
        "## Training step on a CPU without AVX-512 (emulated): segkit beside torchvision / smp"
        if args.avx2_only
        else "## Training step: segkit beside torchvision / smp"
    )
    body = (
        f"{title}\n\nCommand: `python bench/train_throughput.py --size {args.size} --batch {args.batch}{flags}`  \n"
        f"Machine: {machine()}; {load} at the start  \n"
        f"Training step = forward, cross-entropy (+0.4 x aux where the model has an aux head), backward, "
        f"SGD step (fast rows: fused SGD on both sides, what `segkit train` builds; fp32 rows: torch's default "
        f"for-loop SGD on both sides, the references' default); batch {args.batch} "
        f"of {args.size}x{args.size}, {args.warmup} warm-up steps per variant. "
        + INTERLEAVED.format(steps=args.steps, rounds=args.rounds)
        + (
            " The torch.compile row is segkit's fast path under `train.compile=true` (inductor), timed in the same "
            "rounds; its first step, which compiles, is timed apart."
            if args.compile
            else ""
        )
        + "\n\n"
        + table(results, args.batch)
    )
    write_section("train_throughput_avx2" if args.avx2_only else "train_throughput", body)
    print(body)


if __name__ == "__main__":
    main()
