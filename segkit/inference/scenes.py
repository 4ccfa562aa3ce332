"""Scenes larger than memory: sliding-window inference that reads, blends and writes one band of rows at a time.

``segment_scene(predictor, "scene.tif", "scene_mask.tif")`` runs the checkpoint's slide windows
(``eval.crop_size`` every ``eval.stride``, the same windows as ``segkit.inference.modes.windows``) over the
scene in batches of ``eval.crop_batch``, blends overlapping logits with a weight window (uniform by default:
the in-memory slide result), and writes the class ids into a tiled TIFF as the rows are finished. What is
held at once:

- the input: one band of ``crop`` rows of the scene (``SceneReader``); a TIFF is read tile by tile (or strip by
  strip) through tifffile, never whole; a PNG/JPEG has no windows to read and is decoded once (3 bytes a pixel);
- the logits: C x crop-height x width float32 (``BandBlender``), the rows some later window still touches;
- the output: one row of output tiles (256 rows of uint8).

So memory is set by the crop, the batch and the scene's width, not its height; ``largest`` on the reader and
the blender records the biggest buffer each allocated (tests check it). A GeoTIFF input's georeferencing tags
(CRS, transform) are copied to the mask, whose pixel grid is the input's.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch

from segkit.errors import ConfigError, DataError, OutputError
from segkit.inference.modes import windows

TIFF_SUFFIXES = (".tif", ".tiff")
OUT_TILE = 256  # the mask's TIFF tiles (a multiple of 16, as TIFF requires)
# GeoTIFF tags, valid verbatim on a mask of the same pixel grid: ModelPixelScale, ModelTiepoint,
# ModelTransformation, GeoKeyDirectory, GeoDoubleParams, GeoAsciiParams, and GDAL's nodata/metadata
GEO_TAGS = (33550, 33922, 34264, 34735, 34736, 34737)


def _tifffile():
    import tifffile  # a dependency; imported on first use, as the CLI starts faster without it

    return tifffile


def scene_size(path: Path) -> Tuple[int, int]:
    """(height, width) of an image file without decoding its pixels."""
    path = Path(path)
    if path.suffix.lower() in TIFF_SUFFIXES:
        with _tifffile().TiffFile(path) as tif:
            page = tif.pages.first
            return int(page.imagelength), int(page.imagewidth)
    from PIL import Image

    try:
        with Image.open(path) as im:
            return im.height, im.width
    except OSError as exc:
        raise DataError(f"cannot read the size of {path} ({exc}): not an image, or a corrupt one") from exc


class SceneReader:
    """Bands of rows of an image, as the model takes them (``to_rgb`` of the native pixels: ``Predictor.prepare``).
    A TIFF is read by decoding only the tiles or strips that meet the band (the decoded row of segments is kept
    while later bands overlap it); other formats are decoded once (``to_rgb(path)``: it must take a path too).
    ``largest``: the most pixels decoded at once."""

    def __init__(self, path, to_rgb: Callable[[Any], np.ndarray]):
        self.path, self.to_rgb, self.largest = Path(path), to_rgb, 0
        self._tif, self._whole = None, None
        self._cache: Dict[int, np.ndarray] = {}
        if self.path.suffix.lower() in TIFF_SUFFIXES:
            self._tif = _tifffile().TiffFile(self.path)
            page = self._tif.pages.first
            if page.imagedepth > 1 or (page.planarconfig == 2 and page.samplesperpixel > 1):
                self.close()
                raise DataError(
                    f"{self.path}: planar-separate or volumetric TIFF; save the scene with interleaved samples "
                    f"(tifffile.imwrite(..., planarconfig='contig'), gdal_translate -co INTERLEAVE=PIXEL)"
                )
            self.page = page
            self.height, self.width = int(page.imagelength), int(page.imagewidth)
            self.seg_h = int(page.tilelength if page.is_tiled else min(page.rowsperstrip, self.height))
            self.seg_w = int(page.tilewidth) if page.is_tiled else self.width
            self.across = -(-self.width // self.seg_w)
        else:  # read and prepared once, as the model takes it (its bands and value range), like a TIFF's bands
            self._whole = self.to_rgb(self.path)
            self.height, self.width = self._whole.shape[:2]
            self.largest = self.height * self.width

    def geo_tags(self) -> List[tuple]:
        """The input's GeoTIFF tags as tifffile ``extratags`` (empty for a plain image)."""
        if self._tif is None:
            return []
        tags = []
        for code in GEO_TAGS:
            tag = self.page.tags.get(code)
            if tag is not None:
                tags.append((code, tag.dtype, tag.count, tag.value, True))
        return tags

    def _segment_row(self, row: int) -> np.ndarray:
        """Rows ``row * seg_h ...`` of the scene, all columns, native dtype, decoded from the file."""
        if row in self._cache:
            return self._cache[row]
        page, fh = self.page, self._tif.filehandle
        first = row * self.across
        indices = list(range(first, first + self.across))
        rows = min(self.seg_h, self.height - row * self.seg_h)
        samples = int(page.samplesperpixel)
        band = np.zeros((rows, self.width, samples), dtype=page.dtype)
        kwargs = {"_fullsize": bool(page.is_tiled)}
        if page.compression in (6, 7, 34892, 33007):  # JPEG-compressed segments need the tables
            kwargs.update(jpegtables=page.jpegtables, jpegheader=page.jpegheader)
        offsets = [page.dataoffsets[i] for i in indices]
        counts = [page.databytecounts[i] for i in indices]
        with fh.lock:
            for data, index in fh.read_segments(offsets, counts, indices=indices, lock=fh.lock, flat=True):
                try:
                    segment, _, _ = page.decode(data, index, **kwargs)
                except (ValueError, RuntimeError, ImportError) as exc:
                    raise DataError(
                        f"{self.path}: cannot decode its {page.compression.name} tiles ({exc}): "
                        f"pip install imagecodecs, or save the scene uncompressed or with deflate"
                    ) from exc
                if segment is None:
                    continue  # an empty tile: zeros
                x0 = (index - first) * self.seg_w
                seg = segment.reshape(segment.shape[-3:])  # (length, width, samples)
                w = min(self.seg_w, self.width - x0)
                band[:, x0 : x0 + w] = seg[:rows, :w]
        self._cache[row] = band
        return band

    def rows(self, y0: int, y1: int) -> np.ndarray:
        """RGB uint8 (y1 - y0) x width x 3: rows y0..y1 of the scene."""
        if self._whole is not None:
            return self._whole[y0:y1]
        first, last = y0 // self.seg_h, (y1 - 1) // self.seg_h
        for stale in [r for r in self._cache if r < first]:  # bands only move down: rows above are done
            del self._cache[stale]
        parts = [self._segment_row(r) for r in range(first, last + 1)]
        native = np.concatenate(parts) if len(parts) > 1 else parts[0]
        start = y0 - first * self.seg_h
        native = native[start : start + (y1 - y0)]
        self.largest = max(self.largest, sum(p.shape[0] for p in self._cache.values()) * self.width)
        return self.to_rgb(native[..., 0] if native.shape[2] == 1 else native)

    def close(self) -> None:
        if self._tif is not None:
            self._tif.close()
            self._tif = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class BandBlender:
    """Weighted sums of overlapping window logits for the rows some window still touches: C x band x width
    float32 plus the weights' sum (``weight`` None: uniform, a count), band = the crop height. ``add`` a window's logits; ``finish(y)`` hands back
    the class ids of every row above ``y`` (no later window reaches them) and slides the band down."""

    def __init__(self, num_classes: int, band: int, width: int, weight: Optional[torch.Tensor] = None):
        self.top, self.band, self.weight = 0, band, weight
        self.sum = torch.zeros((num_classes, band, width), dtype=torch.float32)
        self.norm = torch.zeros((band, width), dtype=torch.float32)
        self.largest = self.sum.numel()

    def add(self, logits: torch.Tensor, y0: int, x0: int) -> None:
        h, w = logits.shape[-2:]
        r = y0 - self.top
        if r < 0 or r + h > self.band:
            raise RuntimeError(f"window at row {y0} outside the band {self.top}..{self.top + self.band}")
        if self.weight is None:  # uniform: a plain sum and a count, no multiply
            self.sum[:, r : r + h, x0 : x0 + w] += logits
            self.norm[r : r + h, x0 : x0 + w] += 1
        else:
            self.sum[:, r : r + h, x0 : x0 + w] += logits * self.weight
            self.norm[r : r + h, x0 : x0 + w] += self.weight

    def finish(self, y: int) -> np.ndarray:
        """Class ids (uint8, or int32 past 256 classes) of rows top..y, then rows y.. move to the top."""
        n = y - self.top
        ids = (self.sum[:, :n] / self.norm[:n]).argmax(0)
        ids = ids.to(torch.uint8 if self.sum.shape[0] <= 256 else torch.int32).numpy()
        keep = self.band - n
        for start in range(0, keep, n):  # n rows at a time: source and target never overlap, no band-sized copy
            end = min(start + n, keep)
            self.sum[:, start:end] = self.sum[:, start + n : end + n]
            self.norm[start:end] = self.norm[start + n : end + n]
        self.sum[:, keep:] = 0
        self.norm[keep:] = 0
        self.top = y
        return ids


