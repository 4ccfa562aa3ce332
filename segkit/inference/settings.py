"""What the inference settings of a config mean: ``cfg.eval`` as ``infer``'s keyword arguments, and what
--slide and --tta change. Shared by the Predictor, evaluation and the tools."""

from __future__ import annotations

from typing import Any, Dict, Optional

TTA_SCALES = (0.75, 1.0, 1.25)  # --tta when the config sets no scales of its own; with flip, six passes


def infer_settings(cfg) -> Dict[str, Any]:
    """The keyword arguments of ``infer`` that ``cfg.eval`` sets (mode, slide window, TTA, resize)."""
    e = cfg.eval
    return {
        "mode": e.mode,
        "crop": list(e.crop_size),
        "stride": list(e.stride),
        "scales": list(e.scales),
        "flip": bool(e.flip),
        "resize": list(e.resize) if e.resize else None,
        "crop_batch": int(e.crop_batch),
    }


def apply_inference_options(cfg, slide: Optional[bool] = None, tta: bool = False):
    """What --slide and --tta mean, for tools/eval.py, tools/infer.py and the Predictor alike:
    slide -> eval.mode=slide (window eval.crop_size, step eval.stride); tta -> horizontal flip plus
    eval.scales, or TTA_SCALES if the config has a single scale. Changes ``cfg.eval`` in place."""
    if slide is not None:
        cfg.eval.mode = "slide" if slide else "whole"
    if tta:
        if len(cfg.eval.scales) < 2:
            cfg.eval.scales = list(TTA_SCALES)
        cfg.eval.flip = True
    return cfg
