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
DRIFT = ": a ratio away from 1.00x is run-to-run drift (see the top of this file)"


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
        _segkit("model.decoder.name=deeplabv3", "model.backbone.name=resnet50", "model.backbone.output_stride=8",
                "model.aux_head=true"),
        "torchvision deeplabv3_resnet50", _torchvision("deeplabv3_resnet50"),
        "same architecture (identical parameters and outputs)" + DRIFT),
    "FCN-R50-OS8": (
        _segkit("model.decoder.name=fcn", "model.backbone.name=resnet50", "model.backbone.output_stride=8",
                "model.aux_head=true"),
        "torchvision fcn_resnet50", _torchvision("fcn_resnet50"),
        "same architecture (identical parameters and outputs)" + DRIFT),
    "U-Net-R34": (
        _segkit("model.decoder.name=unet", "model.backbone.name=resnet34", "model.backbone.output_stride=32"),
        'smp Unet("resnet34")', _smp("Unet", "resnet34"),
        "same layers and parameter count (24.44 M)" + DRIFT),
    "DeepLabV3+-R50-OS16": (
        _segkit("model.decoder.name=deeplabv3plus", "model.backbone.name=resnet50", "model.backbone.output_stride=16",
                "model.decoder.separable=true"),
        'smp DeepLabV3Plus("resnet50")', _smp("DeepLabV3Plus", "resnet50"),
        "separable convs on both, layouts differ: segkit follows the paper and mmseg (BN + ReLU after each depthwise conv, "
         "two separable 3x3 convs after the skip join; 26.70 M parameters, +5% FLOPs), smp has neither (26.68 M): "
         "slower where the extra layers cost, most in fp32 training"),
}


def outputs(result) -> Tuple[object, object]:
    """(main logits, aux logits or None) whatever the model returns: dict (segkit, torchvision) or tensor (smp)."""
    if isinstance(result, dict):
        return result["out"], result.get("aux")
    return result, None


def measure_pairs(task: str, size: int, batch: int, warmup: int, repeats: int, models=None) -> dict:
    """{(model, mode, side): result}, segkit and reference measured back to back for each cell."""
    results = {}
    for label in models or PAIRS:
        for mode in ("fp32", "fast"):
            for side in ("segkit", "reference"):
                spec = {"task": task, "model": label, "side": side, "mode": mode, "size": size, "batch": batch,
                        "warmup": warmup, "repeats": repeats}
                results[(label, mode, side)] = r = run_worker(spec)
                print(f"{task} {label:22s} {mode:4s} {side:9s} {r['median']:.3f} s/step  "
                      f"peak {r['peak_mb']:.0f} MB", flush=True)
    return results


def table(results: dict, batch: int, unit: str = "img/s") -> str:
    rows = []
    for label, (_, ref_label, _, note) in PAIRS.items():
        if (label, "fp32", "segkit") not in results:
            continue
        ref_fp32 = batch / results[(label, "fp32", "reference")]["median"]
        for mode in ("fp32", "fast"):
            seg, ref = results[(label, mode, "segkit")], results[(label, mode, "reference")]
            s, r = batch / seg["median"], batch / ref["median"]
            vs_default = f"{s / ref_fp32:.2f}x" if mode == "fast" else ""
            rows.append([label, ref_label, f"{mode} ({seg['dtype']})", f"{s:.2f}", f"{r:.2f}", f"{s / r:.2f}x",
                         vs_default, f"{seg['peak_mb']:.0f} / {ref['peak_mb']:.0f}", note if mode == "fp32" else ""])
    return markdown_table(["segkit model", "reference", "precision", f"segkit {unit}", f"reference {unit}",
                           "segkit / reference", "segkit fast / reference fp32", "peak MB (segkit / ref)", "notes"],
                          rows)
