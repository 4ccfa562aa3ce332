"""One measurement in a fresh process: ``python bench/_worker.py '{"task": "train", ...}'`` prints one JSON line.

``"side": "segkit"`` or ``"reference"`` measures one model alone, so the peak resident memory
(ru_maxrss) is that model's own; ``"side": "pair"`` builds both sides of a pair in both precisions
and times them interleaved in one process, so load drift hits every variant alike.
"""

from __future__ import annotations

import json
import resource
import statistics
import sys
import time
from contextlib import nullcontext
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from bench._common import interleave, measure, ratio_spread  # noqa: E402
from bench._pairs import NUM_CLASSES, PAIRS, outputs  # noqa: E402


def fast_dtype(device: torch.device):
    """segkit's fast path: what train.amp=auto picks (bf16 where native on a CPU, AMP on a GPU)."""
    from segkit.runtime import amp_dtype

    return amp_dtype("auto", device)


def setup(spec: dict, side: str):
    device = torch.device(spec.get("device") or ("cuda" if torch.cuda.is_available() else "cpu"))
    seg_build, _, ref_build, _ = PAIRS[spec["model"]]
    torch.manual_seed(0)
    model = (seg_build if side == "segkit" else ref_build)().to(device)
    fast = spec["mode"] == "fast"
    dtype = fast_dtype(device) if fast else None
    fmt = torch.channels_last if fast else torch.contiguous_format
    model = model.to(memory_format=fmt)
    b, s = spec["batch"], spec["size"]
    x = torch.randn(b, 3, s, s, device=device).contiguous(memory_format=fmt)
    y = torch.randint(0, NUM_CLASSES, (b, s, s), device=device)
    y[:, : s // 8] = 255  # some ignored pixels, as in real masks
    ctx = (lambda: torch.autocast(device.type, dtype=dtype)) if dtype is not None else nullcontext
    return device, model, x, y, ctx, dtype


def make_step(spec: dict, side: str):
    """(step function, device, autocast dtype) for one side of a pair: a training step or a forward + argmax."""
    device, model, x, y, ctx, dtype = setup(spec, side)
    if spec.get("compile"):
        model = torch.compile(model)  # what train.compile=true does (inductor; C++/OpenMP kernels on a CPU)
    if spec["task"] == "train":
        model.train()
        # the fast rows step as `segkit train` does, fused where torch has the kernels (segkit.training.optim), on both
        # sides; the fp32 rows are each library's default (torch's for-loop SGD). Either way the two sides of a
        # row step alike, so a row's ratio compares the models' code alone
        from segkit.training.optim import fused_supported

        fused = {"fused": True} if spec["mode"] == "fast" and fused_supported(device) else {}
        opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9, weight_decay=1e-4, **fused)
        scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)

        def step():
            with ctx():
                out, aux = outputs(model(x))
                loss = F.cross_entropy(out.float(), y, ignore_index=255)
                if aux is not None:
                    loss = loss + 0.4 * F.cross_entropy(aux.float(), y, ignore_index=255)
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
    else:
        model.eval()

        @torch.no_grad()
        def step():
            with ctx():
                outputs(model(x))[0].argmax(1)

    return step, device, dtype


def describe(result: dict, device: torch.device, dtype) -> dict:
    result["dtype"] = str(dtype).replace("torch.", "") if dtype is not None else "float32"
    result["device"] = device.type
    return result


def run(spec: dict) -> dict:
    """One side alone (``spec["side"]``): its step times and this process's peak memory."""
    torch.set_num_threads(spec.get("threads") or torch.get_num_threads())
    step, device, dtype = make_step(spec, spec["side"])
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    result = measure(step, warmup=spec.get("warmup", 2), repeats=spec.get("repeats", 5), device=device)
    if spec.get("flops"):
        from torch.utils.flop_counter import FlopCounterMode

        with FlopCounterMode(display=False) as counter:
            step()
        result["flops"] = counter.get_total_flops()
    result["peak_mb"] = (
        torch.cuda.max_memory_allocated() / 2**20
        if device.type == "cuda"
        else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    )
    return describe(result, device, dtype)


def run_pair(spec: dict) -> dict:
    """Both sides in both precisions in this process, timed in interleaved rounds (``spec["rounds"]`` of
    ``spec["steps"]`` steps each): {"mode/side": median s, "ratios": {name: spread over rounds}, ...}."""
    torch.set_num_threads(spec.get("threads") or torch.get_num_threads())
    steps, dtypes = {}, {}
    for mode in spec.get("modes", ("fp32", "fast")):
        for side in ("segkit", "reference"):
            steps[f"{mode}/{side}"], device, dtypes[mode] = make_step({**spec, "mode": mode}, side)
    compile_s = None
    if spec.get("compile"):  # segkit's fast path compiled; its first step (tracing + codegen) timed apart
        steps["compiled/segkit"], _, _ = make_step({**spec, "mode": "fast", "compile": True}, "segkit")
        t0 = time.perf_counter()
        steps["compiled/segkit"]()
        compile_s = time.perf_counter() - t0
    for _ in range(spec.get("warmup", 2)):
        for step in steps.values():
            step()
    per_round = interleave(steps, spec.get("rounds", 4), spec.get("steps", 2), device)
    result = {name: statistics.median(times) for name, times in per_round.items()}
    if compile_s is not None:
        result["compile_s"] = compile_s
        result["compiled_ratios"] = {
            "vs_fast": ratio_spread(per_round["fast/segkit"], per_round["compiled/segkit"]),
            "vs_ref_fp32": ratio_spread(per_round["fp32/reference"], per_round["compiled/segkit"]),
        }
    # a speed ratio is the other side's time over segkit's, round by round
    result["ratios"] = {
        mode: ratio_spread(per_round[f"{mode}/reference"], per_round[f"{mode}/segkit"]) for mode in dtypes
    }
    if "fast" in dtypes and "fp32" in dtypes:
        result["ratios"]["fast_vs_ref_fp32"] = ratio_spread(per_round["fp32/reference"], per_round["fast/segkit"])
    result["dtypes"] = {
        mode: str(d).replace("torch.", "") if d is not None else "float32" for mode, d in dtypes.items()
    }
    result["device"] = device.type
    return result


if __name__ == "__main__":
    spec = json.loads(sys.argv[1])
    print(json.dumps(run_pair(spec) if spec.get("side") == "pair" else run(spec)))
