"""segkit: semantic segmentation with dilated ResNet backbones, four decoders, exact metrics.

The public API is importable from here and loads on first use (PEP 562), so ``import segkit``
stays light: torch, matplotlib and albumentations load only with the name that needs them.

    import segkit
    cfg = segkit.load_config("sample/deeplabv3plus_r18", ["train.iterations=100"])
    segkit.train(cfg)
"""

import importlib

__version__ = "0.1.0"

_API = {
    "load_config": "segkit.config",
    "SegkitError": "segkit.errors",
    "ConfigError": "segkit.errors",
    "DataError": "segkit.errors",
    "CheckpointError": "segkit.errors",
    "build_model": "segkit.models",
    "ResNetBackbone": "segkit.models.backbone",
    "Predictor": "segkit.inference.predictor",
    "train": "segkit.training.engine",
    "evaluate": "segkit.evaluation.evaluator",
}
__all__ = ["__version__", *_API]


def __getattr__(name: str):
    if name in _API:
        value = getattr(importlib.import_module(_API[name]), name)
        globals()[name] = value  # later look-ups skip this function
        return value
    raise AttributeError(f"module 'segkit' has no attribute '{name}'")


def __dir__():
    return sorted(set(globals()) | set(_API))
