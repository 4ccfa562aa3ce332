#!/usr/bin/env python
"""The studio in a real headless Chromium: how long a 2048x2048 image takes to open in the page once
the model has seen it, and a correction's round trip (click -> PNG saved -> page redrawn).

    python bench/studio.py [--checkpoint CKPT] [--repeats 5]     # rewrites the 'studio' section of BENCHMARKS.md
    python bench/studio.py --screenshot docs/img/studio.png       # the README's picture (sample set)

Without --checkpoint an untrained CamVid-sized model is written to a temporary folder (11 classes,
FCN ResNet-18): the timings after the first model call do not depend on the weights.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from bench._browser import chromium, find_browser, image_offset, login_url, serve, wait_ready  # noqa: E402
from bench._common import machine, markdown_table, write_section  # noqa: E402
from segkit.checkpoint import checkpoint_meta, save_checkpoint, training_state  # noqa: E402
from segkit.config import load_config, to_dict  # noqa: E402
from segkit.data.classes import CAMVID_CLASSES, CAMVID_PALETTE  # noqa: E402
from segkit.data.sample import generate  # noqa: E402
from segkit.inference.predictor import Predictor  # noqa: E402
from segkit.models import build_model  # noqa: E402
from segkit.studio import Studio, create_app  # noqa: E402

SIZE = 2048


def untrained_checkpoint(folder: Path) -> Path:
    cfg = load_config(
        None,
        [
            "name=bench_studio",
            "data.num_classes=11",
            "data.ignore_index=11",
            "model.backbone.name=resnet18",
            "model.backbone.output_stride=32",
            "model.decoder.name=fcn",
            "train.device=cpu",
        ],
    )
    path = folder / "untrained.pth"
    save_checkpoint(
        path,
        training_state(
            build_model(cfg).state_dict(), to_dict(cfg), checkpoint_meta(cfg, CAMVID_CLASSES, CAMVID_PALETTE)
        ),
    )
    return path


def big_images(folder: Path, count: int) -> list:
    """``count`` 2048x2048 photos: sample-set pictures scaled up (kept out of the repository)."""
    sample = generate(folder / "sample", splits={"val": count})
    out = []
    for i, src in enumerate(sorted((sample / "images" / "val").iterdir())):
        image = cv2.resize(cv2.imread(str(src)), (SIZE, SIZE), interpolation=cv2.INTER_CUBIC)
        out.append(folder / f"big_{i}.jpg")
        cv2.imwrite(str(out[-1]), image, [cv2.IMWRITE_JPEG_QUALITY, 92])
    return out


OPEN = (
    "const done = arguments[arguments.length - 1], t0 = performance.now();"
    "open(arguments[0]).then(() => done(performance.now() - t0));"
)
EDIT = (
    "const done = arguments[arguments.length - 1], t0 = performance.now();"
    "edit(arguments[0]).then(() => done(performance.now() - t0));"
)


def timings(checkpoint: Path, repeats: int, work: Path) -> dict:
    images = big_images(work, repeats + 1)
    studio = Studio(Predictor.from_checkpoint(checkpoint, device="cpu"), images, work / "masks", cache_size=len(images))
    for stem in studio.images:  # the first model call per image, outside the timing
        studio.analysis(stem)
    stems = list(studio.images)
    result = {"open": [], "region": [], "brush": []}
    with serve(create_app(studio)) as url, chromium() as session:
        session.set_script_timeout(120)
        session.get(f"{url}/#{stems[0]}")
        wait_ready(session, 300)
        for stem in stems[1:]:  # each image opened once: no browser cache helps
            result["open"].append(session.execute_async_script(OPEN, stem))
        target = studio.mask_path(stems[-1])
        for i in range(repeats):
            before = target.stat().st_mtime_ns if target.exists() else 0
            result["region"].append(
                session.execute_async_script(EDIT, {"op": "region", "x": SIZE // 2, "y": SIZE // 2, "cls": i % 2})
            )
            points = [[200 + 40 * k, 300 + 10 * i] for k in range(30)]
            result["brush"].append(
                session.execute_async_script(EDIT, {"op": "brush", "points": points, "radius": 8, "cls": 2 + i % 2})
            )
            assert target.stat().st_mtime_ns > before, "the edit did not save the PNG"
    return result


def publish(result: dict, checkpoint_note: str, quick: bool = False) -> str:
    """The section's text, written to docs/BENCHMARKS.md unless ``quick``."""

    def row(name, values, limit):
        return [
            name,
            f"{statistics.median(values):.0f}",
            f"{min(values):.0f}",
            f"{max(values):.0f}",
            len(values),
            limit,
        ]

    table = markdown_table(
        ["step (2048x2048 image)", "median ms", "min ms", "max ms", "runs", "goal"],
        [
            row("open the image with its overlay, model output cached", result["open"], "< 1000 ms"),
            row("region click -> PNG saved -> page redrawn", result["region"], "< 200 ms"),
            row("30-point brush stroke -> PNG saved -> page redrawn", result["brush"], "< 200 ms"),
        ],
    )
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    body = f"""## Studio (region labeling page)

`python bench/studio.py`: the page in headless Chromium, timed inside the page (`performance.now()`),
served by uvicorn on the same machine. {checkpoint_note}

{table}

Machine: {machine()}; load average (1, 5, 15 min) after measuring: {load}."""
    if not quick:
        write_section("studio", body)
    return body


