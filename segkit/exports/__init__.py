"""Getting predictions and models out of segkit: ``coco`` (predicted masks for annotation tools) and
``model`` (ONNX / TorchScript graphs)."""