def blend_window(crop: Sequence[int], kind: str = "uniform") -> Optional[torch.Tensor]:
    """The weight of each pixel of a window's logits: ``uniform`` (overlaps averaged, as ``slide_logits``) or
    ``hann`` (a raised-cosine taper that fades window edges, where the model saw the least context)."""
    h, w = int(crop[0]), int(crop[1])
    if kind == "uniform":
        return None  # BandBlender's plain average
    if kind == "hann":
        wy = torch.hann_window(h + 2, periodic=False)[1:-1]
        wx = torch.hann_window(w + 2, periodic=False)[1:-1]
        return wy[:, None] * wx[None, :]
    raise ConfigError(f"blend window '{kind}': choose uniform or hann")


def scene_rows(
    forward: Callable[[np.ndarray], torch.Tensor],
    reader: SceneReader,
    num_classes: int,
    crop: Sequence[int],
    stride: Sequence[int],
    batch: int = 4,
    blend: str = "uniform",
    progress=None,
    stats: Optional[dict] = None,
) -> Iterator[Tuple[int, np.ndarray]]:
    """(y0, class ids of rows y0..) of the scene in order, from its slide windows. ``forward`` takes RGB uint8
    crops (N x h x w x 3) and returns float logits N x C x h x w on the CPU. ``progress(n)``: n windows done."""
    boxes = windows(reader.height, reader.width, crop, stride)
    ch, cw = boxes[0][2], boxes[0][3]
    starts = sorted({b[0] for b in boxes})
    blender = BandBlender(num_classes, ch, reader.width, blend_window((ch, cw), blend))
    forward_s = 0.0  # the model's own share of the time: what the whole path is measured against
    for i, y0 in enumerate(starts):
        band = reader.rows(y0, y0 + ch)
        row = [b for b in boxes if b[0] == y0]
        for j in range(0, len(row), batch):
            chunk = row[j : j + batch]
            crops = np.stack([band[:, x0 : x0 + cw] for _, x0, _, _ in chunk])
            t0 = time.perf_counter()
            logits = forward(crops).float().cpu()
            forward_s += time.perf_counter() - t0
            for k, (_, x0, _, _) in enumerate(chunk):
                blender.add(logits[k], y0, x0)
            if progress is not None:
                progress(len(chunk))
        done = starts[i + 1] if i + 1 < len(starts) else reader.height
        if stats is not None:  # before the yield: a consumer may stop once it has every row
            stats.update(logits=blender.largest, band=blender.band, pixels=reader.largest, forward_s=forward_s)
        top = blender.top
        yield top, blender.finish(done)


