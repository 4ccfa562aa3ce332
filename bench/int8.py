"""CPU inference backends of a trained CamVid checkpoint: eager PyTorch, ONNX Runtime fp32 and INT8,
each with its val mIoU beside its speed. INT8 is accepted (for ``--backend auto``) only where its
val mIoU is at most 0.5 below eager fp32's.

    python bench/int8.py [--checkpoint CKPT] [--data CAMVID] [--calibrate 8]   # writes docs/BENCHMARKS.md
    python bench/int8.py --quick     # a 3-step checkpoint, 3 val images: checks the script (nothing written)

CKPT defaults to what ``bench/camvid_train.py`` writes (work_dirs/bench_deeplabv3plus_r18_cpu/best.pth);
``make bench-long`` runs that first. Speed: one 360x480 val image per call, the backends timed in
interleaved rounds; mIoU: the whole val split, evaluated as the checkpoint's config says.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from bench._common import (  # noqa: E402
    ROOT,
    default_camvid,
    interleave,
    load_average,
    machine,
    markdown_table,
    ratio_spread,
    write_section,
)
from segkit.checkpoint import model_from_checkpoint  # noqa: E402
from segkit.data import build_dataset, build_eval_loader, normalize  # noqa: E402
from segkit.evaluation.evaluator import evaluate  # noqa: E402
from segkit.exports.quantize import calibration_images, quantize_onnx  # noqa: E402
from segkit.inference.ort_backend import OnnxModel, cache_stem, cached_onnx  # noqa: E402
from segkit.runtime import autocast, inference_channels_last, inference_dtype  # noqa: E402

AGREEMENT_IMAGES = 20
MAX_DROP = 0.5  # mIoU points INT8 may lose against eager fp32 and still be accepted
DEFAULT_CHECKPOINT = ROOT / "work_dirs" / "bench_deeplabv3plus_r18_cpu" / "best.pth"  # bench/camvid_train.py's


def tiny_checkpoint(data: Path, work: Path) -> Path:
    """--quick: a DeepLabV3+ R18 trained 3 steps on CamVid (the weights barely matter for the script's check)."""
    from segkit.config import load_config
    from segkit.training.engine import train

    cfg = load_config(
        None,
        [
            "data.format=camvid",
            f"data.root={data}",
            "data.num_classes=11",
            "data.ignore_index=11",
            "data.crop_size=[96,128]",
            "model.backbone.name=resnet18",
            "data.num_workers=0",
            "model.decoder.name=deeplabv3plus",
            "train.device=cpu",
            "train.batch_size=2",
            "train.iterations=3",
            "train.val_interval=3",
            "train.checkpoint_interval=3",
        ],
    )
    train(cfg, str(work))
    return work / "last.pth"


def int8_graph(checkpoint: Path, calibrate: int) -> Path:
    """Where the INT8 graph of ``checkpoint`` is cached: beside its fp32 graph, keyed by the calibration size."""
    stem = cache_stem(checkpoint)
    return stem.with_name(f"{stem.name}.int8-c{calibrate}.onnx")


def backends(checkpoint: Path, model, cfg, meta, calibrate: int) -> dict:
    """{name: (module, autocast dtype)}: eager at the checkpoint's precision and in fp32, onnxruntime fp32 and int8."""
    device = torch.device("cpu")
    fp32_graph, int8 = cached_onnx(checkpoint, model, meta), int8_graph(checkpoint, calibrate)
    if not int8.is_file():
        quantize_onnx(fp32_graph, int8, calibration_images(cfg, calibrate))
    found = {
        "eager fp32": (model, None),
        "onnxruntime fp32": (OnnxModel(fp32_graph), None),
        "onnxruntime int8": (OnnxModel(int8), None),
    }
    dtype = inference_dtype(cfg, device)  # what the checkpoint's validation ran
    if dtype is not None or inference_channels_last(cfg):  # segkit's default eager path, as the Predictor runs it
        fast = copy.deepcopy(model).to(memory_format=torch.channels_last) if inference_channels_last(cfg) else model
        layout = " channels-last" if inference_channels_last(cfg) else ""
        found[f"eager {str(dtype or 'fp32').replace('torch.', '')}{layout} (segkit default)"] = (fast, dtype)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT)
    parser.add_argument("--data", type=Path, default=default_camvid())
    parser.add_argument("--calibrate", type=int, default=8, help="training images for INT8 activation ranges")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if not (args.data / "val").is_dir():
        raise SystemExit(f"CamVid not found at {args.data}: pass --data or set SEGKIT_CAMVID")
    if args.quick:
        args.calibrate, args.rounds = 2, 2
    tmp = tempfile.TemporaryDirectory()
    checkpoint = tiny_checkpoint(args.data, Path(tmp.name)) if args.quick else args.checkpoint
    if not checkpoint.is_file():
        raise SystemExit(f"{checkpoint} not found: train it first (python bench/camvid_train.py) or pass --checkpoint")
    load = load_average()
    model, cfg, meta = model_from_checkpoint(checkpoint)
    cfg.data.root = str(args.data)
    model = model.eval()
    found = backends(checkpoint, model, cfg, meta, args.calibrate)
    val = build_dataset(cfg.data, cfg.data.val_split)
    if args.quick:
        val.pairs = val.pairs[:3]
    cpu = torch.device("cpu")
    scores = {
        name: evaluate(m, build_eval_loader(val, 1), cfg, cpu, dtype)["mIoU"] * 100
        for name, (m, dtype) in found.items()
    }
    image = normalize(torch.from_numpy(val.read(0)[0]).permute(2, 0, 1)[None], cfg.data.mean, cfg.data.std)
    agreement = mask_agreement(found, val, cfg, 3 if args.quick else AGREEMENT_IMAGES)

    def call(m, dtype):
        def run():
            with torch.no_grad(), autocast(cpu, dtype):
                m(image)

        return run

    times = interleave({name: call(*pair) for name, pair in found.items()}, args.rounds, 1)
    write_report(args, checkpoint, scores, times, load, len(val), agreement)
    tmp.cleanup()


