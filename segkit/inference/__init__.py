"""The inference layer: ``predictor`` (``Predictor``: a checkpoint to masks), ``modes`` (whole image,
slide windows, test-time augmentation), ``settings`` (what ``cfg.eval``, --slide and --tta mean) and
``ort_backend`` (ONNX Runtime behind the same calls). Loads no training code."""
