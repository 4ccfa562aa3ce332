"""Helpers for the model tests (backbone, decoders, weights)."""

import torch
import torch.nn as nn


def randomise_norm_stats(model: nn.Module, affine: bool = False) -> nn.Module:
    """Non-trivial BatchNorm running statistics (and, with ``affine``, weights and biases), seeded,
    so a norm layer loaded into the wrong place shows in the outputs; fresh ones would hide it."""
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                n = m.num_features
                m.running_mean.copy_(torch.randn(n, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
                if affine:
                    m.weight.copy_(torch.rand(n, generator=g) + 0.5)
                    m.bias.copy_(torch.randn(n, generator=g) * 0.1)
    return model
