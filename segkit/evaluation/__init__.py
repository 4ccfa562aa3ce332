"""The evaluation layer: ``evaluator`` (``evaluate``: the one path training's validation and
``segkit eval`` share), ``metrics`` (confusion matrix, mIoU equal to mmsegmentation's) and ``report``
(the per-image HTML report)."""
