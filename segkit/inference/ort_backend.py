"""Inference in ONNX Runtime for ``Predictor(..., backend="onnxruntime" | "auto")``.

The checkpoint is exported once (``segkit.exports.model.export_onnx``) and the .onnx cached next to it as
``<stem>.<sha256[:12]>.<layout>.onnx``: a retrained checkpoint has another hash, so a stale graph
is never run. Where the checkpoint's folder is not writable the cache goes to
``$XDG_CACHE_HOME/segkit`` (default ``~/.cache/segkit``).

``auto`` times eager PyTorch (the checkpoint's autocast and memory format) against onnxruntime (and
the INT8 graph, where ``bench/int8.py`` accepted it: val mIoU within 0.5 of fp32) on one image of the
model's input size, in interleaved rounds, and keeps the fastest; the choice is
cached beside the .onnx as ``<stem>.<sha>.auto.json`` per machine (CPU name and thread count), so
only the first run on a machine pays for the measurement. On a GPU ``auto`` is eager: this backend
runs onnxruntime's CPU provider only.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Callable, Dict, Optional, Tuple

import numpy as np
import torch

from segkit.errors import optional_import, write_text_atomically

BACKENDS = ("eager", "onnxruntime", "auto")
LAYOUT = "nchw-float32"  # the graph's input: normalised float N x 3 x H x W, batch/height/width dynamic


def file_hash(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()[:12]


def cache_stem(checkpoint: Path) -> Path:
    """``<folder>/<stem>.<hash>``: beside the checkpoint where that folder is writable, else in the user cache."""
    checkpoint = Path(checkpoint)
    name = f"{checkpoint.stem}.{file_hash(checkpoint)}"
    if os.access(checkpoint.parent, os.W_OK):
        return checkpoint.parent / name
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "segkit"
    cache.mkdir(parents=True, exist_ok=True)
    return cache / name


def cached_onnx(checkpoint: Path, model: torch.nn.Module, meta: dict) -> Path:
    """The checkpoint's .onnx, exported now if not cached yet (written to a temporary name, then renamed,
    so a run that stops half-way or a second process never sees a partial file)."""
    from segkit.exports.model import export_onnx

    stem = cache_stem(checkpoint)
    path = stem.with_name(f"{stem.name}.{LAYOUT}.onnx")
    if path.is_file():
        return path
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    # channels-last weights make torch.export guard the batch size; the graph is the same either way
    plain = copy.deepcopy(model).float().to(memory_format=torch.contiguous_format).eval()
    try:
        try:
            export_onnx(plain, partial, meta)
        except ImportError:  # no onnxscript: the older exporter needs nothing more than torch and onnx
            export_onnx(plain, partial, meta, dynamo=False)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return path


class OnnxModel(torch.nn.Module):
    """An onnxruntime session behind the module interface ``segkit.inference.modes.infer`` calls:
    normalised float N x 3 x H x W in, ``{"out": logits}`` out (CPU tensors)."""

    def __init__(self, path: Path, threads: Optional[int] = None):
        super().__init__()
        ort = optional_import("onnxruntime", "onnx", "the onnxruntime backend")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.inter_op_num_threads = 1
        # onnxruntime's pool spins after each run by default, burning the cores that the tool's reading,
        # normalising, argmax and PNG writing (torch, OpenCV, zlib) need next: inside `segkit infer` that made
        # a backend faster per call (0.035 s vs eager's 0.045) the slower one (12.1 vs 20.7 images/s).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.add_session_config_entry("session.inter_op.allow_spinning", "0")
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.path = Path(path)
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.input = self.session.get_inputs()[0].name

    def forward(self, image: torch.Tensor) -> Dict[str, torch.Tensor]:
        x = np.ascontiguousarray(image.detach().float().cpu().numpy())
        return {"out": torch.from_numpy(self.session.run(None, {self.input: x})[0])}


def machine_key() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    except (OSError, StopIteration):
        pass
    return f"{cpu}; {torch.get_num_threads()} threads; torch {torch.__version__}"


# part of the cache key: a record measured another way (an older rule: one warm-up call) is measured again
RACE_RULE = (
    "fastest on one image of this size after 2 warm-up calls, interleaved medians of 3; INT8 only where accepted"
)


def race(candidates: Dict[str, Callable[[], object]], rounds: int = 3) -> Dict[str, float]:
    """Median seconds per call of each candidate after two warm-up calls (eager's first calls at a size build
    oneDNN primitives), timed in turns (order reversed every other round) so a busy machine slows them alike."""
    for fn in candidates.values():
        fn(), fn()
    times: Dict[str, list] = {name: [] for name in candidates}
    names = list(candidates)
    for r in range(rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            t0 = time.perf_counter()
            candidates[name]()
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(ts) for name, ts in times.items()}


def accepted_int8(stem: Path) -> Optional[Path]:
    """The INT8 graph that ``bench/int8.py`` accepted for this checkpoint (val mIoU within 0.5 of fp32),
    recorded in ``<stem>.int8.json``; None where there is none or it was rejected."""
    try:
        record = json.loads(stem.with_name(f"{stem.name}.int8.json").read_text())
    except (OSError, ValueError):
        return None
    graph = Path(record.get("graph") or "")
    return graph if record.get("accepted") is True and graph.is_file() else None


def choose(
    stem: Path, candidates: Dict[str, Callable[[torch.Tensor], object]], size: Tuple[int, int], channels: int = 3
) -> Dict[str, object]:
    """{"backend": the fastest candidate, seconds of each, ...}, measured once per machine (and set of
    candidates) and cached in ``<stem>.auto.json``."""
    record_path = stem.with_name(f"{stem.name}.auto.json")
    key = machine_key()
    try:
        record = json.loads(record_path.read_text())
        if (record.get("machine"), record.get("size"), sorted(record.get("seconds", {})), record.get("rule")) == (
            key,
            list(size),
            sorted(candidates),
            RACE_RULE,
        ):
            return record
    except (OSError, ValueError):
        pass  # not measured yet on this machine, or an unreadable record: measure again
    x = torch.randn(1, channels, *size)
    with torch.no_grad():
        seconds = race({name: (lambda fn=fn: fn(x)) for name, fn in candidates.items()})
    record = {
        "backend": min(seconds, key=seconds.get),
        "seconds": seconds,
        "machine": key,
        "size": list(size),
        "rule": RACE_RULE,
    }
    try:
        write_text_atomically(record_path, json.dumps(record, indent=1))  # another process may read it now
    except OSError:
        pass  # a read-only cache only costs the measurement next time
    return record


PIPELINE_RULE = "fastest per image through segkit infer's read/infer/write loop: 1 warm-up batch, median of 2 batches"


def pipeline_record(stem: Path, candidates) -> Optional[Dict[str, object]]:
    """The backend ``segkit infer --backend auto`` kept on this machine, timed through its own loop; None where
    it was not measured yet here (or with other candidates)."""
    try:
        record = json.loads(stem.with_name(f"{stem.name}.pipeline.json").read_text())
    except (OSError, ValueError):
        return None
    same = (record.get("machine"), sorted(record.get("seconds", {})), record.get("rule"))
    return record if same == (machine_key(), sorted(candidates), PIPELINE_RULE) else None


def save_pipeline_record(stem: Path, seconds: Dict[str, float]) -> Dict[str, object]:
    record = {"backend": min(seconds, key=seconds.get), "seconds": seconds, "machine": machine_key()}
    record["rule"] = PIPELINE_RULE
    try:
        write_text_atomically(stem.with_name(f"{stem.name}.pipeline.json"), json.dumps(record, indent=1))
    except OSError:
        pass  # a read-only cache only costs the measurement next time
    return record
