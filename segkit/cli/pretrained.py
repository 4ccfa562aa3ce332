"""Ready segmenters: torchvision's COCO-with-VOC-labels weights as self-contained segkit checkpoints.

    segkit pretrained                                      (list what it can build)
    segkit pretrained torchvision/deeplabv3_resnet50 --out deeplab_voc.pth
    segkit pretrained torchvision/deeplabv3_resnet50 --weights-file deeplabv3_resnet50_coco-cd0a2569.pth --out ...
    python tools/pretrained.py ...                         (the same, from a checkout)

The weights come through torchvision's weights API (torch hub's cache, $TORCH_HOME/hub/checkpoints); offline,
fetch the file the error names by hand and pass it with --weights-file. A file that keeps torchvision's name
(the first hex digits of its SHA-256 after the last '-') is checked against that hash, as torch hub does.
The checkpoint holds the weights (aux head included), the shipped voc/* config of the same architecture, the
21 VOC class names and palette, the weights' normalisation and where they came from.
"""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path
from typing import Dict, Optional, Tuple

import torch

from segkit.checkpoint import checkpoint_meta, load_model_state, save_checkpoint, training_state
from segkit.config import load_config, to_dict
from segkit.data import default_palette, format_classes
from segkit.errors import CheckpointError, ConfigError
from segkit.models import build_model
from segkit.models.torchvision_compat import convert_torchvision_segmentation

# name -> (torchvision weights enum in torchvision.models.segmentation, the shipped config of that architecture)
SEGMENTERS: Dict[str, Tuple[str, str]] = {
    "torchvision/fcn_resnet50": ("FCN_ResNet50_Weights", "voc/fcn_r50_os8"),
    "torchvision/fcn_resnet101": ("FCN_ResNet101_Weights", "voc/fcn_r101_os8"),
    "torchvision/deeplabv3_resnet50": ("DeepLabV3_ResNet50_Weights", "voc/deeplabv3_r50_os8"),
    "torchvision/deeplabv3_resnet101": ("DeepLabV3_ResNet101_Weights", "voc/deeplabv3_r101_os8"),
}
WEIGHTS_TAG = "COCO_WITH_VOC_LABELS_V1"
# ImageNet backbones for fine-tuning: configs load them with model.backbone.pretrained: torchvision
BACKBONES: Dict[str, str] = {
    "torchvision/resnet18": "ResNet18_Weights",
    "torchvision/resnet34": "ResNet34_Weights",
    "torchvision/resnet50": "ResNet50_Weights",
    "torchvision/resnet101": "ResNet101_Weights",
}
LICENSE = (
    "torchvision (BSD-3-Clause) pre-trained weights; torchvision: 'pre-trained models may have their own licenses "
    "or terms and conditions derived from the dataset used for training' (COCO train2017, the 20 VOC categories)"
)


def weights_of(name: str):
    """torchvision's ``Weights`` enum member for a segmenter name (COCO_WITH_VOC_LABELS_V1)."""
    from torchvision.models import segmentation

    return getattr(getattr(segmentation, SEGMENTERS[name][0]), WEIGHTS_TAG)


