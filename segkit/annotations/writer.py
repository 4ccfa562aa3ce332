"""What every annotation writer in ``segkit.annotations.WRITERS`` offers, and the options they are built from."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Optional, Sequence

import numpy as np

DEFAULT_IMAGE_ROOT = "/data/local-files/?d="  # Label Studio's local-files storage, as its converters use


@dataclass(frozen=True)
class WriterOptions:
    """What ``segkit infer --export`` and ``segkit studio --export`` know when they make a writer; each
    writer takes the fields it needs."""

    class_names: Sequence[str]
    palette: Sequence[Sequence[int]]  # an RGB triple per class
    skip: Sequence[int] = ()  # class ids written neither as annotations nor as categories
    polygons: bool = False  # polygons (cv2 contours) instead of masks, for polygon-only importers
    image_root: str = DEFAULT_IMAGE_ROOT  # URL prefix of the images, for formats that refer to them by URL


class AnnotationWriter(ABC):
    """Collects class-id masks image by image, then writes one file (or folder) for annotation tools."""

    note = ""  # a line printed after saving, e.g. what some importers cannot read

    @classmethod
    @abstractmethod
    def from_options(cls, options: WriterOptions) -> "AnnotationWriter":
        """The writer for these options."""

    @abstractmethod
    def add(self, file_name: str, mask: np.ndarray, confidence: Optional[np.ndarray] = None) -> None:
        """One image's H x W class-id mask (255: no class), under the name the file goes by in the export;
        ``confidence``: the H x W probability of each pixel's class, where the mask is a prediction."""

    @abstractmethod
    def save(self, path, sources: Optional[Mapping[str, Path]] = None) -> Path:
        """Write to ``path``; returns the file written. ``sources`` maps each added file name to its image,
        for layouts that hold the images too."""
