"""Export a checkpoint to ONNX or TorchScript (dynamic batch, height and width), then check it.

    python tools/export.py CHECKPOINT --format onnx|torchscript [--out PATH] [--legacy] [--no-verify]

The graph maps a normalised float image N x 3 x H x W ((x / 255 - mean) / std, RGB) to logits
N x C x H x W; class names, palette, mean and std travel in the file's metadata (ONNX
metadata_props ``segkit.*``, TorchScript extra file ``segkit_meta.json``). After export the
file is run at two sizes against PyTorch (onnxruntime for ONNX) and the largest difference printed.
"""
import argparse
import sys
from pathlib import Path


from segkit.checkpoint import CheckpointError, model_from_checkpoint
from segkit.config import ConfigError
from segkit.exports.model import export_onnx, export_torchscript, verify

TOLERANCE = 1e-4  # largest |logit difference| accepted between the exported file and PyTorch


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("checkpoint")
    parser.add_argument("--format", required=True, choices=["onnx", "torchscript"])
    parser.add_argument("--out", help="output file (default: beside the checkpoint, .onnx or .torchscript.pt)")
    parser.add_argument("--size", type=int, nargs=2, default=[256, 256], metavar=("H", "W"),
                        help="example input size for tracing (any size works afterwards)")
    parser.add_argument("--opset", type=int, help="ONNX opset (default: the exporter's)")
    parser.add_argument("--legacy", action="store_true", help="ONNX: the TorchScript-based exporter (no onnxscript)")
    parser.add_argument("--no-verify", action="store_true", help="skip running the exported file against PyTorch")
    args = parser.parse_args(argv)
    try:
        model, _, meta = model_from_checkpoint(args.checkpoint)
    except (CheckpointError, ConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    suffix = ".onnx" if args.format == "onnx" else ".torchscript.pt"
    out = Path(args.out or Path(args.checkpoint).with_suffix(suffix))
    try:
        if args.format == "onnx":
            export_onnx(model, out, meta, tuple(args.size), args.opset, dynamo=not args.legacy)
        else:
            export_torchscript(model, out, meta, tuple(args.size))
    except ImportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB): image N x 3 x H x W -> logits N x "
          f"{len(meta.get('class_names', [])) or '?'} x H x W")
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

