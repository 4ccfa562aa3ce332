"""The CUDA path in one go, for a machine with a GPU (about 8 minutes): `make gpu-check`.

    python bench/gpu_check.py              # on CUDA: writes the "GPU" section of docs/BENCHMARKS.md
    python bench/gpu_check.py --dry-run    # the same code paths on the CPU at toy sizes, in seconds

1. the CUDA tests (tests/training/test_engine_cuda.py, tests/inference/test_predictor.py: AMP bf16 and fp16 with the
   grad scaler, channels-last, cudnn.benchmark, torch.compile, pinned memory, resume);
2. trains the sample config, and a CamVid config at full 480x360 crops, with AMP for a fixed number
   of iterations sized to a few minutes on a current GPU, then evaluates on val and test;
3. times training and inference steps of segkit beside torchvision deeplabv3_resnet50 and smp
   Unet("resnet34") at batch 16 of 512x512, interleaved, fp32 and AMP + channels-last alike.

Without CUDA (and without --dry-run) it stops with a message and writes the section as "not run".
A dry run never rewrites measured numbers: it records only its date in the section.
"""

from __future__ import annotations

import argparse
import datetime
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from bench._common import BENCHMARKS_MD, ROOT, default_camvid, machine, markdown_table, write_section  # noqa: E402
from bench._pairs import measure_pairs, table  # noqa: E402

CUDA_TESTS = ["tests/training/test_engine_cuda.py", "tests/inference/test_predictor.py"]
PAIRS = ["DeepLabV3-R50-OS8", "U-Net-R34"]  # torchvision deeplabv3_resnet50, smp Unet("resnet34")
# (config, overrides on a GPU, overrides in a dry run); the sample set has no test split, so its "test" is val
RUNS = {
    "sample": (
        "configs/sample/deeplabv3plus_r18.yaml",
        ["train.iterations=1000", "train.amp=auto", "data.test_split=val"],
        [
            "data.test_split=val",
            "train.iterations=2",
            "train.batch_size=2",
            "data.crop_size=[64,64]",
            "train.val_interval=2",
        ],
    ),
    "camvid": (
        "configs/camvid/deeplabv3plus_r50_os16.yaml",
        [
            "train.iterations=1500",
            "train.amp=auto",
            "data.crop_size=[360,480]",
            "train.val_interval=1500",
            "train.checkpoint_interval=1500",
            "data.num_workers=8",
            "model.backbone.pretrained=null",
        ],
        [
            "train.iterations=2",
            "train.batch_size=2",
            "data.crop_size=[64,64]",
            "train.val_interval=2",
            "train.checkpoint_interval=2",
            "data.num_workers=0",
            "model.backbone.name=resnet18",
            "model.backbone.pretrained=null",
        ],
    ),
}


def small_camvid(root: Path, into: Path, count: int = 2) -> Path:
    """A CamVid-layout folder linking ``count`` images of each split: the dry run's data set."""
    for split in ("train", "val", "test"):
        for sub in (split, f"{split}annot"):
            (into / sub).mkdir(parents=True, exist_ok=True)
        for image in sorted((root / split).iterdir())[:count]:
            (into / split / image.name).symlink_to(image)
            (into / f"{split}annot" / f"{image.stem}.png").symlink_to(root / f"{split}annot" / f"{image.stem}.png")
    return into


def cuda_tests(dry_run: bool) -> list:
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *CUDA_TESTS]
    if dry_run:  # on the CPU the CUDA tests skip; one CPU test per file keeps it to seconds
        cmd += ["-k", "amp_choice or clear_error"]
    start = time.perf_counter()
    run = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    summary = (run.stdout.strip().splitlines() or ["(no output)"])[-1]
    print(run.stdout[-3000:], flush=True)
    return [
        [
            "CUDA tests",
            " ".join(CUDA_TESTS),
            summary,
            f"{time.perf_counter() - start:.0f} s",
            "passed" if run.returncode == 0 else f"FAILED (exit {run.returncode})",
        ]
    ]


def trainings(dry_run: bool, work: Path, sample_root: Path) -> list:
    from bench.camvid_train import run as train_and_score

    rows = []
    camvid = default_camvid()
    for name, (config, gpu, dry) in RUNS.items():
        if name == "camvid" and not (camvid / "val").is_dir():
            rows.append([f"train {name}", config, f"skipped: CamVid not found at {camvid}", "", ""])
            continue
        data = sample_root if name == "sample" else (small_camvid(camvid, work / "camvid") if dry_run else camvid)
        overrides = dry if dry_run else gpu
        result = train_and_score(config, str(data), overrides, str(work / name))
        val, test = (f"{100 * result['scores'][s]['mIoU']:.1f}" for s in ("val", "test"))
        rows.append(
            [
                f"train {name}",
                f"`{config}` {' '.join(overrides)}",
                f"val {val} / test {test} mIoU",
                f"{result['seconds']:.0f} s",
                result["device"],
            ]
        )
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dry-run", action="store_true", help="the same steps on the CPU at toy sizes")
    parser.add_argument("--out", type=Path, default=BENCHMARKS_MD, help="the markdown file to write the section to")
    args = parser.parse_args(argv)
    today = datetime.date.today().isoformat()
    if not torch.cuda.is_available() and not args.dry_run:
        write_section("gpu", f"## GPU\n\nNot run: no GPU was available (checked {today}).", args.out)
        print("no CUDA device here: nothing measured (python bench/gpu_check.py --dry-run checks the script)")
        return 1
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        from segkit.data.sample import generate

        sample_root = (
            generate(Path(tmp) / "sample", splits={"train": 4, "val": 2}) if args.dry_run else ROOT / "data" / "sample"
        )
        if not args.dry_run and not sample_root.is_dir():
            generate(sample_root)
        steps = cuda_tests(args.dry_run) + trainings(args.dry_run, Path(tmp), sample_root)
    size, batch, rounds = (64, 2, 1) if args.dry_run else (512, 16, 4)  # BatchNorm in training needs 2 images
    speed = {
        task: measure_pairs(task, size, batch, 0 if args.dry_run else 2, rounds, 1 if args.dry_run else 3, models=PAIRS)
        for task in ("train", "infer")
    }
    minutes = (time.perf_counter() - start) / 60
    body = markdown_table(["step", "what", "result", "time", "device"], steps) + "".join(
        f"\n\n{task.capitalize()} steps, batch {batch} of {size}x{size}:\n\n" + table(results, batch)
        for task, results in speed.items()
    )
    print(body + f"\n\n{minutes:.1f} minutes in all")
    if args.dry_run:
        failed = any("FAILED" in row[-1] for row in steps)
        write_section(
            "gpu",
            f"## GPU\n\nNot run: no GPU was available. `python bench/gpu_check.py --dry-run` "
            f"(the same steps on the CPU at toy sizes) {'FAILED' if failed else 'passed'} on {today}; "
            "on a CUDA machine `make gpu-check` measures and fills this section.",
            args.out,
        )
        return 1 if failed else 0
    write_section(
        "gpu", f"## GPU\n\n`make gpu-check` ({minutes:.1f} minutes)  \nMachine: {machine()}\n\n{body}", args.out
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