def screenshot(path: Path, checkpoint: Path, work: Path) -> None:
    """The studio on three sample images, the first one's ground truth shown and one region corrected."""
    sample = generate(work / "sample", splits={"val": 3})
    images = sorted((sample / "images" / "val").iterdir())
    masks = work / "masks"
    masks.mkdir()
    shutil.copy(sample / "masks" / "val" / f"{images[0].stem}.png", masks / f"{images[0].stem}.png")
    studio = Studio(Predictor.from_checkpoint(checkpoint, device="cpu"), images, masks, checkpoint=checkpoint)
    studio.score_all()
    app = create_app(studio)
    with serve(app) as url, chromium(1400, 950) as session:
        session.get(login_url(url, app, images[0].stem))
        wait_ready(session, 300)
        label = studio.label(images[0].stem)
        ys, xs = np.nonzero(label == label.max())
        from selenium.webdriver.common.action_chains import ActionChains
        from selenium.webdriver.common.by import By

        canvas = session.find_element(By.ID, "overlay")
        ActionChains(session).send_keys("1").move_to_element_with_offset(
            canvas, *image_offset(session, int(xs[len(xs) // 2]), int(ys[len(ys) // 2]))
        ).click().perform()
        wait_ready(session)
        path.parent.mkdir(parents=True, exist_ok=True)
        session.save_screenshot(str(path))
    print(f"screenshot: {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", help="a segkit checkpoint (default: an untrained 11-class FCN R18)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--screenshot", metavar="PNG", help="save the README screenshot instead of timing")
    parser.add_argument("--quick", action="store_true", help="one repeat: checks the script (make bench-quick)")
    args = parser.parse_args()
    if args.quick:
        args.repeats = 1
    missing = find_browser()[2]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing = (missing + "; " if missing else "") + "selenium not installed (pip install -e '.[test]')"
    if missing:  # make bench goes on with the other sections; this one stays as it was
        print(f"bench/studio.py skipped: {missing}")
        if args.screenshot:
            raise SystemExit(f"no screenshot written: {missing}")
        return
    with tempfile.TemporaryDirectory(prefix="segkit-bench-studio-") as tmp:
        work = Path(tmp)
        checkpoint = Path(args.checkpoint) if args.checkpoint else untrained_checkpoint(work)
        if args.screenshot:
            screenshot(Path(args.screenshot), checkpoint, work)
            return
        note = (
            f"Checkpoint {checkpoint.name}."
            if args.checkpoint
            else "Untrained 11-class FCN ResNet-18 (output stride 32): the timed steps do not run the model."
        )
        print(publish(timings(checkpoint, args.repeats, work), note, args.quick))


if __name__ == "__main__":
    main()
