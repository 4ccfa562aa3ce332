"""Masks out of segkit for annotation tools, one dict: ``segkit infer --export FORMAT PATH`` writes the
predictions, ``segkit studio --export FORMAT PATH`` the corrected labels, both through ``WRITERS``.

Adding a format is one writer (a subclass of ``AnnotationWriter``, in its own module here) and one
entry in ``WRITERS`` (docs/extending.md). ``regions`` holds what the writers share.
"""

from __future__ import annotations

from typing import Dict, Iterable, Type

from ..errors import ConfigError
from .coco import CocoExport, DatumaroExport
from .labelstudio import LabelStudioExport
from .writer import AnnotationWriter, WriterOptions

WRITERS: Dict[str, Type[AnnotationWriter]] = {
    "coco": CocoExport,  # one COCO JSON (RLE masks or polygons); a folder gets datumaro's layout
    "labelstudio": LabelStudioExport,  # Label Studio tasks with pre-annotations, and the labeling config
    "datumaro": DatumaroExport,  # a COCO data set folder with the images, as datumaro and CVAT import it
}


def check_formats(formats: Iterable[str]) -> None:
    """A ConfigError naming the first format that has no writer (before any work is done)."""
    for name in formats:
        if name not in WRITERS:
            raise ConfigError(f"--export {name}: the formats are {', '.join(WRITERS)}")


def make_writer(name: str, options: WriterOptions) -> AnnotationWriter:
    check_formats([name])
    return WRITERS[name].from_options(options)


__all__ = ["WRITERS", "AnnotationWriter", "WriterOptions", "check_formats", "make_writer"]