def mask_tiles(rows: Iterator[Tuple[int, np.ndarray]], height: int, width: int, tile: int = OUT_TILE):
    """The tiles of the mask (tile x tile, row by row, padded at the edges) from bands of finished rows."""
    pending: List[np.ndarray] = []
    held = 0
    for _, ids in rows:
        pending.append(ids)
        held += ids.shape[0]
        while held >= tile:
            strip = np.concatenate(pending)
            yield from _cut(strip[:tile], width, tile)
            pending, held = [strip[tile:]], strip.shape[0] - tile
    if held:
        yield from _cut(np.concatenate(pending), width, tile)


def _cut(strip: np.ndarray, width: int, tile: int) -> Iterator[np.ndarray]:
    padded = np.zeros((tile, -(-width // tile) * tile), dtype=strip.dtype)
    padded[: strip.shape[0], :width] = strip
    for x0 in range(0, width, tile):
        yield padded[:, x0 : x0 + tile]


def write_mask_tiff(
    path: Path, rows: Iterator[Tuple[int, np.ndarray]], height: int, width: int, palette=None, extratags=()
) -> Path:
    """A tiled TIFF of class ids (a palette TIFF when ``palette`` is given and the ids fit in a byte),
    written as ``rows`` come; deflate-compressed (masks are mostly runs of one value)."""
    tifffile = _tifffile()
    first = next(rows, None)
    if first is None:
        raise OutputError(f"{path}: the scene has no pixels")
    dtype = first[1].dtype

    def chained():
        yield first
        yield from rows

    options = {}
    if palette is not None and dtype == np.uint8:
        cmap = np.zeros((3, 256), dtype=np.uint16)
        colours = np.asarray(palette, dtype=np.uint16)[:256]
        cmap[:, : len(colours)] = colours.T * 257
        options.update(photometric="palette", colormap=cmap)
    else:
        options.update(photometric="minisblack")
    tifffile.imwrite(
        path,
        mask_tiles(chained(), height, width),
        shape=(height, width),
        dtype=dtype,
        tile=(OUT_TILE, OUT_TILE),
        compression="zlib",
        compressionargs={"level": 1},  # masks are runs of one value: level 1 is nearly as small, several times faster
        extratags=list(extratags),
        **options,
    )
    return Path(path)
