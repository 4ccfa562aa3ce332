"""Python API for using a trained model:

    from segkit.inference.predictor import Predictor
    predictor = Predictor.from_checkpoint("work_dirs/sample_deeplabv3plus_r18/best.pth", device="cpu")
    mask = predictor.predict("street.jpg")            # H x W int64 class ids, the image's size
    probs = predictor.predict_proba("street.jpg")     # C x H x W float32, sums to 1 over C
    print(predictor.class_names[mask[0, 0]])

Normalisation, class names and palette come from the checkpoint; inference runs with the
checkpoint's ``eval`` settings (the ones its validation used: mode, TTA, ``eval.amp``,
``eval.channels_last``) unless ``slide``/``tta`` say otherwise. Imports nothing that trains.
``backend="onnxruntime"`` runs the same weights exported to ONNX in onnxruntime (CPU), ``"auto"``
the faster of that and eager PyTorch on this machine (segkit.inference.ort_backend).
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Iterable, Iterator, List, Optional, Sequence, Union

import numpy as np
import torch
from PIL import Image

from segkit.checkpoint import model_from_checkpoint
from segkit.data import DataError, default_palette, normalize, read_image
from segkit.data.normalize import to_unit
from segkit.errors import ConfigError
from segkit.inference.modes import infer
from segkit.inference.settings import apply_inference_options, infer_settings
from segkit.runtime import autocast, inference_channels_last, inference_dtype, pick_device

ImageLike = Union[str, Path, np.ndarray, Image.Image]


def to_rgb(image: ImageLike) -> np.ndarray:
    """RGB uint8 H x W x 3 from a path, a PIL image or an array (grey, grey x 1, RGB or RGBA; uint8,
    uint16, or float in 0..1): the input of a model trained on 8-bit RGB (no ``data.value_range``)."""
    if isinstance(image, Image.Image):
        return np.asarray(image.convert("RGB"))
    array = read_image(image) if isinstance(image, (str, Path)) else np.asarray(image)
    if array.dtype == np.uint16:
        array = (array >> 8).astype(np.uint8)
    elif array.dtype.kind == "f":
        array = np.clip(np.rint(array * 255 if array.max(initial=0) <= 1.0 else array), 0, 255).astype(np.uint8)
    elif array.dtype != np.uint8:
        raise DataError(f"image array of type {array.dtype}; give uint8 (0..255), uint16 or float (0..1)")
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
    if array.ndim == 2:
        return np.repeat(array[..., None], 3, axis=2)
    if array.ndim != 3 or array.shape[2] not in (3, 4):
        raise DataError(f"image array of shape {array.shape}; expected H x W, H x W x 3 (RGB) or H x W x 4 (RGBA)")
    return np.ascontiguousarray(array[..., :3])


def to_bands(image: ImageLike, channels: int, value_range=None) -> np.ndarray:
    """H x W x ``channels`` for a model trained on ``data.channels``/``data.value_range``: uint8 when 8-bit with no
    range, else float32 in 0..1 units (``value_range`` mapped as in training)."""
    if isinstance(image, (str, Path)):
        array = read_image(image, channels)
    else:
        array = np.asarray(image.convert("RGB") if isinstance(image, Image.Image) and channels == 3 else image)
    if array.ndim == 2:
        array = array[..., None]
    if channels == 3 and array.ndim == 3 and array.shape[2] in (1, 4):
        array = np.repeat(array, 3, axis=2) if array.shape[2] == 1 else array[..., :3]
    if array.ndim != 3 or array.shape[2] != channels:
        raise DataError(f"image array of shape {array.shape}; the model takes H x W x {channels} (data.channels)")
    return to_unit(np.ascontiguousarray(array), value_range)


class Predictor:
    """A model with everything needed to turn images into class-id masks."""

    def __init__(
        self,
        model: torch.nn.Module,
        cfg,
        meta: dict,
        device: Union[str, torch.device] = "auto",
        slide: Optional[bool] = None,
        tta: bool = False,
        crop_batch: Optional[int] = None,
        backend: str = "eager",
        checkpoint: Union[str, Path, None] = None,
    ):
        self.device = pick_device(device) if isinstance(device, str) else device
        self.cfg = cfg
        self.class_names: List[str] = list(
            meta.get("class_names") or cfg.data.class_names or [f"class_{i}" for i in range(cfg.data.num_classes)]
        )
        self.palette = meta.get("palette") or [list(c) for c in cfg.data.palette] or None
        self.mean, self.std = list(meta.get("mean", cfg.data.mean)), list(meta.get("std", cfg.data.std))
        self.num_classes = cfg.data.num_classes
        self.channels, self.value_range = cfg.data.channels, cfg.data.value_range
        self.dtype = inference_dtype(cfg, self.device)  # validation's choice, so outputs match eval
        self.channels_last = inference_channels_last(cfg)
        self.settings = infer_settings(apply_inference_options(cfg, slide, tta))
        if crop_batch:
            self.settings["crop_batch"] = crop_batch
        self.model = model.to(self.device).eval()
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.backend, self.backend_record = "eager", None
        self.candidates: dict = {}  # backend="auto": name -> (model, autocast dtype, channels_last)
        self.auto_stem: Optional[Path] = None
        if backend != "eager":
            self._switch_backend(backend, checkpoint, meta)

    def _switch_backend(self, backend: str, checkpoint, meta: dict) -> None:
        """Run in onnxruntime (``onnxruntime``), or in whichever of it and eager is faster here (``auto``)."""
        from segkit.inference.ort_backend import BACKENDS, OnnxModel, accepted_int8, cache_stem, cached_onnx, choose

        if backend not in BACKENDS:
            raise ConfigError(f"backend '{backend}': choose one of {', '.join(BACKENDS)}")
        if self.device.type != "cpu":
            if backend == "auto":
                return  # onnxruntime runs here on its CPU provider only; on a GPU eager is the fast one
            raise ConfigError(
                f"backend onnxruntime runs on the CPU, not {self.device}; use device cpu, or backend eager"
            )
        if checkpoint is None:
            raise ValueError(
                f"backend {backend} caches the exported graph beside the checkpoint; "
                "build the Predictor with Predictor.from_checkpoint(path, backend=...)"
            )
        graphs = {"onnxruntime": OnnxModel(cached_onnx(Path(checkpoint), self.model, meta))}
        chosen = "onnxruntime"
        if backend == "auto":
            stem = cache_stem(Path(checkpoint))
            int8 = accepted_int8(stem)
            if int8 is not None:
                graphs["onnxruntime-int8"] = OnnxModel(int8)
            size = race_size(self.settings, self.cfg)
            self.backend_record = choose(stem, {"eager": self._eager_forward, **graphs}, tuple(size), self.channels)
            chosen = self.backend_record["backend"]
            self.auto_stem = stem
            self.candidates = {"eager": (self.model, self.dtype, self.channels_last)}
            self.candidates.update({name: (graph, None, False) for name, graph in graphs.items()})
            if chosen == "eager":
                return
        self.model, self.dtype, self.channels_last, self.backend = graphs[chosen], None, False, chosen

    def use_backend(self, name: str) -> None:
        """Switch to one of the candidates ``backend="auto"`` prepared (eager, onnxruntime, ...)."""
        self.model, self.dtype, self.channels_last = self.candidates[name]
        self.backend = name

    def _eager_forward(self, x: torch.Tensor):
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast(self.device, self.dtype):
            return self.model(x.to(self.device))

    @classmethod
    def from_checkpoint(cls, path: Union[str, Path], device: str = "auto", **options) -> "Predictor":
        """``options``: slide (bool), tta (bool), crop_batch (windows per forward pass in slide mode,
        default eval.crop_batch), backend ("eager", "onnxruntime" or "auto"; see segkit.inference.ort_backend)."""
        model, cfg, meta = model_from_checkpoint(path)
        return cls(model, cfg, meta, device, checkpoint=path, **options)

    @torch.no_grad()
    def logits(self, images: Sequence[ImageLike]) -> torch.Tensor:
        """Float logits N x C x H x W for images of one size. In slide mode the image and the logits
        stay on the host and only crops visit the device, so very large images fit."""
        arrays = [self.prepare(im) for im in images]
        if len({a.dtype for a in arrays}) > 1:  # 8-bit beside deeper images: all in 0..1 units
            arrays = [to_unit(a) for a in arrays]
        batch = np.stack(arrays)
        x = torch.from_numpy(batch).permute(0, 3, 1, 2)
        if self.settings["mode"] == "whole":
            x = x.to(self.device)
        x = normalize(x, self.mean, self.std)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast(self.device, self.dtype):
            return infer(self.model, x, self.num_classes, **self.settings)

    def prepare(self, image: ImageLike) -> np.ndarray:
        """The model's input array for one image: RGB uint8 for 8-bit RGB models, else ``to_bands``."""
        if self.channels == 3 and self.value_range is None:
            return to_rgb(image)
        return to_bands(image, self.channels, self.value_range)

    def predict(self, image: ImageLike) -> np.ndarray:
        """H x W int64 class ids at the image's size."""
        return self.logits([image])[0].argmax(0).cpu().numpy()

    def predict_proba(self, image: ImageLike) -> np.ndarray:
        """C x H x W float32 class probabilities (softmax of the averaged logits)."""
        return torch.softmax(self.logits([image])[0], 0).cpu().numpy()

    def predict_many(
        self, images: Iterable[np.ndarray], batch_size: int = 4, with_confidence: bool = False, race: bool = False
    ) -> Iterator:
        """Masks of RGB arrays in order; consecutive images of one size share a forward pass. With
        ``with_confidence``, (mask, H x W float32 softmax probability of the predicted class) pairs.

        ``race`` (with ``backend="auto"``): decide on this very loop. The first batches go through each candidate
        backend in turn (one warm-up batch each, then two timed rounds in alternating order), each timed from
        pulling its first image to the consumer asking for the next batch, so the caller's reading and writing
        count; then the fastest per image is kept, and remembered for this machine (``<stem>.pipeline.json``)."""
        plan: List[str] = []
        if race and self.candidates:
            from segkit.inference.ort_backend import pipeline_record

            record = pipeline_record(self.auto_stem, self.candidates)
            if record is not None:
                self.use_backend(record["backend"])
                self.backend_record = record
            else:
                names = list(self.candidates)
                plan = names + names + names[::-1]
        timed: dict = {name: [] for name in self.candidates}
        pending: List[np.ndarray] = []
        step, start = 0, time.perf_counter()
        for image in images:
            if pending and (len(pending) == batch_size or image.shape[:2] != pending[0].shape[:2]):
                if step < len(plan):
                    self.use_backend(plan[step])
                yield from self._decide(self.logits(pending), with_confidence)
                if step < len(plan):
                    if step >= len(self.candidates):  # past the warm-up batches
                        timed[plan[step]].append((time.perf_counter() - start) / len(pending))
                    step += 1
                    if step == len(plan):
                        self._keep_fastest(timed)
                pending, start = [], time.perf_counter()
            pending.append(self.prepare(image))
        if pending:
            yield from self._decide(self.logits(pending), with_confidence)
        if 0 < step < len(plan):  # fewer images than the race needs: the fastest so far, not remembered
            measured = {name: statistics.median(t) for name, t in timed.items() if t}
            if len(measured) == len(self.candidates):
                self.use_backend(min(measured, key=measured.get))

    def keep_measured_or_eager(self) -> None:
        """``backend="auto"`` with no race in the loop (too few images to pay for one): the backend an earlier
        loop race kept on this machine, else eager. The per-call race of ``from_checkpoint`` does not predict
        the tool's loop (issue #20: onnxruntime won per call and ran at 0.59-0.73x eager in the tool)."""
        from segkit.inference.ort_backend import pipeline_record

        if not self.candidates:
            return
        record = pipeline_record(self.auto_stem, self.candidates)
        self.use_backend(record["backend"] if record else "eager")
        if record is not None:
            self.backend_record = record

    def _keep_fastest(self, timed: dict) -> None:
        from segkit.inference.ort_backend import save_pipeline_record

        seconds = {name: statistics.median(t) for name, t in timed.items()}
        self.backend_record = save_pipeline_record(self.auto_stem, seconds)
        self.use_backend(self.backend_record["backend"])

    @torch.no_grad()
    def crop_logits(self, crops: np.ndarray) -> torch.Tensor:
        """Float logits N x C x h x w (CPU) of RGB uint8 crops N x h x w x 3, as one forward pass (each crop also
        mirrored when the settings flip); what ``segment_scene`` runs on every batch of windows."""
        x = normalize(torch.from_numpy(crops).permute(0, 3, 1, 2).to(self.device), self.mean, self.std)
        passes = (False, True) if self.settings["flip"] else (False,)
        total = None
        for flipped in passes:
            xi = x.flip(-1) if flipped else x
            if self.channels_last:
                xi = xi.contiguous(memory_format=torch.channels_last)
            with autocast(self.device, self.dtype):
                out = self.model(xi)
            out = (out["out"] if isinstance(out, dict) else out).float()
            out = out.flip(-1) if flipped else out
            total = out if total is None else total + out
        return (total / len(passes)).cpu()

    def segment_scene(self, path, out, progress=None, blend: str = "uniform", stats: Optional[dict] = None) -> Path:
        """Slide-window inference over an image too large to hold (segkit.inference.scenes): reads bands of rows,
        blends the windows' logits (``blend``: uniform or hann), writes the class ids into the tiled TIFF ``out``
        as rows finish (with the input's GeoTIFF tags). ``progress(n)``: n more windows done."""
        from segkit.inference.scenes import SceneReader, scene_rows, write_mask_tiff

        s = self.settings
        if list(s["scales"]) != [1.0] or s["resize"]:
            raise ConfigError(
                f"a scene is read in windows at its own scale: eval.scales={list(s['scales'])} and eval.resize "
                f"need the whole image; use eval.scales=[1.0] and no eval.resize (flip is kept, window by window)"
            )
        with SceneReader(path, self.prepare) as reader:  # the model's bands and value range, window by window
            rows = scene_rows(
                self.crop_logits,
                reader,
                self.num_classes,
                s["crop"],
                s["stride"],
                s["crop_batch"],
                blend,
                progress,
                stats,
            )
            palette = self.palette or default_palette(self.num_classes)
            return write_mask_tiff(Path(out), rows, reader.height, reader.width, palette, reader.geo_tags())

    @staticmethod
    def _decide(logits: torch.Tensor, with_confidence: bool) -> Iterator:
        masks = logits.argmax(1)
        if not with_confidence:
            yield from masks.cpu().numpy()
            return
        confidence = torch.softmax(logits, 1).gather(1, masks[:, None])[:, 0]
        yield from zip(masks.cpu().numpy(), confidence.float().cpu().numpy())


def race_size(settings: dict, cfg) -> list:
    """The input size ``backend="auto"`` times the backends at: what the model will be fed (the slide crop, the
    eval.resize size), else the training crop as a stand-in for images of unknown size. Timed at another size,
    eager bf16 lost a race it wins on the real inputs (its first calls at a new size build oneDNN primitives)."""
    if settings["mode"] == "slide":
        return list(settings["crop"])
    return list(settings.get("resize") or cfg.data.crop_size)
