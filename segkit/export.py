"""Getting predictions and models out of segkit.

- ``CocoExport``: predicted masks as a COCO file with RLE masks (pycocotools), which annotation
  tools (CVAT, Label Studio, datumaro, FiftyOne) import for pre-labeling. One annotation per
  (image, class present), covering all that class's pixels; ``category_id = class id + 1``
  (COCO keeps 0 for "no category"), and the ``categories`` list names them. ``score`` is the
  mean softmax confidence of the predicted class over the annotation's pixels.
- ``export_onnx`` / ``export_torchscript``: the model as a graph mapping a normalised float image
  N x 3 x H x W to logits N x C x H x W, with batch, height and width dynamic.
"""
from __future__ import annotations

import json
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from pycocotools import mask as mask_utils


class CocoExport:
    """Collects predicted masks image by image, then writes one COCO JSON."""

    def __init__(self, class_names: Sequence[str]):
        self.class_names = list(class_names)
        self.images: List[Dict[str, Any]] = []
        self.annotations: List[Dict[str, Any]] = []

    def add(self, file_name: str, mask: np.ndarray, confidence: Optional[np.ndarray] = None) -> int:
        """Add one image's H x W class-id mask; returns its image id."""
        image_id = len(self.images) + 1
        h, w = mask.shape
        self.images.append({"id": image_id, "file_name": file_name, "height": int(h), "width": int(w)})
        for cls in np.unique(mask):
            if not 0 <= cls < len(self.class_names):
                continue
            region = mask == cls
            rle = mask_utils.encode(np.asfortranarray(region.astype(np.uint8)))
            rle["counts"] = rle["counts"].decode("ascii")  # bytes are not JSON
            annotation = {"id": len(self.annotations) + 1, "image_id": image_id, "category_id": int(cls) + 1,
                          "segmentation": rle, "area": float(region.sum()),
                          "bbox": [float(v) for v in mask_utils.toBbox(rle)], "iscrowd": 0}
            if confidence is not None:
                annotation["score"] = round(float(confidence[region].mean()), 6)
            self.annotations.append(annotation)
        return image_id

    def to_dict(self) -> Dict[str, Any]:
        categories = [{"id": i + 1, "name": name, "supercategory": "segkit"} for i, name in enumerate(self.class_names)]
        return {"info": {"description": "segkit predictions (category_id = class id + 1)"},
                "images": self.images, "categories": categories, "annotations": self.annotations}

    def save(self, path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict()))
        return path


def decode_coco(path, file_name: str) -> np.ndarray:
    """The class-id mask of ``file_name`` rebuilt from a ``CocoExport`` file (255 where no class)."""
    from pycocotools.coco import COCO

    coco = COCO(str(path))
    image = next(im for im in coco.dataset["images"] if im["file_name"] == file_name)
    mask = np.full((image["height"], image["width"]), 255, np.int64)
    for ann in coco.loadAnns(coco.getAnnIds(imgIds=[image["id"]])):
        mask[coco.annToMask(ann).astype(bool)] = ann["category_id"] - 1
    return mask


# --------------------------------------------------------------------------- model export
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


def export_onnx(model: torch.nn.Module, path, meta: Optional[Dict[str, Any]] = None, example_size=(256, 256),
                opset: Optional[int] = None, dynamo: bool = True) -> Path:
    """ONNX graph ``image`` (N x 3 x H x W normalised float) -> ``logits`` (N x C x H x W), batch, height
    and width dynamic; ``meta`` (class names, palette, mean, std) goes into the model's metadata_props.

    ``dynamo=True`` is torch.export's exporter (PyTorch's default since 2.9; needs onnxscript, in the
    ``onnx`` extra); ``dynamo=False`` the older TorchScript-based one, deprecated but dependency-free."""
    import onnx

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    graph = LogitsOnly(model).eval()
    example = torch.randn(1, 3, *example_size)
    names = {"input_names": ["image"], "output_names": ["logits"]}
    if dynamo:
        try:
            import onnxscript  # noqa: F401
        except ImportError as exc:
            raise ImportError("the dynamo ONNX exporter needs onnxscript: pip install 'segkit[onnx]' "
                              "(or export with the legacy exporter, --legacy)") from exc
        dim = torch.export.Dim
        torch.onnx.export(graph, (example,), str(path), dynamo=True, external_data=False, verbose=False,
                          opset_version=opset, dynamic_shapes={"image": {0: dim("batch"), 2: dim("height"),
                                                                         3: dim("width")}}, **names)
    else:
        axes = {0: "batch", 2: "height", 3: "width"}
        with _upstream_deprecations_quiet():
            torch.onnx.export(graph, (example,), str(path), dynamo=False, opset_version=opset or 17,
                              dynamic_axes={"image": axes, "logits": axes}, **names)
    if meta:
        proto = onnx.load(str(path))
        for key, value in _meta_strings(meta).items():
            proto.metadata_props.add(key=key, value=value)
        onnx.save(proto, str(path))
    return path


def export_torchscript(model: torch.nn.Module, path, meta: Optional[Dict[str, Any]] = None,
                       example_size=(256, 256)) -> Path:
    """A traced TorchScript module, image -> logits; shapes are traced symbolically, so any H and W work
    (checked by ``verify``). ``meta`` is stored as the extra file ``segkit_meta.json``. TorchScript is
    deprecated upstream in favour of torch.export, but C++ (libtorch) deployments still load it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with torch.no_grad(), _upstream_deprecations_quiet():
        traced = torch.jit.trace(LogitsOnly(model).eval(), torch.randn(1, 3, *example_size), check_trace=False)
        torch.jit.save(traced, str(path), _extra_files={"segkit_meta.json": json.dumps(meta or {})})
    return path


def verify(path, model: torch.nn.Module, sizes: Sequence[Tuple[int, int]] = ((256, 256), (199, 311))) -> float:
    """Largest |logit difference| between the exported file and ``model`` over random images of ``sizes``
    (two sizes, so a height or width baked into the graph shows up)."""
    path = Path(path)
    reference = LogitsOnly(model).eval()
    if path.suffix == ".onnx":
        import onnxruntime as ort

        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        run = lambda x: torch.from_numpy(session.run(None, {"image": x.numpy()})[0])  # noqa: E731
    else:
        with _upstream_deprecations_quiet():
            run = torch.jit.load(str(path), map_location="cpu")
    worst = 0.0
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for i, (h, w) in enumerate(sizes):
            x = torch.randn(1 + i % 2, 3, h, w, generator=generator)
            got, want = run(x), reference(x)
            if got.shape != want.shape:
                raise AssertionError(f"{path}: output {tuple(got.shape)} for input {tuple(x.shape)}, "
                                     f"expected {tuple(want.shape)}")
            worst = max(worst, float((got - want).abs().max()))
    return worst
