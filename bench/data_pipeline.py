#!/usr/bin/env python
"""Training-pipeline throughput on CamVid, 512x512 crops: segkit's training loader (the one train() uses) against the torchvision
segmentation references' PIL pipeline doing the same work, in one run, same workers and batch size.

Per image both decode the JPEG and the PNG mask, scale by a random factor in 0.5..2.0 (short side
180..720), flip half the time, take a random 512x512 crop padded with the ignore label, and batch
with a padding collate. The reference then converts to float and normalises in the worker (its
train.py); segkit sends uint8 and normalises after the copy to the device, and that cost is inside
its timed loop. A third row adds segkit's photometric distortion, which the reference does not do.

    python bench/data_pipeline.py            # the measurement; writes its section of docs/BENCHMARKS.md
    python bench/data_pipeline.py --quick    # a short check that it runs (indicative numbers only)
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import ROOT, default_camvid, machine, markdown_table, sync, write_section  # noqa: E402
from segkit.config import load_config  # noqa: E402
from segkit.data import build_dataset, build_train_loader, normalize, train_transform  # noqa: E402

MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


# --- torchvision references/segmentation (transforms.py, presets.py, utils.collate_fn), which is not an
# --- installed package: reimplemented here as it is written there (v2-free PIL path), for comparison only.
def pad_if_smaller(img, size, fill=0):
    import torchvision.transforms.functional as F

    min_size = min(img.size)
    if min_size < size:
        ow, oh = img.size
        padh = size - oh if oh < size else 0
        padw = size - ow if ow < size else 0
        img = F.pad(img, (0, 0, padw, padh), fill=fill)
    return img


class ReferenceTrainPreset:
    """SegmentationPresetTrain(base_size, crop_size, hflip_prob=0.5): RandomResize(0.5 base, 2 base),
    RandomHorizontalFlip, RandomCrop (pad fill 0 / 255), PILToTensor, ToDtype(float, scale), Normalize."""

    def __init__(self, base_size: int, crop_size: int, hflip_prob: float = 0.5):
        self.min_size, self.max_size = int(0.5 * base_size), int(2.0 * base_size)
        self.crop_size, self.hflip_prob = crop_size, hflip_prob

    def __call__(self, image, target):
        import torchvision.transforms as T
        import torchvision.transforms.functional as F

        size = random.randint(self.min_size, self.max_size)
        image = F.resize(image, size, antialias=True)
        target = F.resize(target, size, interpolation=T.InterpolationMode.NEAREST)
        if random.random() < self.hflip_prob:
            image, target = F.hflip(image), F.hflip(target)
        image = pad_if_smaller(image, self.crop_size)
        target = pad_if_smaller(target, self.crop_size, fill=255)
        crop_params = T.RandomCrop.get_params(image, (self.crop_size, self.crop_size))
        image, target = F.crop(image, *crop_params), F.crop(target, *crop_params)
        image = F.pil_to_tensor(image)
        target = torch.as_tensor(np.array(target), dtype=torch.int64)
        image = F.convert_image_dtype(image, torch.float)
        image = F.normalize(image, mean=MEAN, std=STD)
        return image, target


class ReferenceDataset(Dataset):
    def __init__(self, pairs, transforms):
        self.pairs, self.transforms = pairs, transforms

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int):
        image_path, mask_path = self.pairs[index]
        return self.transforms(Image.open(image_path).convert("RGB"), Image.open(mask_path))


def cat_list(images, fill_value=0):
    max_size = tuple(max(s) for s in zip(*[img.shape for img in images]))
    batch_shape = (len(images),) + max_size
    batched_imgs = images[0].new(*batch_shape).fill_(fill_value)
    for img, pad_img in zip(images, batched_imgs):
        pad_img[..., : img.shape[-2], : img.shape[-1]].copy_(img)
    return batched_imgs


def reference_collate(batch):
    images, targets = list(zip(*batch))
    return cat_list(images, fill_value=0), cat_list(targets, fill_value=255)


# --- end of the reference


def _endless(loader):
    while True:
        yield from loader


def interleaved_throughput(
    pipelines: dict, batches: int, batch_size: int, device: torch.device, repeats: int, warmup: int
) -> dict:
    """Images/s of each pipeline, timed in turns (round-robin), so that a shared machine's changing load falls
    on all alike; _common.measure times one function at a time. Each turn starts the pipeline's loader,
    takes ``warmup`` batches untimed (worker start-up, the prefetch queue), times ``batches`` batches, and
    shuts the workers down, so no pipeline's workers run while another is timed."""
    seconds = {name: [] for name in pipelines}
    for _ in range(repeats):
        for name, (make_loader, segkit) in pipelines.items():
            loader = make_loader()
            stream = _endless(loader)
            for _ in range(warmup):
                next(stream)
            sync(device)
            start = time.perf_counter()
            for _ in range(batches):
                batch = next(stream)
                if segkit:
                    images = normalize(batch["image"].to(device, non_blocking=True), MEAN, STD)
                else:
                    images = batch[0].to(device, non_blocking=True)
                del images
            sync(device)
            seconds[name].append(time.perf_counter() - start)
            stream.close()
            del stream, loader  # the loader's workers stop with it
    return {
        name: {"images_per_s": batches * batch_size / statistics.median(t), "seconds": t} for name, t in seconds.items()
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", default=str(default_camvid()), help="CamVid, SegNet layout")
    parser.add_argument("--quick", action="store_true", help="few batches, 2 workers: checks that it runs")
    parser.add_argument("--workers", type=int, help="loader workers for both (default: min(8, cores); quick: 2)")
    parser.add_argument("--batch-size", type=int, help="default 8 (quick: 4)")
    parser.add_argument("--batches", type=int, help="batches per timed chunk (default 30; quick: 4)")
    parser.add_argument("--repeats", type=int, help="timed chunks per pipeline, median reported (default 5; quick: 2)")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/BENCHMARKS.md alone")
    args = parser.parse_args()
    workers = args.workers if args.workers is not None else (2 if args.quick else min(8, os.cpu_count() or 1))
    batch_size = args.batch_size or (4 if args.quick else 8)
    batches = args.batches or (4 if args.quick else 30)
    repeats = args.repeats or (2 if args.quick else 5)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    pin = device.type == "cuda"
    # The main process only consumes batches here; with the workers on every core, its own intra-op
    # threads would only contend with them (segkit's CPU normalisation would pay for it, not the reference).
    torch.set_num_threads(1)

    crop = 512
    overrides = [
        f"data.root={args.root}",
        f"data.crop_size=[{crop},{crop}]",
        "data.scale_range=[0.5,2.0]",
        "data.hflip=true",
    ]
    camvid = str(ROOT / "configs/_base/datasets/camvid.yaml")
    plain_cfg = load_config(camvid, overrides + ["data.photometric=false"]).data
    photometric_cfg = load_config(camvid, overrides + ["data.photometric=true"]).data
    plain = build_dataset(plain_cfg, "train", train_transform(plain_cfg))
    photometric = build_dataset(photometric_cfg, "train", train_transform(photometric_cfg))
    short_side = min(Image.open(plain.pairs[0][0]).size)
    reference = ReferenceDataset(plain.pairs, ReferenceTrainPreset(base_size=short_side, crop_size=crop))

    pipelines = {
        "torchvision reference (PIL)": (
            lambda: DataLoader(
                reference,
                batch_size=batch_size,
                shuffle=True,
                num_workers=workers,
                pin_memory=pin,
                drop_last=True,
                persistent_workers=workers > 0,
                collate_fn=reference_collate,
            ),
            False,
        ),
        "segkit (same steps)": (lambda: build_train_loader(plain, batch_size, workers, seed=0, pin_memory=pin), True),
        "segkit + photometric distortion": (
            lambda: build_train_loader(photometric, batch_size, workers, seed=0, pin_memory=pin),
            True,
        ),
    }
    results = interleaved_throughput(pipelines, batches, batch_size, device, repeats, warmup=2 * max(workers, 1))
    rows = []
    base = results["torchvision reference (PIL)"]["images_per_s"]
    for name, r in results.items():
        rows.append([name, f"{r['images_per_s']:.1f}", f"{r['images_per_s'] / base:.2f}x"])
    body = "\n".join(
        [
            "## Data pipeline: training images/s on CamVid, 512x512 crops",
            "",
            f"`python bench/data_pipeline.py{''.join(' ' + a for a in sys.argv[1:] if a != '--no-write')}` on {machine()}.",
            f"{len(plain)} train images (480x360), {workers} workers, batch {batch_size}, pinned memory {pin}; segkit "
            f"rows use build_train_loader, the loader train() uses; median of {repeats} turns of {batches} batches per pipeline, the pipelines timed in "
            f"turns, each turn after {2 * max(workers, 1)} untimed batches. Same steps: "
            f"decode, random scale 0.5-2.0, flip, 512x512 crop padded with the ignore label, padding collate; the "
            f"reference normalises in the worker, segkit on the device (inside the timed loop).",
            "" if not args.quick else "\n**--quick run: few batches, indicative only.**",
            "",
            markdown_table(["pipeline", "images/s", "vs reference"], rows),
        ]
    )
    print(body)
    if not args.no_write:
        write_section("data_pipeline", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
