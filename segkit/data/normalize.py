"""Normalisation on the device, after the uint8 copy; no augmentation library, so inference can import it."""
from __future__ import annotations

from typing import Optional, Sequence

import torch


class Normalizer:
    """uint8 N x 3 x H x W on ``device`` -> normalised float, ``(x/255 - mean) / std``, in
    ``memory_format`` when one is given. Mean and std are copied to the device once, here, not
    per batch (on a GPU each copy would be a blocking host-to-device transfer)."""

    def __init__(self, mean: Sequence[float], std: Sequence[float], device: Optional[torch.device] = None,
                 dtype: Optional[torch.dtype] = None, memory_format: Optional[torch.memory_format] = None):
        self.dtype, self.memory_format = dtype or torch.float32, memory_format
        self.mean = torch.tensor(mean, device=device, dtype=self.dtype).view(1, -1, 1, 1) * 255.0
        self.std = torch.tensor(std, device=device, dtype=self.dtype).view(1, -1, 1, 1) * 255.0

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        out = (images.to(self.dtype) - self.mean) / self.std
        return out if self.memory_format is None else out.contiguous(memory_format=self.memory_format)


def normalize(images: torch.Tensor, mean: Sequence[float], std: Sequence[float],
              dtype: Optional[torch.dtype] = None) -> torch.Tensor:
    """uint8 N x 3 x H x W (on any device) -> normalised float, ``(x/255 - mean) / std``. For a
    stream of batches, make one ``Normalizer`` instead."""
    return Normalizer(mean, std, images.device, dtype)(images)
