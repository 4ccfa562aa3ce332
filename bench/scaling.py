"""How time grows with input size, batch and the number of evaluated images; one PNG plot each.

    python bench/scaling.py            # the real measurement; writes docs/BENCHMARKS.md and docs/img/*.png
    python bench/scaling.py --quick    # a smoke run (nothing written)

Model: segkit DeepLabV3+-R50-OS16 on its fast path (bf16 autocast + channels-last where native).
Evaluation: segkit.evaluation.evaluator.evaluate (data loading, inference, metric) on CamVid test images.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import ROOT, default_camvid, machine, markdown_table, run_worker, write_section  # noqa: E402

MODEL = "DeepLabV3+-R50-OS16"
IMG = ROOT / "docs" / "img"


def sweep(task: str, sizes, batches, warmup: int, repeats: int) -> list:
    rows = []
    for size in sizes:
        for batch in batches:
            r = run_worker(
                {
                    "task": task,
                    "model": MODEL,
                    "side": "segkit",
                    "mode": "fast",
                    "size": size,
                    "batch": batch,
                    "warmup": warmup,
                    "repeats": repeats,
                }
            )
            rows.append({"size": size, "batch": batch, "s": r["median"], "peak_mb": r["peak_mb"]})
            print(f"{task} size {size} batch {batch}: {r['median']:.3f} s, peak {r['peak_mb']:.0f} MB", flush=True)
    return rows


def eval_times(camvid: Path, counts, model_size: str = "resnet18") -> list:
    import copy

    import torch

    from segkit.config import load_config
    from segkit.data import build_dataset, build_eval_loader
    from segkit.evaluation.evaluator import evaluate
    from segkit.models import build_model

    cfg = load_config(
        None,
        [
            "data.format=camvid",
            f"data.root={camvid}",
            "data.num_classes=11",
            "data.ignore_index=11",
            "model.decoder.name=deeplabv3plus",
            f"model.backbone.name={model_size}",
            "model.backbone.output_stride=16",
            "data.num_workers=2",
        ],
    )
    from segkit.runtime import amp_dtype

    cpu = torch.device("cpu")
    dtype = amp_dtype(cfg.train.amp, cpu)  # the default fast path, as training validation runs it
    model = build_model(cfg).to(memory_format=torch.channels_last).eval()
    dataset = build_dataset(cfg.data, "test")

    def first(n: int):
        part = copy.copy(dataset)
        part.pairs = dataset.pairs[:n]
        return part

    evaluate(model, build_eval_loader(first(4), 1, 0), cfg, cpu, dtype)
    rows = []
    for n in counts:
        loader = build_eval_loader(first(n), 1, 2)
        t0 = time.perf_counter()
        evaluate(model, loader, cfg, cpu, dtype)
        rows.append({"images": n, "s": time.perf_counter() - t0})
        print(f"evaluate {n} images: {rows[-1]['s']:.1f} s", flush=True)
    return rows


def plot(path: Path, title: str, xlabel: str, series: dict, ylabel: str = "seconds") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.6), dpi=110)
    for label, (xs, ys) in series.items():
        ax.plot(xs, ys, marker="o", label=label)
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--camvid", default=str(default_camvid()))
    args = parser.parse_args()
    if args.quick:
        sweep("infer", [64, 96], [1], 1, 1)
        sweep("train", [64], [2, 4], 1, 1)
        if Path(args.camvid).is_dir():
            eval_times(Path(args.camvid), [2, 4])
        return
    sizes, batches = [256, 384, 512, 768, 1024], [1, 2, 4, 8]
    train_size = sweep("train", sizes, [2], 1, 3)  # BatchNorm in training needs 2+ images
    infer_size = sweep("infer", sizes, [2], 1, 3)
    train_batch = sweep("train", [256], batches[1:], 1, 3)
    infer_batch = sweep("infer", [256], batches, 1, 3)
    evals = eval_times(Path(args.camvid), [20, 40, 80, 160]) if Path(args.camvid).is_dir() else []

    plot(
        IMG / "scaling_size.png",
        f"{MODEL}, batch 2, vs input size",
        "input size (square, pixels)",
        {
            "train step": ([r["size"] for r in train_size], [r["s"] for r in train_size]),
            "inference": ([r["size"] for r in infer_size], [r["s"] for r in infer_size]),
        },
    )
    plot(
        IMG / "scaling_batch.png",
        f"{MODEL}, 256x256, per-image time vs batch",
        "batch size",
        {
            "train, per image": ([r["batch"] for r in train_batch], [r["s"] / r["batch"] for r in train_batch]),
            "inference, per image": ([r["batch"] for r in infer_batch], [r["s"] / r["batch"] for r in infer_batch]),
        },
    )
    if evals:
        plot(
            IMG / "scaling_eval.png",
            "evaluate() on CamVid test (480x360), DeepLabV3+-R18",
            "images",
            {"evaluation time": ([r["images"] for r in evals], [r["s"] for r in evals])},
        )

    base = train_size[0]["s"]
    size_rows = [
        [
            r["size"],
            f"{r['s']:.3f}",
            f"{r['s'] / base:.1f}x",
            f"{(r['size'] / 256) ** 2:.1f}x",
            f"{i['s']:.3f}",
            f"{r['peak_mb']:.0f}",
        ]
        for r, i in zip(train_size, infer_size)
    ]
    train_by_batch = {r["batch"]: r for r in train_batch}
    batch_rows = [
        [
            i["batch"],
            f"{train_by_batch[i['batch']]['s']:.3f}" if i["batch"] in train_by_batch else "n/a (BatchNorm)",
            f"{i['batch'] / train_by_batch[i['batch']]['s']:.2f}" if i["batch"] in train_by_batch else "",
            f"{i['s']:.3f}",
            f"{i['batch'] / i['s']:.2f}",
        ]
        for i in infer_batch
    ]
    body = [
        f"Command: `python bench/scaling.py`  \nMachine: {machine()}  \n"
        f"Model: segkit {MODEL}, fast path (bf16 autocast + channels-last where native), "
        f"median of 3 after 1 warm-up, fresh process per point.\n",
        "![time vs size](img/scaling_size.png) ![time vs batch](img/scaling_batch.png)"
        + (" ![evaluation time](img/scaling_eval.png)" if evals else "")
        + "\n",
        "By input size (batch 2); pixels grow as the 'pixels' column:\n",
        markdown_table(
            ["size", "train step s", "train vs 256", "pixels vs 256", "inference s", "train peak MB"], size_rows
        ),
        "\nBy batch (256x256):\n",
        markdown_table(["batch", "train step s", "train img/s", "inference s", "inference img/s"], batch_rows),
    ]
    if evals:
        per = [r["s"] / r["images"] for r in evals]
        body += [
            "\nEvaluation (`segkit.evaluation.evaluator.evaluate`, DeepLabV3+-R18-OS16, bf16, 2 loader workers) on the "
            "first N CamVid test images at full 480x360:\n",
            markdown_table(
                ["images", "seconds", "seconds / image"],
                [[r["images"], f"{r['s']:.1f}", f"{p:.3f}"] for r, p in zip(evals, per)],
            ),
        ]
    write_section("scaling", "\n".join(body))
    print("\n".join(body))


if __name__ == "__main__":
    main()
