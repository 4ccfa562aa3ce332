"""Getting predictions and models out of segkit: ``coco`` and ``labelstudio`` (predicted masks for
annotation tools, sharing ``regions``: polygons and distinct image names) and ``model`` (ONNX /
TorchScript graphs)."""
