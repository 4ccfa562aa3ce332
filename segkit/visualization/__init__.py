"""The visualization layer: ``overlays`` (masks over images, legends, palettes), ``comparisons``
(image | truth | prediction | errors pictures during evaluation) and ``browse`` (a data set's overlays)."""
