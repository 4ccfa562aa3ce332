"""segkit: semantic segmentation with dilated ResNet backbones, four decoders, exact metrics."""
__version__ = "0.1.0"