def hub_file(url: str) -> Path:
    """Where torch hub keeps (and looks for) the file of ``url``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(url).name


def listing() -> str:
    from torchvision import models

    lines = ["segmenters (COCO train2017 with the 20 VOC categories + background, 21 classes):"]
    for name in SEGMENTERS:
        w = weights_of(name)
        miou = w.meta["_metrics"]["COCO-val2017-VOC-labels"]["miou"]
        lines.append(f"  {name:<34} {WEIGHTS_TAG}  mIoU {miou:.1f} (torchvision's)  config {SEGMENTERS[name][1]}")
    lines.append("backbones (ImageNet; fine-tune with model.backbone.pretrained: torchvision in any config):")
    for name, enum in BACKBONES.items():
        w = getattr(models, enum).IMAGENET1K_V1
        lines.append(f"  {name:<34} IMAGENET1K_V1  {w.url}")
    lines.append("convert one: segkit pretrained torchvision/deeplabv3_resnet50 --out deeplab_voc.pth")
    return "\n".join(lines)


def check_hash(path: Path) -> None:
    """torch hub's check: a name carrying hex digits after its last '-' must start its file's SHA-256."""
    found = torch.hub.HASH_REGEX.search(path.name)
    prefix = found.group(1) if found else ""
    if not prefix:
        return
    sha = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            sha.update(block)
    if not sha.hexdigest().startswith(prefix):
        raise CheckpointError(
            f"{path}: its name says SHA-256 {prefix}..., the file's is {sha.hexdigest()[: len(prefix)]}...: "
            f"the download is incomplete or another file; fetch it again"
        )


def read_weights_file(path: Path) -> Dict[str, torch.Tensor]:
    if not path.is_file():
        raise CheckpointError(f"--weights-file {path}: no such file")
    check_hash(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(
            f"--weights-file {path} cannot be read as a PyTorch state dict ({str(exc).splitlines()[0]})"
        ) from exc
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"--weights-file {path} is not a state dict (name -> tensor), as torchvision saves")
    return state


def download(name: str) -> Dict[str, torch.Tensor]:
    weights = weights_of(name)
    cached = hub_file(weights.url)
    try:
        if not cached.is_file():  # torch hub's own download, into its cache, without its "Downloading" line
            found = torch.hub.HASH_REGEX.search(cached.name)
            cached.parent.mkdir(parents=True, exist_ok=True)
            print(f"downloading {weights.url} to {cached}")
            torch.hub.download_url_to_file(weights.url, str(cached), found.group(1) if found else None)
        return weights.get_state_dict(progress=True, check_hash=True)
    except (OSError, RuntimeError) as exc:  # URLError is an OSError; a bad hash is a RuntimeError
        reason = str(getattr(exc, "reason", exc)).splitlines()[0]
        raise CheckpointError(
            f"cannot download {weights.url} ({reason}): fetch that file by hand and put it at "
            f"{hub_file(weights.url)} (torch hub's cache), or pass it with "
            f"`segkit pretrained {name} --weights-file {Path(weights.url).name}`"
        ) from exc


def convert(name: str, state: Dict[str, torch.Tensor], out: Path, source: str) -> Path:
    """Write the segkit checkpoint of a torchvision segmenter's state dict; returns ``out``."""
    weights = weights_of(name)
    config_name = SEGMENTERS[name][1]
    transforms = weights.transforms()
    cfg = load_config(config_name, ["model.backbone.pretrained=null"])  # the weights are in the checkpoint
    cfg.data.mean, cfg.data.std = list(transforms.mean), list(transforms.std)
    model = build_model(cfg)
    load_model_state(model, {"model": convert_torchvision_segmentation(state)}, source)
    names, palette = format_classes(cfg.data)
    meta = checkpoint_meta(cfg, names, palette or default_palette(cfg.data.num_classes))
    meta.update(
        config_name=config_name,
        weights=f"torchvision.models.segmentation.{SEGMENTERS[name][0]}.{WEIGHTS_TAG}",
        source=source,
        license=LICENSE,
    )
    return save_checkpoint(out, training_state(model.state_dict(), to_dict(cfg), meta))


def main(argv: Optional[list] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name", nargs="?", help="a segmenter from the list (no name: list them)")
    parser.add_argument("--out", help="the checkpoint to write (default <model>_voc.pth)")
    parser.add_argument("--weights-file", metavar="PATH", help="torchvision's .pth fetched by hand (no download)")
    args = parser.parse_args(argv)
    if args.name is None:
        print(listing())
        return 0
    if args.name in BACKBONES:
        raise ConfigError(
            f"{args.name} is an ImageNet backbone, not a segmenter: fine-tune it with "
            f"model.backbone.pretrained: torchvision (and model.backbone.name: {args.name.split('/')[1]}) in a config"
        )
    if args.name not in SEGMENTERS:
        raise ConfigError(f"unknown pretrained model '{args.name}'; choose one of {', '.join(SEGMENTERS)}")
    url = weights_of(args.name).url
    if args.weights_file:
        path = Path(args.weights_file)
        state, source = read_weights_file(path), f"{url} (converted from {path.name})"
    else:
        state, source = download(args.name), url
    out = Path(args.out or f"{args.name.split('/')[1]}_voc.pth")
    convert(args.name, state, out, source)
    print(f"wrote {out}: {args.name} {WEIGHTS_TAG} as config {SEGMENTERS[args.name][1]}, 21 VOC classes")
    print(f"  segkit infer IMAGE --checkpoint {out}   |   segkit train CONFIG --init-from {out}")
    return 0
