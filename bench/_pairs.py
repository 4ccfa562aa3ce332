"""The comparisons users would make: each segkit model beside the model they would pick instead.

Every pair is configured alike (21 classes, same output stride, same auxiliary head), so a
difference in speed is a difference in implementation, not in architecture.
"""

from __future__ import annotations

import warnings
from typing import Callable, Dict, Tuple

import torch.nn as nn

from bench._common import markdown_table, run_worker

NUM_CLASSES = 21
DRIFT = ": a ratio whose min-max range includes 1.00x is no difference"


def _segkit(*overrides: str) -> Callable[[], nn.Module]:
    def build() -> nn.Module:
        from segkit.config import load_config
        from segkit.models import build_model

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return build_model(load_config(None, [f"data.num_classes={NUM_CLASSES}", *overrides]))

    return build


def _torchvision(name: str) -> Callable[[], nn.Module]:
    def build() -> nn.Module:
        import torchvision.models.segmentation as tvs

        return getattr(tvs, name)(weights=None, weights_backbone=None, aux_loss=True, num_classes=NUM_CLASSES)

    return build


def _smp(name: str, encoder: str) -> Callable[[], nn.Module]:
    def build() -> nn.Module:
        import segmentation_models_pytorch as smp

        return getattr(smp, name)(encoder, encoder_weights=None, classes=NUM_CLASSES)

    return build


# label -> (segkit builder, reference label, reference builder, note)
PAIRS: Dict[str, Tuple[Callable, str, Callable, str]] = {
    "DeepLabV3-R50-OS8": (
        _segkit(
            "model.decoder.name=deeplabv3",
            "model.backbone.name=resnet50",
            "model.backbone.output_stride=8",
            "model.aux_head=true",
        ),
        "torchvision deeplabv3_resnet50",
        _torchvision("deeplabv3_resnet50"),
        "same architecture (identical parameters and outputs)" + DRIFT,
    ),
    "FCN-R50-OS8": (
        _segkit(
            "model.decoder.name=fcn",
            "model.backbone.name=resnet50",
            "model.backbone.output_stride=8",
            "model.aux_head=true",
        ),
        "torchvision fcn_resnet50",
        _torchvision("fcn_resnet50"),
        "same architecture (identical parameters and outputs)" + DRIFT,
    ),
    "U-Net-R34": (
        _segkit("model.decoder.name=unet", "model.backbone.name=resnet34", "model.backbone.output_stride=32"),
        'smp Unet("resnet34")',
        _smp("Unet", "resnet34"),
        "same layers and parameter count (24.44 M)" + DRIFT,
    ),
    "DeepLabV3+-R50-OS16": (
        _segkit(
            "model.decoder.name=deeplabv3plus",
            "model.backbone.name=resnet50",
            "model.backbone.output_stride=16",
            "model.decoder.separable=true",
        ),
        'smp DeepLabV3Plus("resnet50")',
        _smp("DeepLabV3Plus", "resnet50"),
        "separable convs on both, layouts differ: segkit follows the paper and mmseg (BN + ReLU after each depthwise conv, "
        "two separable 3x3 convs after the skip join; 26.70 M parameters, +5% FLOPs), smp has neither (26.68 M): "
        "slower where the extra layers cost, most in fp32 training",
    ),
}


def outputs(result) -> Tuple[object, object]:
    """(main logits, aux logits or None) whatever the model returns: dict (segkit, torchvision) or tensor (smp)."""
    if isinstance(result, dict):
        return result["out"], result.get("aux")
    return result, None


def measure_pairs(
    task: str, size: int, batch: int, warmup: int, rounds: int, steps: int = 2, models=None, compile: bool = False
) -> dict:
    """{model: result of one interleaved worker}: segkit and reference, fp32 and fast (and segkit's fast path
    under torch.compile with ``compile``), in turns in one process."""
    results = {}
    for label in models or PAIRS:
        spec = {
            "task": task,
            "model": label,
            "side": "pair",
            "size": size,
            "batch": batch,
            "warmup": warmup,
            "rounds": rounds,
            "steps": steps,
            "compile": compile,
        }
        results[label] = r = run_worker(spec)
        print(
            f"{task} {label:22s} "
            + "  ".join(f"{k} {r[k]:.3f} s" for k in r if "/" in k)
            + "  segkit/reference "
            + " ".join(f"{m} {v['median']:.2f}x" for m, v in r["ratios"].items()),
            flush=True,
        )
    return results


def spread(r: dict) -> str:
    return f"{r['median']:.2f}x ({r['min']:.2f}-{r['max']:.2f})"


def table(results: dict, batch: int, unit: str = "img/s") -> str:
    rows = []
    for label, (_, ref_label, _, note) in PAIRS.items():
        if label not in results:
            continue
        r = results[label]
        for mode in ("fp32", "fast"):
            s, ref = batch / r[f"{mode}/segkit"], batch / r[f"{mode}/reference"]
            vs_default = spread(r["ratios"]["fast_vs_ref_fp32"]) if mode == "fast" else ""
            rows.append(
                [
                    label,
                    ref_label,
                    f"{mode} ({r['dtypes'][mode]})",
                    f"{s:.2f}",
                    f"{ref:.2f}",
                    spread(r["ratios"][mode]),
                    vs_default,
                    note if mode == "fp32" else "",
                ]
            )
        if "compiled/segkit" in r:
            c = r["compiled_ratios"]
            rows.append(
                [
                    label,
                    ref_label,
                    f"fast + torch.compile ({r['dtypes']['fast']})",
                    f"{batch / r['compiled/segkit']:.2f}",
                    "",
                    "",
                    spread(c["vs_ref_fp32"]),
                    f"compiled vs segkit fast {spread(c['vs_fast'])}; first step (compile) {r['compile_s']:.0f} s",
                ]
            )
    return markdown_table(
        [
            "segkit model",
            "reference",
            "precision",
            f"segkit {unit}",
            f"reference {unit}",
            "segkit / reference (min-max)",
            "segkit fast / reference fp32 (min-max)",
            "notes",
        ],
        rows,
    )


INTERLEAVED = (
    "Each model's four variants (segkit and reference, fp32 and fast) are built in one process and "
    "timed in turns, {steps} steps each per round, the order reversed every other round; rates are "
    "medians over {rounds} rounds, ratios are the median of the per-round ratios with their min-max "
    "over rounds, so a ratio whose range does not include 1.00x is a real difference. Peak memory: "
    "`bench/limits.py` and `bench/scaling.py` (one model per process)."
)
