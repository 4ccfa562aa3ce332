"""Inference latency and throughput, segkit beside torchvision / smp, eager and ONNX Runtime, one run.

    python bench/model_inference.py            # the real measurement; writes docs/BENCHMARKS.md
    python bench/model_inference.py --quick    # a smoke run at a tiny size (nothing written)

Latency: batch 1; throughput: batch 4; both at the same size, precision and threads for the two
sides. The ONNX rows run segkit's exported model (tools/export.py) in onnxruntime on the CPU,
against segkit's eager fp32 time in the same run.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import load_average, machine, markdown_table, measure, write_section  # noqa: E402
from bench._pairs import INTERLEAVED, PAIRS, measure_pairs, table  # noqa: E402


def onnx_rows(size: int, batches, repeats: int, models=None) -> list:
    """segkit eager fp32 vs the same weights exported to ONNX and run in onnxruntime."""
    import numpy as np
    import onnxruntime as ort
    import torch

    from segkit.exports.model import export_onnx

    rows = []
    for label in models or PAIRS:
        model = PAIRS[label][0]().eval()
        with tempfile.TemporaryDirectory() as tmp:
            path = export_onnx(model, Path(tmp) / "model.onnx")
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = torch.get_num_threads()
            session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
            name = session.get_inputs()[0].name
            for batch in batches:
                x = torch.randn(batch, 3, size, size)
                with torch.no_grad():
                    eager = measure(lambda: model(x)["out"], warmup=2, repeats=repeats)["median"]
                onnx = measure(lambda: session.run(None, {name: x.numpy()}), warmup=2, repeats=repeats)["median"]
                with torch.no_grad():
                    diff = float(np.abs(session.run(None, {name: x.numpy()})[0] - model(x)["out"].numpy()).max())
                rows.append(
                    [label, batch, f"{batch / eager:.2f}", f"{batch / onnx:.2f}", f"{eager / onnx:.2f}x", f"{diff:.1e}"]
                )
                print(rows[-1], flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per ONNX row")
    parser.add_argument("--rounds", type=int, default=4, help="interleaved rounds per side-by-side table")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.quick:
        print(table(measure_pairs("infer", 64, 1, 1, 2, 1, models=["U-Net-R34"]), 1))
        print(onnx_rows(64, [1], 1, models=["U-Net-R34"]))
        return
    load = load_average()
    latency = measure_pairs("infer", args.size, 1, 2, args.rounds, 2)
    throughput = measure_pairs("infer", args.size, 4, 1, args.rounds, 1)
    onnx = onnx_rows(args.size, [1, 4], args.repeats)
    body = (
        f"Command: `python bench/model_inference.py --size {args.size}`  \nMachine: {machine()}; {load} at the "
        f"start  \nForward pass and argmax at {args.size}x{args.size}, eval mode. "
        + INTERLEAVED.format(steps="2 (batch 1) or 1 (batch 4)", rounds=args.rounds)
        + "\n\n"
        "Latency (batch 1):\n\n"
        + table(latency, 1)
        + "\n\nThroughput (batch 4):\n\n"
        + table(throughput, 4)
        + "\n\nsegkit eager fp32 vs ONNX Runtime (CPUExecutionProvider, fp32), same weights:\n\n"
        + markdown_table(
            ["model", "batch", "eager img/s", "onnxruntime img/s", "onnxruntime / eager", "max |logit diff|"], onnx
        )
    )
    write_section("model_inference", body)
    print(body)


if __name__ == "__main__":
    main()
