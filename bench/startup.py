#!/usr/bin/env python
"""Start-up cost against data set size: listing N image/mask pairs with the folder reader.

Writes N fake pairs (empty files: listing must not open them) per size, then, in a fresh process
per size, times a bare ``os.scandir`` of both folders and ``build_dataset(cfg.data, "train")``,
the call every start, resume and evaluation makes, and records the memory listing took (peak
resident size over the process's size before listing). Targets (issue 12): 100k pairs in under
5 s, 1M pairs in under ~200 MB.

    python bench/startup.py                      # 10k, 100k, 1M pairs; writes its section of docs/BENCHMARKS.md
    python bench/startup.py --sizes 10000 --no-write
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import ROOT, machine, markdown_table, write_section  # noqa: E402


def make_pairs(root: Path, n: int) -> None:
    """root/images/train/NNNNNNN.jpg and root/masks/train/NNNNNNN.png, empty, unless already there."""
    marker = root / f".made_{n}"
    if marker.exists():
        return
    for sub, ext in (("images", "jpg"), ("masks", "png")):
        folder = root / sub / "train"
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(n):
            os.close(os.open(folder / f"{i:07d}.{ext}", os.O_CREAT | os.O_WRONLY, 0o644))
    marker.touch()


def measure(root: Path) -> dict:
    """In this process: seconds for a bare scandir and for build_dataset, and the memory listing took."""
    import resource

    from segkit.config import load_config
    from segkit.data import build_dataset

    cfg = load_config(None, ["data.num_classes=2", f"data.root={root}"])
    start = time.perf_counter()
    for sub in ("images", "masks"):
        with os.scandir(root / sub / "train") as entries:
            sum(1 for _ in entries)
    scandir = time.perf_counter() - start
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    dataset = build_dataset(cfg.data, "train")
    listing = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "pairs": len(dataset),
        "scandir_s": scandir,
        "build_dataset_s": listing,
        "listing_mb": (peak - before) / 1024,
    }  # ru_maxrss is in KiB on Linux


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--dir", help="where the fake pairs go (default: a temporary folder, removed after)")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/BENCHMARKS.md alone")
    parser.add_argument("--quick", action="store_true", help="1,000 pairs, nothing written: checks the script")
    parser.add_argument("--measure", help=argparse.SUPPRESS)  # internal: measure this root in this process
    args = parser.parse_args()
    if args.quick:
        args.sizes, args.no_write = [1_000], True
    if args.measure:
        print(json.dumps(measure(Path(args.measure))))
        return 0
    base = Path(args.dir or tempfile.mkdtemp(prefix="segkit_startup_"))
    rows, load = [], os.getloadavg()
    try:
        for n in args.sizes:
            root = base / f"pairs_{n}"
            make_pairs(root, n)
            run = subprocess.run(
                [sys.executable, __file__, "--measure", str(root)],
                capture_output=True,
                text=True,
                env={**os.environ, "PYTHONPATH": str(ROOT)},
                check=True,
            )
            r = json.loads(run.stdout.strip().splitlines()[-1])
            assert r["pairs"] == n, r
            rows.append([f"{n:,}", f"{r['scandir_s']:.2f}", f"{r['build_dataset_s']:.2f}", f"{r['listing_mb']:.0f}"])
            print(rows[-1], flush=True)
    finally:
        if not args.dir:
            shutil.rmtree(base, ignore_errors=True)
    body = "\n".join(
        [
            "## Start-up: listing N image/mask pairs (folder reader)",
            "",
            f"`python bench/startup.py{''.join(' ' + a for a in sys.argv[1:] if a != '--no-write')}` on {machine()}; "
            f"load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} (1/5/15 min) when it started.",
            "Empty fake files (listing opens none); one fresh process per size. `build_dataset` is what every start, "
            "resume and evaluation runs; memory is the peak resident size it added. Targets: 100k pairs < 5 s, "
            "1M pairs < ~200 MB.",
            "",
            markdown_table(["pairs", "bare os.scandir s", "build_dataset s", "listing memory MB"], rows),
        ]
    )
    print(body)
    if not args.no_write:
        write_section("startup", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
