"""Distance to the limit: the machine's measured peak against what training and inference achieve.

    python bench/limits.py            # writes docs/BENCHMARKS.md
    python bench/limits.py --quick    # a smoke run (nothing written)

Peak = the faster of a large matmul and a large 3x3 convolution in the same dtype (what the
hardware's GEMM and oneDNN/cuDNN convolutions reach); achieved = the FLOPs of a step
(torch.utils.flop_counter) divided by its time. A profiler table shows where the time goes.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from bench._common import machine, markdown_table, measure, run_worker, write_section  # noqa: E402

MODELS = ("U-Net-R34", "DeepLabV3-R50-OS8")  # an undilated and a dilated model
MODEL = MODELS[-1]  # the profiled one


def matmul_peak(dtype: torch.dtype, n: int = 4096, repeats: int = 5) -> float:
    """GFLOP/s of an n x n x n matmul."""
    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    t = measure(lambda: a @ b, warmup=2, repeats=repeats)["median"]
    return 2 * n**3 / t / 1e9


def conv_peak(dtype: torch.dtype, size: int = 64, channels: int = 256, repeats: int = 5) -> float:
    """GFLOP/s of a 3x3 convolution, channels -> channels on a size x size map, channels-last, inference."""
    conv = torch.nn.Conv2d(channels, channels, 3, padding=1, bias=False).to(dtype).to(memory_format=torch.channels_last)
    x = torch.randn(4, channels, size, size).to(dtype).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        t = measure(lambda: conv(x), warmup=2, repeats=repeats)["median"]
    return 2 * 9 * channels * x.numel() / t / 1e9  # 9 x channels multiply-adds per output value


def profile_table(size: int, batch: int, rows: int = 12) -> str:
    """Top operators by self CPU time in one fast-path training step."""
    import torch.nn.functional as F
    from torch.profiler import ProfilerActivity, profile

    from bench._pairs import PAIRS, outputs
    from bench._worker import fast_dtype

    model = PAIRS[MODEL][0]().to(memory_format=torch.channels_last).train()
    x = torch.randn(batch, 3, size, size).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 21, (batch, size, size))
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    dtype = fast_dtype(torch.device("cpu"))

    def step():
        with torch.autocast("cpu", dtype=dtype, enabled=dtype is not None):
            out, aux = outputs(model(x))
            loss = F.cross_entropy(out.float(), y) + 0.4 * F.cross_entropy(aux.float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    step()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        step()
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in events)
    return markdown_table(
        ["operator", "self CPU ms", "share", "calls"],
        [
            [f"`{e.key}`", f"{e.self_cpu_time_total / 1e3:.1f}", f"{100 * e.self_cpu_time_total / total:.1f}%", e.count]
            for e in events[:rows]
        ],
    )


# operator -> category for the "why" table; the first pattern that matches wins, on the aten name
CATEGORIES = (
    ("convolution backward", r"convolution_backward|conv.*backward"),
    ("convolution forward", r"conv"),
    ("batch norm (fwd + bwd)", r"batch_norm"),
    ("fused optimizer step", r"_fused_|_foreach_"),
    ("copies and dtype casts", r"copy_|_to_copy|^aten::to$|clone|contiguous|^aten::cat$|empty|fill_|zero_"),
    ("upsampling, bilinear and nearest (fwd + bwd)", r"upsample|grid_sampler"),
    ("loss (log-softmax, NLL)", r"log_softmax|nll_loss"),
    (
        "elementwise, activations, for-loop optimizer",
        r"add|mul|div|sub|relu|clamp|threshold|sqrt|addcmul|"
        r"addcdiv|lerp|bernoulli|dropout|sum|mean|max|where|neg",
    ),
)


def category_times(model: str, side: str, mode: str, size: int, batch: int, steps: int = 2) -> dict:
    """{category: ms per step} of one training step (torch.profiler, self CPU time), and "total"."""
    import re

    from torch.profiler import ProfilerActivity, profile

    from bench._worker import make_step

    step, _, _ = make_step({"task": "train", "model": model, "size": size, "batch": batch, "mode": mode}, side)
    step(), step()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            step()
    found = {name: 0.0 for name, _ in CATEGORIES} | {"other": 0.0}
    for e in prof.key_averages():
        if not e.key.startswith("aten::"):
            continue  # record_function ranges (Optimizer.step, autograd nodes) hold no time of their own here
        name = next((n for n, pattern in CATEGORIES if re.search(pattern, e.key)), "other")
        found[name] += e.self_cpu_time_total / 1e3 / steps
    found["total"] = sum(found.values())
    return found


def why_table(size: int, batch: int, models=None) -> str:
    """Where a step's time goes, for each model: the reference's fp32 step beside segkit's fast one, so the
    categories the fast path does not speed up show why a model's training is short of 2x."""
    from bench._pairs import PAIRS

    rows = []
    for model in models or PAIRS:
        ref, fast = (
            category_times(model, "reference", "fp32", size, batch),
            category_times(model, "segkit", "fast", size, batch),
        )
        for name in ref:
            if ref[name] < 0.5 and fast[name] < 0.5:
                continue
            rows.append(
                [
                    model if name == next(iter(ref)) else "",
                    name,
                    f"{ref[name]:.0f}",
                    f"{100 * ref[name] / ref['total']:.0f}%",
                    f"{fast[name]:.0f}",
                    f"{100 * fast[name] / fast['total']:.0f}%",
                    f"{ref[name] / fast[name]:.2f}x" if min(ref[name], fast[name]) >= 0.5 else "",
                ]
            )
        print(rows[-1], flush=True)
    return markdown_table(
        ["model", "operators", "reference fp32 ms", "share", "segkit fast ms", "share", "speed-up"], rows
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    size, batch, n = (64, 2, 1024) if args.quick else (args.size, args.batch, 4096)
    peaks = {}
    for name, dtype in (("float32", torch.float32), ("bfloat16", torch.bfloat16)):
        mm, cv = matmul_peak(dtype, n), conv_peak(dtype, 32 if args.quick else 64)
        peaks[name] = max(mm, cv)
        print(f"peak {name}: matmul {mm:.0f} GFLOP/s, 3x3 conv {cv:.0f} GFLOP/s", flush=True)
    rows = []
    for model in MODELS:
        for task in ("train", "infer"):
            for mode in ("fp32", "fast"):
                r = run_worker(
                    {
                        "task": task,
                        "model": model,
                        "side": "segkit",
                        "mode": mode,
                        "size": size,
                        "batch": batch,
                        "warmup": 1 if args.quick else 2,
                        "repeats": 1 if args.quick else 5,
                        "flops": True,
                    }
                )
                achieved = r["flops"] / r["median"] / 1e9
                peak = peaks[r["dtype"]]
                rows.append(
                    [
                        model,
                        task,
                        r["dtype"],
                        f"{r['flops'] / 1e9:.1f}",
                        f"{r['median']:.3f}",
                        f"{achieved:.0f}",
                        f"{peak:.0f}",
                        f"{100 * achieved / peak:.0f}%",
                    ]
                )
                print(rows[-1], flush=True)
    table = markdown_table(
        [
            "model",
            "step",
            "dtype",
            "GFLOP / step",
            "seconds",
            "achieved GFLOP/s",
            f"peak GFLOP/s (best of {n}^3 matmul, 3x3 conv)",
            "utilisation",
        ],
        rows,
    )
    prof = profile_table(size, batch)
    why = why_table(size, batch, ["U-Net-R34"] if args.quick else None)
    if args.quick:
        print(table, prof, why, sep="\n\n")
        return
    body = (
        f"Command: `python bench/limits.py`  \nMachine: {machine()}  \n"
        f"segkit models, batch {batch} of {size}x{size}; FLOPs counted by torch.utils.flop_counter "
        f"(convolutions and matmuls; a training step counts forward and backward).\n\n{table}\n\n"
        f"Where the time goes in one fast-path training step of {MODEL} (torch.profiler, self CPU time):\n\n{prof}\n\n"
        f"Why a model's fast path is short of 2x the reference's fp32 training step "
        f"(`bench/train_throughput.py`'s table): the same training step profiled by operator category, "
        f"the reference in fp32 beside segkit's fast path (torch.profiler self CPU time per step, batch {batch} "
        f"of {size}x{size}; the profiler's own overhead inflates the many small operators alike on both "
        f"sides). The speed-up column is what the fast path does to each category; the total's speed-up is "
        f"bounded by the categories it barely changes.\n\n{why}"
    )
    write_section("limits", body)
    print(body)


if __name__ == "__main__":
    main()
