"""INT8 ONNX graphs: onnxruntime static quantization, calibrated on training images.

``quantize_onnx(fp32.onnx, int8.onnx, images)``: weights int8 per output channel, activations uint8
with ranges from the calibration images (MinMax), QDQ format (what onnxruntime's CPU kernels fuse
into int8 convolutions). ``calibration_images(cfg, n)`` takes the first n images of the training
split, normalised as the model saw them. Whether the mIoU holds is measured, not assumed: see
``bench/int8.py``.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Iterator, List

import numpy as np
import torch

from ..data import DataError, build_dataset, normalize
from ..data.normalize import to_unit
from ..errors import ConfigError, optional_import


def calibration_images(cfg, count: int) -> List[np.ndarray]:
    """The first ``count`` training images as normalised float32 1 x C x H x W arrays (the graph's input)."""
    if count < 1:
        raise ConfigError(f"--calibrate {count}: give at least 1 training image for the activation ranges")
    dataset = build_dataset(cfg.data, cfg.data.train_split)
    if len(dataset) == 0:
        raise DataError(
            f"no training images under {cfg.data.root} (data.train_split={cfg.data.train_split}) "
            "to calibrate on; set data.root to the data set the checkpoint was trained on"
        )
    arrays = []
    for index in range(min(count, len(dataset))):
        image = torch.from_numpy(to_unit(dataset.read(index)[0], dataset.value_range)).permute(2, 0, 1)[None]
        arrays.append(normalize(image, cfg.data.mean, cfg.data.std).numpy())
    return arrays


class _Reader:
    """onnxruntime's CalibrationDataReader protocol: one {input name: array} per get_next() call."""

    def __init__(self, name: str, arrays: List[np.ndarray]):
        self.name, self.arrays = name, arrays
        self.iterator: Iterator[np.ndarray] = iter(arrays)

    def get_next(self):
        array = next(self.iterator, None)
        return None if array is None else {self.name: array}

    def rewind(self) -> None:
        self.iterator = iter(self.arrays)


def quantize_onnx(source: Path, target: Path, images: List[np.ndarray]) -> Path:
    """Write the int8 (QDQ) version of the fp32 graph ``source`` to ``target``, calibrated on ``images``."""
    onnx = optional_import("onnx", "onnx", "INT8 quantization")
    optional_import("onnxruntime.quantization", "onnx", "INT8 quantization")
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        # ONNX shape inference + graph folding, as ORT advises; its symbolic pass (for transformers) stops on
        # the dynamic resizes of DeepLabV3+
        quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
        name = onnx.load(str(prepared), load_external_data=False).graph.input[0].name
        quantize_static(
            str(prepared),
            str(target),
            _Reader(name, images),
            quant_format=QuantFormat.QDQ,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            per_channel=True,
            calibrate_method=CalibrationMethod.MinMax,
        )
    source_meta = {p.key: p.value for p in onnx.load(str(source), load_external_data=False).metadata_props}
    if source_meta:  # class names, palette, mean, std travel with the int8 graph too
        proto = onnx.load(str(target))
        present = {p.key for p in proto.metadata_props}
        for key, value in source_meta.items():
            if key not in present:
                proto.metadata_props.add(key=key, value=value)
        onnx.save(proto, str(target))
    return target
