#!/usr/bin/env python
"""Inference speed on the CPU, in one run: eager PyTorch vs ONNX Runtime, whole image vs sliding window,
ONNX export time, and tools/infer.py's end-to-end images/s on a folder of CamVid images with --backend eager,
onnxruntime and auto (its first run, which races the backends through the tool's loop, and a second that uses
the cached choice), with each backend's mask agreement with eager.

    python bench/inference.py           # the real measurement
    python bench/inference.py --quick   # small sizes, one repeat: checks the script

The model is DeepLabV3+ on ResNet-18 (output stride 16, 11 classes), randomly initialised: speed does
not depend on the weights. The folder rows use the CamVid checkpoint of ``bench/camvid_train.py`` where
it exists (``make bench-long``), so the mask agreement is that of a trained model. Images are 360 x 480
(CamVid). Every exported result is checked against eager PyTorch before it is timed.
"""

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from bench._common import default_camvid, machine, markdown_table, measure, write_section  # noqa: E402
from segkit.checkpoint import checkpoint_meta, save_checkpoint, training_state  # noqa: E402
from segkit.config import load_config, to_dict  # noqa: E402
from segkit.data.datasets import CAMVID_CLASSES, CAMVID_PALETTE  # noqa: E402
from segkit.exports.model import export_onnx, verify  # noqa: E402
from segkit.inference.modes import infer, windows  # noqa: E402
from segkit.models import build_model  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CAMVID = default_camvid()
TRAINED = ROOT / "work_dirs" / "bench_deeplabv3plus_r18_cpu" / "best.pth"  # bench/camvid_train.py's, if it ran


def camvid_config():
    return load_config(
        None,
        [
            "name=bench_camvid",
            "data.format=camvid",
            f"data.root={CAMVID}",
            "data.num_classes=11",
            "data.ignore_index=11",
            "model.backbone.name=resnet18",
            "model.backbone.output_stride=16",
            "model.decoder.name=deeplabv3plus",
            "train.channels_last=false",
        ],
    )


def tool_rate(folder: Path, checkpoint: Path, out: Path, backend: str) -> float:
    """images/s that tools/infer.py reports for a folder (the graph export of --backend onnxruntime comes
    before its clock starts, as the cached graph makes it on every later run)."""
    run = subprocess.run(
        [
            sys.executable,
            str(ROOT / "tools/infer.py"),
            str(folder),
            "--checkpoint",
            str(checkpoint),
            "--out",
            str(out),
            "--device",
            "cpu",
            "--backend",
            backend,
        ],
        capture_output=True,
        text=True,
    )
    rate = re.search(r"\(([0-9.]+) images/s\)", run.stdout)
    if run.returncode or not rate:
        raise SystemExit(f"tools/infer.py --backend {backend} failed: {run.stderr[-2000:]}")
    return float(rate.group(1))


def mask_agreement(a: Path, b: Path) -> float:
    """Fraction of pixels with the same class in the *_mask.png files of two output folders."""
    from segkit.data import read_mask

    same = total = 0
    for mask in sorted(a.glob("*_mask.png")):
        x, y = read_mask(mask), read_mask(b / mask.name)
        same, total = same + int((x == y).sum()), total + x.size
    return same / max(total, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small images, one repeat: checks the script")
    args = parser.parse_args()
    size, repeats, folder_images = ((180, 240), 1, 3) if args.quick else ((360, 480), 10, 50)
    torch.manual_seed(0)
    cfg = camvid_config()
    model = build_model(cfg).eval()
    x = torch.randn(1, 3, *size)
    rows = []

    def row(what, engine, seconds, base, note=""):
        rows.append([what, engine, f"{1000 * seconds:.1f}", f"{1 / seconds:.2f}", f"{seconds / base:.2f}x", note])

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        eager = measure(lambda: infer(model, x, 11), repeats=repeats)["median"]
        row(f"whole image {size[0]}x{size[1]}", "PyTorch eager", eager, eager)

        import onnxruntime as ort

        t0 = time.perf_counter()
        onnx_path = export_onnx(model, tmp / "model.onnx", example_size=size)
        export_seconds = time.perf_counter() - t0
        difference = verify(onnx_path, model, sizes=(size, (size[0] - 17, size[1] + 9)))
        session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
        feed = {"image": x.numpy()}
        runtime = measure(lambda: session.run(None, feed), repeats=repeats)["median"]
        row(f"whole image {size[0]}x{size[1]}", "ONNX Runtime", runtime, eager, f"max abs logit diff {difference:.1e}")

        crop, stride = (size[0] * 2 // 3, size[1] * 2 // 3), (size[0] // 3, size[1] // 3)
        slide = measure(lambda: infer(model, x, 11, mode="slide", crop=crop, stride=stride), repeats=repeats)["median"]
        crops = len(windows(*size, crop, stride))
        row(
            f"slide {crop[0]}x{crop[1]} stride {stride[0]}x{stride[1]}", "PyTorch eager", slide, eager, f"{crops} crops"
        )

        checkpoint = TRAINED if TRAINED.is_file() and not args.quick else tmp / "model.pth"
        if checkpoint != TRAINED:
            meta = checkpoint_meta(cfg, CAMVID_CLASSES, CAMVID_PALETTE)
            save_checkpoint(checkpoint, training_state(model.state_dict(), to_dict(cfg), meta))
        images = sorted((CAMVID / "val").glob("*.jpg"))[:folder_images]
        folder = tmp / "images"
        folder.mkdir()
        for image in images:
            (folder / image.name).symlink_to(image)
        rates = {}
        if images:  # CamVid is there
            for backend in ("eager", "onnxruntime", "auto", "auto (cached)"):  # auto races only on >= 200 images
                rates[backend] = tool_rate(folder, checkpoint, tmp / backend, backend.split()[0])
            agreement = {b: mask_agreement(tmp / "eager", tmp / b) for b in rates}

    weights = (
        "the CamVid checkpoint `bench/camvid_train.py` trained"
        if checkpoint == TRAINED
        else "untrained weights (train the CamVid checkpoint first for meaningful mask agreement)"
    )
    engines = {
        "eager": "PyTorch eager (checkpoint's eval.amp)",
        "onnxruntime": "ONNX Runtime fp32 (--backend onnxruntime)",
        "auto": "--backend auto, first run on this machine (a folder under the 200 images a loop race needs: "
        "an earlier race's choice, else eager)",
        "auto (cached)": "--backend auto, second run",
    }
    for backend, rate in rates.items():
        engine = engines[backend]
        note = f"{len(images)} CamVid val images, 360x480, {weights}; the tool's own images/s"
        if backend != "eager":
            note += f"; {rate / rates['eager']:.2f}x eager's images/s; masks agree with eager's on {100 * agreement[backend]:.2f}% of pixels"
        row("tools/infer.py on a folder (read, infer, write mask + overlay)", engine, 1 / rate, eager, note)
    header = ["what", "engine", "ms per image", "images/s", "time vs eager whole", "note"]
    body = (
        f"`python bench/inference.py{' --quick' if args.quick else ''}`: DeepLabV3+ R18 OS16, 11 classes, CPU, "
        f"batch 1, median of {repeats}. ONNX export (dynamo exporter) took {export_seconds:.1f} s.\n"
        f"Machine: {machine()}\n\n" + markdown_table(header, rows)
    )
    if args.quick:
        body += "\n\n(quick mode: a check of the script, not a measurement)"
    write_section("inference", "## Inference\n\n" + body)
    print(body)


if __name__ == "__main__":
    main()
