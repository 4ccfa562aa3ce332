"""Quality at equal wall-clock budget, from scratch, on CamVid (``make bench-quality``).

    python bench/quality.py [--config configs/camvid/<recipe>.yaml] [--camvid PATH]

1. segkit: its recommended CamVid recipe, trained as ``tools/train.py`` does (``bench/camvid_train.py``,
   whose section of docs/BENCHMARKS.md this run also writes); its wall time T is the budget.
2. reference: a plain loop in the style of torchvision's ``references/segmentation/train.py``
   (PIL transforms, fp32, SGD lr 0.01 momentum 0.9 weight decay 1e-4, poly LR per iteration,
   cross-entropy, the aux head at weight 0.5 with 10x LR as there), on the SAME architecture,
   initialised from the same seed, at the same crop, scale range and batch, for the same T.
   torchvision's reference has no CamVid preset, so its crop and scale follow the segkit recipe:
   the difference measured is the training recipe and speed, not the input size.
3. Both checkpoints are scored by the same function (segkit.evaluation.evaluator.evaluate with the recipe's
   eval settings, metrics at full 480x360) on val and test, each at the precision it trained in;
   mIoU over classes 0..10 (11 = Unlabelled is ignored). segkit keeps its best-on-val checkpoint,
   the reference its last, as torchvision's script does.

No pretrained weights exist here: both start from scratch.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import torchvision.transforms.v2.functional as TF  # noqa: E402
from PIL import Image  # noqa: E402

from bench._common import default_camvid, machine, markdown_table, write_section  # noqa: E402

DEFAULT_CONFIG = "configs/camvid/deeplabv3plus_r18_cpu.yaml"


# ------------------------------------------------------------------ the plain reference loop
class ReferenceCamVid(torch.utils.data.Dataset):
    """torchvision-reference style: PIL images, RandomResize -> flip -> RandomCrop -> tensor -> Normalize."""

    def __init__(self, root: Path, crop, scale_range, ignore_index: int):
        self.images = sorted((root / "train").iterdir())
        self.masks = [root / "trainannot" / (p.stem + ".png") for p in self.images]
        self.crop, self.scale_range, self.ignore = crop, scale_range, ignore_index

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        image, mask = Image.open(self.images[i]).convert("RGB"), Image.open(self.masks[i])
        s = random.uniform(*self.scale_range)
        h, w = round(image.height * s), round(image.width * s)
        image = TF.resize(image, [h, w], interpolation=TF.InterpolationMode.BILINEAR)
        mask = TF.resize(mask, [h, w], interpolation=TF.InterpolationMode.NEAREST)
        if random.random() < 0.5:
            image, mask = TF.horizontal_flip(image), TF.horizontal_flip(mask)
        ch, cw = self.crop
        pad_h, pad_w = max(ch - h, 0), max(cw - w, 0)
        if pad_h or pad_w:
            image = TF.pad(image, [0, 0, pad_w, pad_h], fill=0)
            mask = TF.pad(mask, [0, 0, pad_w, pad_h], fill=self.ignore)
        top, left = random.randint(0, max(h, ch) - ch), random.randint(0, max(w, cw) - cw)
        image, mask = TF.crop(image, top, left, ch, cw), TF.crop(mask, top, left, ch, cw)
        x = TF.normalize(
            TF.to_dtype(TF.pil_to_tensor(image), torch.float32, scale=True),
            mean=[0.485, 0.456, 0.406],
            std=[0.229, 0.224, 0.225],
        )
        return x, torch.as_tensor(np.array(mask), dtype=torch.int64)


def reference_train(cfg, camvid: Path, budget_s: float, out: Path, seed: int = 0) -> dict:
    from segkit.checkpoint import checkpoint_meta, save_checkpoint, training_state
    from segkit.config import to_dict
    from segkit.data.datasets import CAMVID_CLASSES, CAMVID_PALETTE
    from segkit.models import build_model

    random.seed(seed)
    torch.manual_seed(seed)
    model = build_model(cfg).train()
    data = ReferenceCamVid(camvid, list(cfg.data.crop_size), list(cfg.data.scale_range), cfg.data.ignore_index)
    loader = torch.utils.data.DataLoader(
        data, batch_size=cfg.train.batch_size, shuffle=True, drop_last=True, num_workers=2, persistent_workers=True
    )
    main_params = [p for n, p in model.named_parameters() if not n.startswith("aux_head.")]
    aux_params = [p for n, p in model.named_parameters() if n.startswith("aux_head.")]
    groups = [{"params": main_params}] + ([{"params": aux_params, "lr": 0.1}] if aux_params else [])
    opt = torch.optim.SGD(groups, lr=0.01, momentum=0.9, weight_decay=1e-4)
    base = [g["lr"] for g in opt.param_groups]
    start, it = time.perf_counter(), 0
    while time.perf_counter() - start < budget_s:
        for x, y in loader:
            elapsed = time.perf_counter() - start
            if elapsed >= budget_s:
                break
            for g, lr in zip(opt.param_groups, base):  # poly decay over the time budget
                g["lr"] = lr * (1 - elapsed / budget_s) ** 0.9
            logits = model(x)
            loss = F.cross_entropy(logits["out"], y, ignore_index=cfg.data.ignore_index)
            if "aux" in logits:
                loss = loss + 0.5 * F.cross_entropy(logits["aux"], y, ignore_index=cfg.data.ignore_index)
            opt.zero_grad()
            loss.backward()
            opt.step()
            it += 1
            if not math.isfinite(loss.item()):
                raise FloatingPointError(f"reference loss diverged at iteration {it}")
            if it % 20 == 0:
                print(f"reference iter {it} loss {loss.item():.3f} {elapsed:.0f}/{budget_s:.0f} s", flush=True)
    seconds = time.perf_counter() - start
    plain = to_dict(cfg)
    plain["train"].update(amp="none", channels_last=False)  # how this loop trained: scored the same way
    meta = checkpoint_meta(cfg, CAMVID_CLASSES, CAMVID_PALETTE)
    save_checkpoint(out, training_state(model.state_dict(), plain, meta, iteration=it))
    return {"iterations": it, "seconds": seconds, "checkpoint": str(out)}


# ------------------------------------------------------------------ the comparison
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default=DEFAULT_CONFIG)
    parser.add_argument("--camvid", default=str(default_camvid()))
    parser.add_argument("--work-dir", default="work_dirs/bench_quality")
    parser.add_argument("overrides", nargs="*", help="extra overrides for the segkit run (e.g. train.iterations=100)")
    args = parser.parse_intermixed_args()
    from bench.camvid_train import publish, run, score

    camvid, work = Path(args.camvid), Path(args.work_dir)
    segkit = run(args.config, str(camvid), args.overrides, str(work / "segkit"))
    publish(args.config, args.overrides, segkit)
    budget = segkit["seconds"]

    ref = reference_train(segkit["cfg"], camvid, budget, work / "reference" / "last.pth", seed=segkit["cfg"].train.seed)
    ref_scores = score(Path(ref["checkpoint"]), str(camvid))
    seg_scores = segkit["scores"]
    seg_iters = segkit["cfg"].train.iterations  # train() without stop_at runs them all
    (work / "result.json").write_text(
        json.dumps(
            {
                "budget_s": budget,
                "segkit": {"iterations": seg_iters, **{k: v["mIoU"] for k, v in seg_scores.items()}},
                "reference": {"iterations": ref["iterations"], **{k: v["mIoU"] for k, v in ref_scores.items()}},
            },
            indent=2,
        )
    )

    def pct(v: float) -> str:
        return f"{100 * v:.1f}"

    rows = [
        [
            "segkit recipe (`tools/train.py`)",
            f"{budget / 60:.1f}",
            seg_iters,
            pct(seg_scores["val"]["mIoU"]),
            pct(seg_scores["test"]["mIoU"]),
        ],
        [
            "plain torchvision-style loop",
            f"{ref['seconds'] / 60:.1f}",
            ref["iterations"],
            pct(ref_scores["val"]["mIoU"]),
            pct(ref_scores["test"]["mIoU"]),
        ],
    ]
    per_class = markdown_table(
        ["class", "segkit test IoU", "reference test IoU"],
        [
            [n, pct(a), pct(b)]
            for n, a, b in zip(seg_scores["test"]["class_names"], seg_scores["test"]["IoU"], ref_scores["test"]["IoU"])
        ],
    )
    body = (
        f"Command: `make bench-quality` (= `python bench/quality.py --config {args.config}`)  \n"
        f"Machine: {machine()}  \n"
        f"From scratch (no pretrained weights), CamVid train (367 images), same architecture and seed for "
        f"both, same crop, scale range and batch; scored on val (101) and test (233), mIoU over the 11 classes.\n\n"
        + markdown_table(["run", "minutes", "iterations", "val mIoU", "test mIoU"], rows)
        + f"\n\nPer class (test):\n\n{per_class}\n\n"
        "For scale, published from-scratch CamVid test mIoU: ENet 51.3, FC-DenseNet103 66.9 "
        "(both trained far longer, on GPUs)."
    )
    write_section("quality", body)
    print(body)


if __name__ == "__main__":
    main()
