"""Convert colour-coded masks to index PNGs: segkit convert-masks IN_DIR --class-colors class_dict.csv --out OUT_DIR

(python tools/convert_masks.py in a checkout.)

Each mask of IN_DIR (RGB, colours = classes; e.g. CamVid's *_L.png) becomes a palette PNG in OUT_DIR with the
same name, whose pixel values are class ids and whose palette is the original colours (so viewers show the
same picture). --class-colors: a name,r,g,b CSV (class_dict.csv) or r,g,b;r,g,b;... in class order;
--ignore-colors become --ignore-index (a CSV row with such a colour is not a class). A colour in neither stops
the conversion naming it, unless --unknown-colors ignore. Training reads colour masks directly with
data.class_colors; this is for tools that want index masks. Exits 1 when a mask could not be converted.
"""

import argparse
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from segkit.data.colors import ColorTable, read_class_csv
from segkit.data.io import MASK_SUFFIXES, DataError, read_color_mask
from segkit.errors import ConfigError
from segkit.visualization.overlays import save_index_png


def colour_list(text: str, option: str) -> list:
    """'r,g,b;r,g,b' -> [[r, g, b], ...]."""
    try:
        return [[int(v) for v in part.split(",")] for part in text.split(";") if part.strip()]
    except ValueError as exc:
        raise ConfigError(f"{option} {text!r}: give colours as r,g,b;r,g,b (e.g. 64,128,64;0,0,0)") from exc


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("in_dir", help="folder of colour masks")
    parser.add_argument("--class-colors", required=True, help="name,r,g,b CSV, or r,g,b;r,g,b;... in class order")
    parser.add_argument("--ignore-colors", default="", help="r,g,b;... that become --ignore-index")
    parser.add_argument("--ignore-index", type=int, default=255)
    parser.add_argument("--unknown-colors", choices=("error", "ignore"), default="error")
    parser.add_argument("--suffix", default="", help="keep only names ending so (e.g. _L), and drop it on output")
    parser.add_argument("--out", required=True, help="folder for the index PNGs")
    args = parser.parse_args(argv)
    in_dir, out = Path(args.in_dir), Path(args.out)
    if not in_dir.is_dir():
        raise ConfigError(f"{in_dir}: not a folder of masks")
    ignore = colour_list(args.ignore_colors, "--ignore-colors")
    spec = args.class_colors
    if Path(spec).suffix.lower() == ".csv" or Path(spec).is_file():
        rows = read_class_csv(Path(spec))
        colours = [list(c) for _, c in rows if list(c) not in ignore]
    else:
        colours = colour_list(spec, "--class-colors")
    data = SimpleNamespace(
        class_colors=colours,
        ignore_colors=ignore,
        root=".",
        num_classes=len(colours),
        ignore_index=args.ignore_index,
        unknown_colors=args.unknown_colors,
    )
    table = ColorTable.from_config(data)
    files = sorted(p for p in in_dir.iterdir() if p.suffix.lower() in MASK_SUFFIXES and p.stem.endswith(args.suffix))
    if not files:
        raise ConfigError(f"{in_dir}: no mask files ({', '.join(MASK_SUFFIXES)}) ending in '{args.suffix}'")
    palette, failed = np.asarray(table.palette, np.uint8), 0
    for path in files:
        try:
            index = table.to_index(read_color_mask(path), path)
        except DataError as exc:
            print(f"skipped: {exc}", file=sys.stderr)
            failed += 1
            continue
        stem = path.stem[: len(path.stem) - len(args.suffix)] if args.suffix else path.stem
        save_index_png(out / f"{stem}.png", index, palette)
    print(
        f"wrote {len(files) - failed} index mask(s) with {len(colours)} classes to {out}"
        + (f"; {failed} skipped (see above)" if failed else "")
    )
    return 1 if failed else 0