def mask_agreement(found: dict, val, cfg, images: int) -> dict:
    """{backend: {other backend: share of pixels whose argmax agrees}} over the first ``images`` val images,
    each at its full size (the fp32/bf16 paths are held to 99.5%)."""
    cpu = torch.device("cpu")
    masks = {name: [] for name in found}
    for i in range(min(images, len(val))):
        x = normalize(torch.from_numpy(val.read(i)[0]).permute(2, 0, 1)[None], cfg.data.mean, cfg.data.std)
        for name, (m, dtype) in found.items():
            with torch.no_grad(), autocast(cpu, dtype):
                masks[name].append(m(x)["out"].float().argmax(1))
    flat = {name: torch.cat([t.flatten() for t in ts]) for name, ts in masks.items()}
    return {a: {b: (flat[a] == flat[b]).float().mean().item() for b in flat} for a in flat}


def write_report(args, checkpoint: Path, scores: dict, times: dict, load: str, images: int, agreement: dict) -> None:
    base = "eager fp32"
    default = next((n for n in times if n.endswith("(segkit default)")), base)
    rows = []
    for name, seconds in times.items():
        speed = ratio_spread(times[base], seconds)
        rows.append(
            [
                name,
                f"{scores[name]:.2f}",
                f"{scores[name] - scores[base]:+.2f}",
                f"{1000 * sorted(seconds)[len(seconds) // 2]:.0f}",
                f"{speed['median']:.2f}x ({speed['min']:.2f}-{speed['max']:.2f})",
                f"{100 * agreement[name][base]:.2f}%",
                f"{100 * agreement[name][default]:.2f}%",
            ]
        )
    drop = scores[base] - scores["onnxruntime int8"]
    verdict = (
        f"INT8 {'accepted' if drop <= MAX_DROP else 'rejected'} for `--backend auto`: val mIoU "
        f"{'drop' if drop >= 0 else 'gain'} {abs(drop):.2f} points (limit {MAX_DROP})."
    )
    stem = cache_stem(checkpoint)
    # read by --backend auto (segkit.inference.ort_backend.accepted_int8): INT8 joins its race only where accepted
    stem.with_name(f"{stem.name}.int8.json").write_text(
        json.dumps(
            {
                "val_mIoU": scores,
                "drop": drop,
                "accepted": drop <= MAX_DROP,
                "graph": str(int8_graph(checkpoint, args.calibrate).resolve()),
            },
            indent=1,
        )
    )
    table = markdown_table(
        [
            "backend",
            "val mIoU",
            "vs eager fp32",
            "ms / image (360x480)",
            "speed vs eager fp32",
            "masks = eager fp32's",
            f"masks = {default.replace(' (segkit default)', '')}'s",
        ],
        rows,
    )
    body = (
        f"`python bench/int8.py --checkpoint {checkpoint.name} --calibrate {args.calibrate}`: CamVid val "
        f"({images} images), batch 1 on the CPU; speed = {args.rounds} interleaved rounds on one val image, "
        f"median with min-max over rounds; masks: pixels whose class agrees, over the first "
        f"{AGREEMENT_IMAGES} val images at full size.  \nMachine: {machine()}; {load} at the start\n\n{table}\n\n{verdict}"
    )
    print(body)
    if not args.quick:
        write_section("int8", "## CPU inference backends: eager, ONNX Runtime fp32 and INT8\n\n" + body)


if __name__ == "__main__":
    main()
