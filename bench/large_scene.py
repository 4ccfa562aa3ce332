#!/usr/bin/env python
"""Scenes larger than memory: peak resident memory and megapixels/s of ``segkit infer SCENE.tif --slide`` on
synthetic 3-band tiled TIFFs of 4k, 8k and 16k pixels a side, against the model's own batched throughput on
the same windows.

    python bench/large_scene.py                       # 4096 8192 16384
    python bench/large_scene.py --sizes 4096 8192     # fewer sizes on a slow machine
    python bench/large_scene.py --quick               # a 1024 scene with small windows: checks the script

The model is FCN on ResNet-18 (output stride 32, 11 classes, random weights: speed and memory do not depend on
them), windows of --crop every --stride pixels (default 512 / 512), --batch windows per forward pass. Each scene
runs in its own ``segkit infer`` process; its peak RSS is the kernel's (``os.wait4`` ru_maxrss), the path's
megapixels/s the tool's own line. "model only" is the scene's pixels over the seconds the same run spent in the
model's forward passes (batches of the scene's own windows): the ceiling of the whole path, measured under the same
load (on a shared machine a separate measurement is not comparable).
"""

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import tifffile  # noqa: E402
import torch  # noqa: E402

from bench._common import machine, markdown_table, write_section  # noqa: E402
from segkit.checkpoint import checkpoint_meta, save_checkpoint, training_state  # noqa: E402
from segkit.config import load_config, to_dict  # noqa: E402
from segkit.data import default_palette  # noqa: E402
from segkit.inference.modes import windows  # noqa: E402
from segkit.models import build_model  # noqa: E402


def write_scene(path: Path, size: int, tile: int = 512) -> None:
    """A size x size RGB tiled TIFF, written tile by tile (never whole in memory): smooth fields plus noise."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:tile, 0:tile]
    base = np.stack([(yy * 255 // tile), (xx * 255 // tile), ((yy + xx) * 127 // tile)], -1).astype(np.uint8)

    def tiles():
        for i in range((size // tile) ** 2):
            yield (base + rng.integers(0, 40, (tile, tile, 3), dtype=np.uint8) + i % 97).astype(np.uint8)

    tifffile.imwrite(path, tiles(), shape=(size, size, 3), dtype=np.uint8, tile=(tile, tile), photometric="rgb")


def run_tool(scene: Path, checkpoint: Path, out: Path, crop: int, stride: int) -> dict:
    """The tool in a child process: its megapixels/s line, peak RSS (MB) and wall seconds."""
    cmd = [sys.executable, "-m", "segkit", "infer", str(scene), "--slide", "--checkpoint", str(checkpoint)]
    cmd += ["--out", str(out), "--device", "cpu", "--crop-size", str(crop), str(crop)]
    cmd += ["--stride", str(stride), str(stride), "--scene-megapixels", "0"]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    log, err = out.with_suffix(".out"), out.with_suffix(".err")
    t0 = time.perf_counter()
    with open(log, "w") as stdout, open(err, "w") as stderr:
        child = subprocess.Popen(cmd, stdout=stdout, stderr=stderr, env=env)
        _, status, usage = os.wait4(child.pid, 0)  # reaped here, with the child's own resource usage
    wall = time.perf_counter() - t0
    rate = re.search(r"([0-9.]+) megapixels/s, the model alone ([0-9.]+)", log.read_text())
    if status or not rate:
        raise SystemExit(f"segkit infer failed on {scene}: {err.read_text()[-2000:]}")
    return {"rate": float(rate.group(1)), "model": float(rate.group(2)), "wall": wall, "usage": usage}


def peak_rss_mb(cmd_result: dict) -> float:
    return cmd_result["usage"].ru_maxrss / 1024


def lscpu_flags() -> str:
    """lscpu's Flags line, as the issue asks benchmarks to record it."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    except OSError:
        return "lscpu: not available"
    line = next((line for line in out.splitlines() if line.startswith("Flags:")), "Flags: unknown")
    return "lscpu " + " ".join(line.split())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[4096, 8192, 16384])
    parser.add_argument("--crop", type=int, default=512)
    parser.add_argument("--stride", type=int, default=512)
    parser.add_argument("--batch", type=int, default=4, help="windows per forward pass (eval.crop_batch)")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.sizes, args.crop, args.stride = [1024], 256, 256
    torch.manual_seed(0)
    cfg = load_config("sample/fcn_r18", ["data.num_classes=11", "model.backbone.output_stride=32"])
    cfg.eval.crop_batch = args.batch
    model = build_model(cfg).eval()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        checkpoint = tmp / "fcn_r18.pth"
        meta = checkpoint_meta(cfg, [f"class_{i}" for i in range(11)], default_palette(11))
        save_checkpoint(checkpoint, training_state(model.state_dict(), to_dict(cfg), meta))
        for size in args.sizes:
            scene = tmp / f"scene_{size}.tif"
            write_scene(scene, size)
            n = len(windows(size, size, (args.crop, args.crop), (args.stride, args.stride)))
            result = run_tool(scene, checkpoint, tmp / "out", args.crop, args.stride)
            with tifffile.TiffFile(tmp / "out" / f"scene_{size}_mask.tif") as tif:
                shape = tif.pages.first.shape
            assert shape == (size, size), f"mask {shape} for a {size} x {size} scene"
            rows.append(
                [
                    f"{size} x {size} ({size * size / 1e6:.0f} MP, {scene.stat().st_size / 2**20:.0f} MiB file)",
                    n,
                    f"{peak_rss_mb(result):.0f}",
                    f"{result['rate']:.3f}",
                    f"{result['model']:.3f}",
                    f"{result['rate'] / result['model']:.0%}",
                ]
            )
            print(rows[-1], flush=True)
            scene.unlink()
    header = ["scene", "windows", "peak RSS (MB)", "tool MP/s", "model only MP/s", "tool / model"]
    body = (
        f"`python bench/large_scene.py{' --quick' if args.quick else ' --sizes ' + ' '.join(map(str, args.sizes))}`: "
        f"`segkit infer SCENE.tif --slide` on synthetic 3-band tiled TIFFs, FCN R18 OS32 (11 classes, random "
        f"weights), windows {args.crop} every {args.stride}, {args.batch} per forward pass, CPU, the checkpoint's autocast (bf16 where the CPU has it natively, as here). Peak RSS: "
        f"the whole `segkit infer` process (Python, torch and the model included).\n"
        f"Machine: {machine()}; mkldnn bf16 supported: {torch.ops.mkldnn._is_mkldnn_bf16_supported()}; "
        f"load average {os.getloadavg()[0]:.1f}\n\n{lscpu_flags()}\n\n" + markdown_table(header, rows)
    )
    if args.quick:
        body += "\n\n(quick mode: a check of the script, not a measurement)"
    else:
        write_section("large_scene", "## Scenes larger than memory\n\n" + body)
    print(body)


if __name__ == "__main__":
    main()
