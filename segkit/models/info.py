"""What a model costs: parameters, FLOPs at an input size, and the shape of each backbone feature.

FLOPs come from ``torch.utils.flop_counter.FlopCounterMode``, which counts a multiply-add as two
FLOPs and covers convolutions and matrix products (not norms, activations or interpolation).
Papers and mmsegmentation often quote multiply-adds as "FLOPs": half of the number here.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Dict, List, Sequence, Tuple

import torch
import torch.nn as nn
from torch.utils.flop_counter import FlopCounterMode


@dataclass
class FeatureShape:
    name: str
    channels: int  # as feature_info says
    stride: int  # as feature_info says
    shape: Tuple[int, ...]  # as measured: N x C x H x W


def count_parameters(model: nn.Module) -> Dict[str, int]:
    params = list(model.parameters())
    return {"total": sum(p.numel() for p in params), "trainable": sum(p.numel() for p in params if p.requires_grad)}


def _probe(model: nn.Module, size: Sequence[int], in_channels: int) -> torch.Tensor:
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    dtype = param.dtype if param is not None and param.is_floating_point() else torch.float32
    return torch.zeros(1, in_channels, *size, device=device, dtype=dtype)


@contextmanager
def _eval_mode(module: nn.Module):
    was_training = module.training
    module.eval()
    try:
        yield module
    finally:
        module.train(was_training)


@torch.no_grad()
def count_flops(model: nn.Module, size: Sequence[int], in_channels: int = 3) -> int:
    """FLOPs of one forward pass on a 1 x in_channels x H x W input, in eval mode."""
    with _eval_mode(model), FlopCounterMode(display=False) as counter:
        model(_probe(model, size, in_channels))
    return counter.get_total_flops()


@torch.no_grad()
def feature_shapes(backbone: nn.Module, size: Sequence[int]) -> List[FeatureShape]:
    """Each feature's measured shape next to what ``backbone.feature_info`` promises."""
    with _eval_mode(backbone):
        features = backbone(_probe(backbone, size, getattr(backbone, "in_channels", 3)))
    return [
        FeatureShape(spec.name, spec.channels, spec.stride, tuple(features[spec.name].shape))
        for spec in backbone.feature_info
    ]


def model_info(model: nn.Module, size: Sequence[int]) -> Dict[str, object]:
    """Parameters (total, trainable, backbone), GFLOPs and feature shapes of a ``Segmenter``."""
    in_channels = getattr(model.backbone, "in_channels", 3)
    return {
        "input_size": tuple(size),
        "parameters": count_parameters(model),
        "backbone_parameters": count_parameters(model.backbone)["total"],
        "gflops": count_flops(model, size, in_channels) / 1e9,
        "features": feature_shapes(model.backbone, size),
    }


def format_info(info: Dict[str, object]) -> str:
    params = info["parameters"]
    h, w = info["input_size"]
    lines = [
        f"parameters: {params['total'] / 1e6:.2f} M ({params['trainable'] / 1e6:.2f} M trainable, "
        f"backbone {info['backbone_parameters'] / 1e6:.2f} M)",
        f"GFLOPs at {h}x{w}: {info['gflops']:.2f} (a multiply-add counts 2)",
        "features:",
        f"  {'name':<8} {'channels':>8} {'stride':>6}  measured shape",
    ]
    for f in info["features"]:
        lines.append(f"  {f.name:<8} {f.channels:>8} {f.stride:>6}  {'x'.join(map(str, f.shape))}")
    return "\n".join(lines)
