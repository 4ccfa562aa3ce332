"""Export a checkpoint to ONNX or TorchScript (dynamic batch, height and width), then check it.

    segkit export CHECKPOINT --format onnx|torchscript [--out PATH] [--legacy] [--no-verify]
    segkit export CHECKPOINT --format onnx --int8 [--calibrate N] [--data-root DIR]
    python tools/export.py CHECKPOINT ...   (the same, from a checkout)

The graph maps a normalised float image N x 3 x H x W ((x / 255 - mean) / std, RGB) to logits
N x C x H x W; class names, palette, mean and std travel in the file's metadata (ONNX
metadata_props ``segkit.*``, TorchScript extra file ``segkit_meta.json``). After export the
file is run at two sizes against PyTorch (onnxruntime for ONNX) and the largest difference printed.
``--int8``: onnxruntime static quantization (int8 weights, uint8 activations) calibrated on the first
N training images of the checkpoint's data set; verified by argmax agreement with PyTorch on them.
"""

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from segkit.checkpoint import model_from_checkpoint
from segkit.data import DataError
from segkit.errors import ConfigError
from segkit.exports import FORMATS, GraphOptions
from segkit.exports.model import export_onnx, verify

TOLERANCE = 1e-4  # largest |logit difference| accepted between the exported file and PyTorch


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("checkpoint")
    parser.add_argument("--format", required=True, choices=list(FORMATS))
    parser.add_argument("--out", help="output file (default: beside the checkpoint, .onnx or .torchscript.pt)")
    parser.add_argument(
        "--size",
        type=int,
        nargs=2,
        default=[256, 256],
        metavar=("H", "W"),
        help="example input size for tracing (any size works afterwards)",
    )
    parser.add_argument("--opset", type=int, help="ONNX opset (default: the exporter's)")
    parser.add_argument("--legacy", action="store_true", help="ONNX: the TorchScript-based exporter (no onnxscript)")
    parser.add_argument("--no-verify", action="store_true", help="skip running the exported file against PyTorch")
    parser.add_argument("--int8", action="store_true", help="ONNX: static INT8 quantization (onnxruntime)")
    parser.add_argument(
        "--calibrate",
        type=int,
        default=8,
        metavar="N",
        help="--int8: training images for the activation ranges (default 8)",
    )
    parser.add_argument("--data-root", help="--int8: the data set's root, if not the checkpoint's data.root")
    args = parser.parse_args(argv)
    if args.int8 and args.format != "onnx":
        raise ConfigError("--int8 quantizes ONNX graphs; use --format onnx")
    model, cfg, meta = model_from_checkpoint(args.checkpoint)
    options = GraphOptions(tuple(args.size), args.opset, args.legacy)
    if args.int8:
        return export_int8(args, model, cfg, meta, options)
    graph = FORMATS[args.format]
    out = graph.export(model, Path(args.out or Path(args.checkpoint).with_suffix(graph.suffix)), meta, options)
    print(
        f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB): image N x 3 x H x W -> logits N x "
        f"{len(meta.get('class_names', [])) or '?'} x H x W"
    )
    if args.no_verify:
        return 0
    try:
        difference = verify(out, model)
    except ImportError:
        print("not verified: onnxruntime is not installed (pip install 'segkit[onnx]')")
        return 0
    print(f"max |logit difference| vs PyTorch at two sizes: {difference:.2e}")
    if difference > TOLERANCE:
        print(f"error: the exported model differs from PyTorch by more than {TOLERANCE}", file=sys.stderr)
        return 1
    return 0


def export_int8(args, model, cfg, meta, options: GraphOptions) -> int:
    """fp32 graph to a temporary file, quantized into --out (default CHECKPOINT.int8.onnx), then checked."""
    from segkit.exports.quantize import calibration_images, quantize_onnx
    from segkit.inference.ort_backend import OnnxModel

    if args.data_root:
        cfg.data.root = args.data_root
    try:
        images = calibration_images(cfg, args.calibrate)
    except DataError as exc:
        raise DataError(f"{exc} (--data-root DIR points at the data set)") from exc
    out = Path(args.out or Path(args.checkpoint).with_suffix(".int8.onnx"))
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = export_onnx(model, Path(tmp) / "fp32.onnx", meta, options.size, options.opset, dynamo=not options.legacy)
        quantize_onnx(fp32, out, images)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB): int8, calibrated on {len(images)} training image(s)")
    if args.no_verify:
        return 0
    session, agree = OnnxModel(out), []
    with torch.no_grad():
        for x in images:
            x = torch.from_numpy(x)
            agree.append(float((session(x)["out"].argmax(1) == model.eval()(x)["out"].argmax(1)).float().mean()))
    print(f"argmax agreement with PyTorch fp32 on the calibration images: {100 * np.mean(agree):.2f}%")
    return 0
