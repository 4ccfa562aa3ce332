"""Parameters, GFLOPs and feature shapes of a config's model:
segkit info CONFIG [key=value ...] [--size H W]   (python tools/model_info.py in a checkout)"""

import argparse

import torch

from segkit.cli.common import add_config_args, overrides_of
from segkit.config import load_config
from segkit.models import build_model
from segkit.models.info import format_info, model_info


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_args(parser, "voc/deeplabv3_r50_os8")
    parser.add_argument(
        "--size",
        type=int,
        nargs=2,
        metavar=("H", "W"),
        help="input size for FLOPs and feature shapes (default: the config's data.crop_size)",
    )
    args = parser.parse_intermixed_args(argv)
    # the architecture is all that matters here: no weights download, and the meta device
    # (shapes and FLOPs come out the same, without the arithmetic)
    cfg = load_config(args.config, [*overrides_of(args), "model.backbone.pretrained=null"])
    with torch.device("meta"):
        model = build_model(cfg).eval()
    size = args.size or list(cfg.data.crop_size)
    print(
        f"{args.config}: {cfg.model.backbone.name} (output stride {cfg.model.backbone.output_stride}) "
        f"+ {cfg.model.decoder.name}{' + aux head' if cfg.model.aux_head else ''}, "
        f"{cfg.data.num_classes} classes"
    )
    print(format_info(model_info(model, size)))
    return 0
