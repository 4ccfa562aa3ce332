"""One measurement in a fresh process: ``python bench/_worker.py '{"task": "train", ...}'`` prints one JSON line.

A process per measurement keeps allocator state from leaking between models and makes the
peak resident memory (ru_maxrss) that model's own.
"""
from __future__ import annotations

import json
import resource
import sys
from contextlib import nullcontext
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from bench._common import measure  # noqa: E402
from bench._pairs import NUM_CLASSES, PAIRS, outputs  # noqa: E402


def fast_dtype(device: torch.device):
    """segkit's fast path: what train.amp=auto picks (bf16 where native on a CPU, AMP on a GPU)."""
    from segkit.runtime import amp_dtype

    return amp_dtype("auto", device)


def setup(spec: dict):
    device = torch.device(spec.get("device") or ("cuda" if torch.cuda.is_available() else "cpu"))
    seg_build, _, ref_build, _ = PAIRS[spec["model"]]
    torch.manual_seed(0)
    model = (seg_build if spec["side"] == "segkit" else ref_build)().to(device)
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


def run(spec: dict) -> dict:
    torch.set_num_threads(spec.get("threads") or torch.get_num_threads())
    device, model, x, y, ctx, dtype = setup(spec)
    if spec["task"] == "train":
        model.train()
        opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9, weight_decay=1e-4)
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
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    result = measure(step, warmup=spec.get("warmup", 2), repeats=spec.get("repeats", 5), device=device)
    if spec.get("flops"):
        from torch.utils.flop_counter import FlopCounterMode

        with FlopCounterMode(display=False) as counter:
            step()
        result["flops"] = counter.get_total_flops()
    result["peak_mb"] = (torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda"
                         else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    result["dtype"] = str(dtype).replace("torch.", "") if dtype is not None else "float32"
    result["device"] = device.type
    return result


if __name__ == "__main__":
    print(json.dumps(run(json.loads(sys.argv[1]))))
