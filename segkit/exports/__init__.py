"""Model graphs out of segkit, one dict behind ``segkit export --format``: ``FORMATS`` maps a format's
name to the suffix of its file and the function that writes it. ``model`` holds the exporters and
``verify``; ``quantize`` the INT8 version of an ONNX graph (``--int8``).

(Masks for annotation tools are ``segkit.annotations``.)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Tuple

import torch

from .model import export_onnx, export_torchscript


@dataclass(frozen=True)
class GraphOptions:
    size: Tuple[int, int] = (256, 256)  # example input for tracing; any size works afterwards
    opset: Optional[int] = None  # ONNX opset (None: the exporter's)
    legacy: bool = False  # ONNX: the TorchScript-based exporter instead of torch.export's


Exporter = Callable[[torch.nn.Module, Path, Dict[str, Any], GraphOptions], Path]


@dataclass(frozen=True)
class GraphFormat:
    suffix: str  # of the default file, written beside the checkpoint
    export: Exporter  # (model, path, meta, options) -> the file written


def _onnx(model: torch.nn.Module, path: Path, meta: Dict[str, Any], options: GraphOptions) -> Path:
    return export_onnx(model, path, meta, options.size, options.opset, dynamo=not options.legacy)


def _torchscript(model: torch.nn.Module, path: Path, meta: Dict[str, Any], options: GraphOptions) -> Path:
    return export_torchscript(model, path, meta, options.size)


FORMATS: Dict[str, GraphFormat] = {
    "onnx": GraphFormat(".onnx", _onnx),
    "torchscript": GraphFormat(".torchscript.pt", _torchscript),
}

__all__ = ["FORMATS", "GraphFormat", "GraphOptions"]
