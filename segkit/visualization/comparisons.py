"""Evaluation pictures: an ``evaluate`` hook drawing image | ground truth | prediction | error map."""

from __future__ import annotations

from pathlib import Path
from typing import Dict

import torch

from segkit.data.normalize import to_display
from segkit.visualization.overlays import comparison, save_rgb


class SaveComparisons:
    """An ``on_batch`` hook: writes ``<out_dir>/<image stem>.png`` = image | ground truth | prediction |
    error map, for every image of the data set (cut back to its own size when the batch was padded)."""

    def __init__(self, dataset, out_dir, class_names, palette, ignore_index: int):
        self.dataset, self.out_dir = dataset, Path(out_dir)
        self.class_names, self.palette, self.ignore_index = list(class_names), palette, ignore_index
        self.written = 0

    def __call__(self, batch: Dict[str, torch.Tensor], pred: torch.Tensor) -> None:
        for image, mask, p, index, (h, w) in zip(
            batch["image"], batch["mask"], pred.cpu(), batch["index"].tolist(), batch["size"].tolist()
        ):
            path = Path(self.dataset.pairs[index][0])
            # the size pad_collate saw, not the file's: its header gives W x H before EXIF orientation
            picture = comparison(
                to_display(image[:, :h, :w].permute(1, 2, 0).numpy()),  # deep/multi-band: stretched for display
                mask[:h, :w].numpy(),
                p[:h, :w].numpy(),
                self.class_names,
                self.palette,
                self.ignore_index,
            )
            save_rgb(self.out_dir / f"{path.stem}.png", picture)
            self.written += 1
