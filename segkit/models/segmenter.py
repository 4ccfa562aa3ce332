"""Segmenter: backbone -> decoder (-> auxiliary head), logits upsampled to the input size."""

from __future__ import annotations

from typing import Dict, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F


class Segmenter(nn.Module):
    """``forward(x)`` returns ``{"out": logits N x C x H x W}`` at the input's size, whatever it is
    (odd sizes included), plus ``"aux"`` (the auxiliary head's logits) in training mode while
    ``use_aux`` (training sets it off when the aux loss weight is 0)."""

    use_aux = True

    def __init__(
        self,
        backbone: nn.Module,
        decoder: nn.Module,
        aux_head: Optional[nn.Module] = None,
        num_classes: Optional[int] = None,
    ):
        super().__init__()
        self.backbone = backbone
        self.decoder = decoder
        self.aux_head = aux_head
        self.num_classes = num_classes

    def forward(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        size = x.shape[-2:]
        features = self.backbone(x)
        out = {"out": to_size(self.decoder(features), size)}
        if self.aux_head is not None and self.training and self.use_aux:  # the aux head only feeds the loss
            out["aux"] = to_size(self.aux_head(features), size)
        return out


def to_size(logits: torch.Tensor, size) -> torch.Tensor:
    """Bilinear resize of ``logits`` to ``size``; none where they already have it (U-Net at even sizes ends at
    stride 1): an align_corners=False resize to the same size is the identity, but still costs a pass forward
    and back. Traced or exported graphs always resize: the check is a Python ``if`` that a trace would freeze
    at its example size (a U-Net's output is one pixel larger than an odd input)."""
    if not _graph_capture() and tuple(logits.shape[-2:]) == tuple(size):
        return logits
    return F.interpolate(logits, size=size, mode="bilinear", align_corners=False)


def _graph_capture() -> bool:
    """Whether this forward is being traced, scripted or exported (TorchScript, ONNX, torch.export)."""
    return bool(
        torch.jit.is_tracing()
        or torch.jit.is_scripting()
        or getattr(torch.compiler, "is_exporting", lambda: False)()  # torch >= 2.6
        or torch.onnx.is_in_onnx_export()
    )
