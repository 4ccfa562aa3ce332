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
    return markdown_table(["operator", "self CPU ms", "share", "calls"],
                          [[f"`{e.key}`", f"{e.self_cpu_time_total / 1e3:.1f}", f"{100 * e.self_cpu_time_total / total:.1f}%",
                            e.count] for e in events[:rows]])


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
                r = run_worker({"task": task, "model": model, "side": "segkit", "mode": mode, "size": size,
                                "batch": batch, "warmup": 1 if args.quick else 2, "repeats": 1 if args.quick else 5,
                                "flops": True})
                achieved = r["flops"] / r["median"] / 1e9
                peak = peaks[r["dtype"]]
                rows.append([model, task, r["dtype"], f"{r['flops'] / 1e9:.1f}", f"{r['median']:.3f}",
                             f"{achieved:.0f}", f"{peak:.0f}", f"{100 * achieved / peak:.0f}%"])
                print(rows[-1], flush=True)
    table = markdown_table(["model", "step", "dtype", "GFLOP / step", "seconds", "achieved GFLOP/s",
                            f"peak GFLOP/s (best of {n}^3 matmul, 3x3 conv)", "utilisation"], rows)
    prof = profile_table(size, batch)
    if args.quick:
        print(table, prof, sep="\n\n")
        return
    body = (f"Command: `python bench/limits.py`  \nMachine: {machine()}  \n"
            f"segkit models, batch {batch} of {size}x{size}; FLOPs counted by torch.utils.flop_counter "
            f"(convolutions and matmuls; a training step counts forward and backward).\n\n{table}\n\n"
            f"Where the time goes in one fast-path training step of {MODEL} (torch.profiler, self CPU time):\n\n{prof}")
    write_section("limits", body)
    print(body)


if __name__ == "__main__":
    main()
