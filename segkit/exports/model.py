"""Models out of segkit: ``export_onnx`` / ``export_torchscript`` write the model as a graph mapping a
normalised float image N x 3 x H x W to logits N x C x H x W, with batch, height and width dynamic;
``verify`` compares an exported file with the model.
"""

from __future__ import annotations

import json
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Tuple

import torch

from segkit.errors import optional_import


class LogitsOnly(torch.nn.Module):
    """The segmenter as a graph wants it: one tensor in, one tensor out (logits, eval mode)."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        out = self.model(image)
        return out["out"] if isinstance(out, dict) else out


@contextmanager
def _upstream_deprecations_quiet():
    """TorchScript and the legacy ONNX exporter warn that they are deprecated on every call; the
    docstrings here say so once, and the CLI output stays readable."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning, message=r".*torch\.jit")
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\.onnx")
        warnings.filterwarnings("ignore", category=DeprecationWarning, message=r".*legacy TorchScript-based ONNX")
        yield


def _meta_strings(meta: Dict[str, Any]) -> Dict[str, str]:
    keys = ("class_names", "palette", "mean", "std", "ignore_index", "segkit_version")
    return {f"segkit.{k}": json.dumps(meta[k]) for k in keys if k in meta}


def export_onnx(
    model: torch.nn.Module,
    path,
    meta: Optional[Dict[str, Any]] = None,
    example_size=(256, 256),
    opset: Optional[int] = None,
    dynamo: bool = True,
) -> Path:
    """ONNX graph ``image`` (N x C x H x W normalised float, C = the backbone's in_channels) -> ``logits`` (N x C x H x W), batch, height
    and width dynamic; ``meta`` (class names, palette, mean, std) goes into the model's metadata_props.

    ``dynamo=True`` is torch.export's exporter (PyTorch's default since 2.9; needs onnxscript, in the
    ``onnx`` extra); ``dynamo=False`` the older TorchScript-based one, deprecated but dependency-free."""
    onnx = optional_import("onnx", "onnx", "ONNX export")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    graph = LogitsOnly(model).eval()
    example = torch.randn(1, input_channels(model), *example_size)
    names = {"input_names": ["image"], "output_names": ["logits"]}
    if dynamo:
        optional_import("onnxscript", "onnx", "the dynamo ONNX exporter (or export with --legacy)")
        dim = torch.export.Dim
        torch.onnx.export(
            graph,
            (example,),
            str(path),
            dynamo=True,
            external_data=False,
            verbose=False,
            opset_version=opset,
            dynamic_shapes={"image": {0: dim("batch"), 2: dim("height"), 3: dim("width")}},
            **names,
        )
    else:
        axes = {0: "batch", 2: "height", 3: "width"}
        with _upstream_deprecations_quiet():
            torch.onnx.export(
                graph,
                (example,),
                str(path),
                dynamo=False,
                opset_version=opset or 17,
                dynamic_axes={"image": axes, "logits": axes},
                **names,
            )
    if meta:
        proto = onnx.load(str(path))
        for key, value in _meta_strings(meta).items():
            proto.metadata_props.add(key=key, value=value)
        onnx.save(proto, str(path))
    return path


def export_torchscript(
    model: torch.nn.Module, path, meta: Optional[Dict[str, Any]] = None, example_size=(256, 256)
) -> Path:
    """A traced TorchScript module, image -> logits; shapes are traced symbolically, so any H and W work
    (checked by ``verify``). ``meta`` is stored as the extra file ``segkit_meta.json``. TorchScript is
    deprecated upstream in favour of torch.export, but C++ (libtorch) deployments still load it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with torch.no_grad(), _upstream_deprecations_quiet():
        traced = torch.jit.trace(
            LogitsOnly(model).eval(), torch.randn(1, input_channels(model), *example_size), check_trace=False
        )
        torch.jit.save(traced, str(path), _extra_files={"segkit_meta.json": json.dumps(meta or {})})
    return path


def input_channels(model: torch.nn.Module) -> int:
    """The bands the model reads: its backbone's ``in_channels`` (3 for RGB)."""
    return int(getattr(getattr(model, "backbone", None), "in_channels", 3))


def verify(path, model: torch.nn.Module, sizes: Sequence[Tuple[int, int]] = ((256, 256), (199, 311))) -> float:
    """Largest |logit difference| between the exported file and ``model`` over random images of ``sizes``
    (two sizes, so a height or width baked into the graph shows up)."""
    path = Path(path)
    reference = LogitsOnly(model).eval()
    if path.suffix == ".onnx":
        ort = optional_import("onnxruntime", "onnx", "checking an ONNX export")
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        run = lambda x: torch.from_numpy(session.run(None, {"image": x.numpy()})[0])  # noqa: E731
    else:
        with _upstream_deprecations_quiet():
            run = torch.jit.load(str(path), map_location="cpu")
    worst = 0.0
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for i, (h, w) in enumerate(sizes):
            x = torch.randn(1 + i % 2, input_channels(model), h, w, generator=generator)
            got, want = run(x), reference(x)
            if got.shape != want.shape:
                raise AssertionError(
                    f"{path}: output {tuple(got.shape)} for input {tuple(x.shape)}, expected {tuple(want.shape)}"
                )
            worst = max(worst, float((got - want).abs().max()))
    return worst
