"""Training-step speed of segkit's options on this machine: fp32 vs bf16 autocast, channels-last
on or off, and the optimizer's implementation (torch's default for-loop on a CPU, foreach, fused),
for the model of a config (the sample demo config by default).

    python bench/train_step_options.py [CONFIG] [key=value ...] [--steps 6] [--rounds 3] [--quick]

The variants run in interleaved rounds (A B C D, A B C D, ...) and each keeps its median step
time, so a busy machine slows them alike; the table gives steps/s and the ratio to fp32
contiguous. Writes the ``train-step-options-<config stem>`` section of docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from bench._common import machine, markdown_table, sync, write_section  # noqa: E402
from segkit.config import load_config  # noqa: E402
from segkit.models import build_model  # noqa: E402
from segkit.runtime import amp_dtype, autocast  # noqa: E402
from segkit.training.losses import build_loss  # noqa: E402
from segkit.training.optim import build_optimizer, param_groups  # noqa: E402

OPTIMIZERS = {"sgd": torch.optim.SGD, "adamw": torch.optim.AdamW}


def make_step(cfg, dtype, channels_last: bool, device: torch.device, impl: str = "default"):
    """One optimizer step of the engine's kind (forward under autocast, fp32 loss, the config's optimizer with
    its parameter groups); ``impl``: "default" (what build_optimizer builds), "for-loop", "foreach" or "fused"."""
    torch.manual_seed(0)
    model = build_model(cfg).to(device).train()
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt)
    criterion = build_loss(cfg, [1.0] * cfg.data.num_classes)  # any weights: "auto" ones cost the same
    if impl == "default":
        optimizer = build_optimizer(cfg, model)
    else:
        t = cfg.train
        extra = {"momentum": t.momentum} if t.optimizer == "sgd" else {}
        flags = {"foreach": impl == "foreach", "fused": impl == "fused"}  # both False: torch's for-loop
        optimizer = OPTIMIZERS[t.optimizer](
            param_groups(model, t), lr=t.lr, weight_decay=t.weight_decay, **flags, **extra
        )
    h, w = cfg.data.crop_size
    images = torch.randn(cfg.train.batch_size, 3, h, w, device=device).contiguous(memory_format=fmt)
    target = torch.randint(0, cfg.data.num_classes, (cfg.train.batch_size, h, w), device=device)

    def step():
        with autocast(device, dtype):
            loss, _ = criterion(model(images), target)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        sync(device)

    return step


def default_impl(cfg, device: torch.device) -> str:
    """What segkit's build_optimizer picks on ``device``: fused, foreach or for-loop."""
    group = build_optimizer(cfg, torch.nn.Linear(1, 1).to(device)).param_groups[0]
    return "fused" if group.get("fused") else "foreach" if group.get("foreach") else "for-loop"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("config", nargs="?", default="configs/sample/deeplabv3plus_r18.yaml")
    parser.add_argument("overrides", nargs="*")
    parser.add_argument("--steps", type=int, default=6, help="timed steps per variant and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-write", action="store_true", help="print the table only")
    parser.add_argument("--quick", action="store_true", help="batch 2 of 64x64, one step per round: checks the script")
    args = parser.parse_args()
    if args.quick:
        args.overrides += ["train.batch_size=2", "data.crop_size=[64,64]"]
        args.steps, args.rounds, args.no_write = 1, 1, True
    cfg = load_config(args.config, args.overrides)
    load = os.getloadavg()[0]  # a shared machine slows every variant; the ratios hold better than the rates
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    variants = {
        (name, cl, "default"): make_step(cfg, dtype, cl, device)
        for name, dtype in (("fp32", None), ("bf16", torch.bfloat16))
        for cl in (False, True)
    }
    fast = ("bf16", torch.bfloat16) if amp_dtype("auto", device) is not None else ("fp32", None)
    for impl in ("for-loop", "foreach", "fused"):  # the optimizer's implementations on the fast path
        variants[(fast[0], True, impl)] = make_step(cfg, fast[1], True, device, impl)
    times = {key: [] for key in variants}
    for step in variants.values():  # warm-up: allocator, oneDNN primitive caches
        step(), step()
    for _ in range(args.rounds):
        for key, step in variants.items():
            for _ in range(args.steps):
                t0 = time.perf_counter()
                step()
                times[key].append(time.perf_counter() - t0)
    base = statistics.median(times[("fp32", False, "default")])
    default = f"default ({default_impl(cfg, device)})"
    rows = [
        [
            name,
            "on" if cl else "off",
            default if impl == "default" else impl,
            f"{1 / statistics.median(ts):.2f}",
            f"{base / statistics.median(ts):.2f}x",
        ]
        for (name, cl, impl), ts in times.items()
    ]
    h, w = cfg.data.crop_size
    table = markdown_table(
        ["autocast", "channels-last", f"{cfg.train.optimizer} implementation", "steps/s", "vs fp32 contiguous"], rows
    )
    text = (
        f"Training steps of `{args.config}` ({cfg.model.backbone.name} {cfg.model.decoder.name}, batch "
        f"{cfg.train.batch_size} x {h}x{w}, {args.rounds} interleaved rounds of {args.steps} steps, medians; "
        f'optimizer implementation "default" is what segkit\'s build_optimizer makes on this device). '
        f"`python bench/train_step_options.py {args.config}`\n\n{table}\n\n{machine()}; load average "
        f"{load:.1f} at the start"
    )
    print(text)
    if not args.no_write:
        stem = Path(args.config).stem
        write_section(
            f"train-step-options-{stem}",
            f"### Training step of `{stem}`: autocast, memory format, optimizer\n\n" + text,
        )


if __name__ == "__main__":
    main()
