"""Typed configuration: dataclasses are the schema, YAML files and dotted overrides fill it.

A YAML file states only what differs from the defaults below. It may name a parent
with ``base: relative/path.yaml`` (or a list of them); parents merge first, in order.
Unknown keys and values of the wrong type are errors that name the key and the file.
"""

from __future__ import annotations

import copy
import difflib
from dataclasses import MISSING as MISSING_FIELD
from dataclasses import dataclass, field, make_dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from omegaconf import MISSING, DictConfig, ListConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException

from segkit.config.files import ConfigError, find_config, read_yaml_chain
from segkit.config.overrides import parse_overrides


# --------------------------------------------------------------------------- model
@dataclass
class BackboneConfig:
    name: str = "resnet50"  # resnet18/34/50/101/152, resnext50_32x4d, resnext101_32x8d/64x4d, wide_resnet50_2/101_2
    output_stride: int = 8  # 8, 16 or 32: layer3/layer4 are dilated instead of strided
    deep_stem: bool = False  # three 3x3 convs instead of the 7x7 (ResNetV1c)
    multi_grid: Optional[List[int]] = None  # unit rates of layer4's blocks, e.g. [1, 2, 4]
    norm: str = "bn"  # bn | syncbn | gn | frozen_bn
    norm_groups: int = 32  # groups for norm=gn, in the backbone and the decoder; must divide every layer's width
    frozen_stages: int = -1  # -1: none; 0: stem; k: stem and layer1..k (weights and norm statistics)
    pretrained: Optional[str] = None  # null | "torchvision" | path to a torchvision state dict or segkit checkpoint
    # null: data.channels. Pretrained RGB weights adapt: summed for 1 channel, zeros for channels beyond 3
    in_channels: Optional[int] = None
    zero_init_residual: bool = False  # each block's last norm starts at zero, so blocks start as identity


@dataclass
class DecoderConfig:
    name: str = "deeplabv3"  # a key of segkit.models.DECODERS: fcn | deeplabv3 | deeplabv3plus | unet
    # The other model.decoder.* keys are the options of every registered decoder, each declared once in its
    # decoder's Options dataclass: decoder_config() adds them when a config loads. An option of a decoder other
    # than `name` must stay at its default (build_model says which decoder takes it).


def decoder_config() -> type:
    """``DecoderConfig`` with the options of the decoders registered now, so the schema checks their keys and types
    at load time; a decoder registered later (``DECODERS[name] = Class``) is in the next config loaded."""
    from segkit.models import DECODERS, decoder_options  # here, not at the top: `import segkit.config` loads no torch

    registered = tuple(DECODERS.items())
    cls = globals().get("RegisteredDecoderConfig")
    if cls is None or cls._registered != registered:
        specs = [
            (
                key,
                kind,
                field(default=option.default)
                if option.default_factory is MISSING_FIELD
                else field(default_factory=option.default_factory),
            )
            for key, (kind, option, _) in decoder_options().items()
        ]
        cls = make_dataclass(
            "RegisteredDecoderConfig", specs, bases=(DecoderConfig,), namespace={"_registered": registered}
        )
        cls.__module__ = __name__
        globals()["RegisteredDecoderConfig"] = cls  # where pickle finds it: a pickled config names it
    return cls


def __getattr__(name: str) -> Any:
    """Unpickling a config in a fresh process looks up ``RegisteredDecoderConfig`` before anything built it."""
    if name == "RegisteredDecoderConfig":
        return decoder_config()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@dataclass
class ModelConfig:
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    decoder: DecoderConfig = field(default_factory=DecoderConfig)
    aux_head: bool = False  # an FCN head on layer3 trained with loss.aux_weight
    aux_channels: Optional[int] = None  # null: in/4 (torchvision: 256 on ResNet-50)


# --------------------------------------------------------------------------- data
@dataclass
class DataConfig:
    format: str = "folder"  # folder | voc | cityscapes | ade20k | camvid | coco (layouts: data/README.md)
    root: str = "data/sample"
    num_classes: int = MISSING
    class_names: List[str] = field(default_factory=list)  # empty: from the reader, else class_0..
    palette: List[List[int]] = field(default_factory=list)  # empty: from the reader, else a fixed palette
    ignore_index: int = 255  # the one ignore label: crop padding, loss and metric all use it
    label_map: Dict[int, int] = field(default_factory=dict)  # raw mask value -> class id, e.g. {255: 1}; applied last
    reduce_zero_label: bool = False  # ADE20K: 0 -> ignore, v -> v-1
    # folder format: images and masks paired by file stem
    image_dir: str = "images/{split}"  # also coco: the folder of the JSON's file names, e.g. "{split}2017"
    mask_dir: str = "masks/{split}"
    split_file: Optional[str] = None  # e.g. "splits/{split}.txt": one stem per line; relative to root, else to the cwd
    # pairing by the key the names share: the name less its extension and these suffixes (with or without
    # the extension: '_training.tif' or '_training'), or the group 'key' of pair_pattern (re.match on the name)
    image_suffix: str = ""
    mask_suffix: str = ""
    pair_pattern: Optional[str] = None  # e.g. '(?P<key>\d+)_' pairs 21_training.tif with 21_manual1.gif
    ignore_mask_dir: Optional[str] = None  # e.g. "fov/{split}": its masks' zero pixels become ignore_index
    ignore_mask_suffix: str = ""  # as image_suffix, for the ignore masks: '_training_mask'
    # coco format
    annotation_file: str = "annotations/instances_{split}2017.json"  # relative to root; or stuff_{split}2017.json
    category_ids: List[int] = field(default_factory=list)  # class i = category id [i]; 0 = background; empty: 0 + all
    # a split name may join splits with '+', e.g. train+val
    train_split: str = "train"
    val_split: str = "val"
    test_split: str = "test"
    # bands and bit depth (data/README.md: deep and multi-band rasters)
    channels: int = 3  # bands per image: 3 = RGB (grey replicated, alpha dropped); N: as stored (TIFF via tifffile)
    value_range: Optional[Any] = None  # [lo, hi] or one pair per band -> 0..1; null: 8-bit 0..255, deeper images:
    #   the training split's 0.5/99.5 percentiles per band, measured when training starts and stored in the run
    # colour-coded masks (RGB masks whose colours are classes)
    class_colors: Optional[Any] = None  # CSV path (name,r,g,b; relative to root) or [[r, g, b], ...] in class order
    ignore_colors: List[List[int]] = field(default_factory=list)  # colours that become ignore_index (e.g. Void)
    unknown_colors: str = "error"  # error | ignore: a mask colour that is neither a class nor ignore_colors
    # normalisation, in 0..1 units (applied on the device, after the uint8 copy; deeper data: after value_range)
    mean: List[float] = field(default_factory=lambda: [0.485, 0.456, 0.406])
    std: List[float] = field(default_factory=lambda: [0.229, 0.224, 0.225])
    # training augmentation
    crop_size: List[int] = field(default_factory=lambda: [512, 512])  # H, W; padded with ignore_index in the mask
    scale_range: List[float] = field(default_factory=lambda: [0.5, 2.0])  # random scale, of base_size or the image
    base_size: Optional[int] = None  # null: scale the image itself; N: scale its short side to N x scale_range
    hflip: bool = True
    photometric: bool = True  # mmsegmentation's PhotoMetricDistortion: brightness, contrast, saturation, hue
    num_workers: int = 4


# --------------------------------------------------------------------------- training
@dataclass
class LossTerm:
    name: str = "ce"  # ce | ohem | dice | lovasz | focal (dice/lovasz/focal: segmentation_models_pytorch)
    weight: float = 1.0
    class_weights: Optional[Any] = None  # null | "auto" (median frequency over the train split) | list of floats
    ohem_thresh: float = 0.7  # ohem: keep pixels whose true-class probability is below this...
    ohem_min_kept: int = 100000  # ...but at least this many per image (the hardest ones)
    focal_gamma: float = 2.0  # focal: the focusing exponent


@dataclass
class LossConfig:
    terms: List[LossTerm] = field(default_factory=lambda: [LossTerm()])
    aux_weight: float = 0.4  # the auxiliary head's loss (same terms) is added with this weight


@dataclass
class TrainConfig:
    iterations: int = 20000  # optimizer steps; the schedule, validation and checkpoints count these
    time_budget: Optional[str] = (
        None  # e.g. 30s, 4m, 1h: the schedule spans the iterations that fit (at most iterations)
    )
    batch_size: int = 8  # per process and per accumulation step
    optimizer: str = "sgd"  # sgd | adamw
    lr: float = 0.01
    momentum: float = 0.9  # sgd
    weight_decay: float = 1e-4
    no_decay_norm_bias: bool = False  # no weight decay on norm weights and biases
    backbone_lr_mult: float = 1.0  # the backbone's LR is lr times this (e.g. 0.1 when pretrained)
    warmup_iters: int = 0
    warmup_ratio: float = 0.1  # LR starts at lr * warmup_ratio and rises linearly over warmup_iters
    poly_power: float = 0.9
    min_lr: float = 1e-4  # poly decays to this at the last iteration
    accumulate: int = 1  # batches whose gradients are summed per optimizer step
    clip_grad: Optional[float] = None  # max global gradient norm; null: no clipping
    amp: str = "auto"  # auto (GPU: bf16 where it has it, else fp16 + grad scaler; CPU: bf16 where native, else off) | bf16 | fp16 | none
    channels_last: bool = True
    cudnn_benchmark: bool = True  # off in deterministic mode
    compile: Any = False  # torch.compile the model for training: true | false | auto (segkit.training.acceleration)
    device: str = "auto"  # auto | cpu | cuda | cuda:N (under torchrun: cuda:LOCAL_RANK)
    dist_backend: str = "auto"  # auto (nccl on CUDA, gloo on CPU) | nccl | gloo
    dist_timeout: float = 300.0  # seconds the processes of a torchrun job have to meet, and each collective
    seed: int = 0
    deterministic: bool = False  # deterministic kernels: a resumed run then equals an uninterrupted one
    log_interval: int = 20
    val_interval: int = 1000
    checkpoint_interval: int = 1000
    keep_last: int = 2  # iter_*.pth files kept besides last.pth and best.pth; 0: none
    progress: str = "auto"  # auto (a bar on a terminal, log lines otherwise) | bar | log
    tensorboard: bool = True  # write TensorBoard events to <work_dir>/tb when tensorboard is installed
    # where the run is logged besides train.log / metrics.jsonl: tensorboard | mlflow | wandb (segkit.training.loggers)
    loggers: List[str] = field(default_factory=lambda: ["tensorboard"])
    log_checkpoint: bool = False  # mlflow / wandb: upload best.pth as an artifact at the end of the run


EVAL_MODES = ("whole", "slide")  # eval.mode; segkit.inference.modes implements each


@dataclass
class EvalConfig:
    mode: str = "whole"  # whole | slide
    crop_size: List[int] = field(default_factory=lambda: [512, 512])  # slide window (H, W)
    stride: List[int] = field(default_factory=lambda: [341, 341])
    scales: List[float] = field(default_factory=lambda: [1.0])  # TTA scales
    flip: bool = False  # TTA horizontal flip
    resize: Optional[List[int]] = None  # (H, W) the image is resized to before inference; logits come back
    batch_size: int = 1
    crop_batch: int = 4  # slide: windows per forward pass (bounds memory: one batch of crops at a time)
    amp: Optional[str] = None  # auto | bf16 | fp16 | none for validation, eval and inference; null: as train.amp
    channels_last: Optional[bool] = None  # inference memory format; null: as train.channels_last


@dataclass
class Config:
    name: str = ""  # experiment name; empty: the config file's stem
    work_dir: str = ""  # empty: work_dirs/<name>
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)


# --------------------------------------------------------------------------- loading
SIZE_KEYS = ("data.crop_size", "eval.crop_size", "eval.stride", "eval.resize")


def _schema() -> DictConfig:
    """The defaults, with model.decoder holding the options of every registered decoder."""
    return OmegaConf.structured(Config(model=ModelConfig(decoder=decoder_config()())))


def _known_keys(node: Any, prefix: str = "") -> List[str]:
    keys = []
    if isinstance(node, DictConfig):
        for k in node.keys():
            full = f"{prefix}{k}"
            keys.append(full)
            child = node._get_node(k)
            if isinstance(child, DictConfig) and child._metadata.object_type not in (None, dict):
                keys.extend(_known_keys(child, full + "."))
    return keys


def _explain(exc: OmegaConfBaseException, source: str) -> ConfigError:
    key = getattr(exc, "full_key", None) or ""
    if isinstance(exc, ConfigKeyError) or "not in struct" in str(exc) or "Key '" in str(exc):
        known = _known_keys(_schema())
        same_depth = [k for k in known if k.count(".") == key.count(".")]
        close = difflib.get_close_matches(key, same_depth, n=3, cutoff=0.6)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        section = key.rsplit(".", 1)[0] if "." in key else ""
        siblings = (
            sorted(k.rsplit(".", 1)[-1] for k in known if k.rsplit(".", 1)[0] == section and "." in k)
            if section
            else []
        )
        valid = f" Valid keys under '{section}': {', '.join(siblings)}." if siblings else ""
        return ConfigError(f"{source}: unknown config key '{key}'.{hint}{valid}")
    msg = str(exc).split("\n")[0]
    if "is not a ListConfig" in msg:  # OmegaConf's words for "a scalar where a list goes"
        msg = "expected a list, e.g. [1, 2, 4]"
    return ConfigError(f"{source}: bad value for '{key}': {msg}")


def apply_overrides(cfg: DictConfig, overrides: Sequence[str], source: str = "command-line override") -> DictConfig:
    """Dotted ``key=value`` overrides on a config, checked against the schema.

    The command line states a whole value: a mapping replaces an inherited mapping (``data.label_map={0: 1}``),
    and ``{}``, ``[]`` or ``null`` clear an inherited mapping or list."""
    parsed = parse_overrides(overrides)
    cfg = copy.deepcopy(cfg) if parsed else cfg  # clearing below assigns in place: leave the caller's config alone
    for key, value in parsed:
        node = OmegaConf.select(cfg, key, default=None, throw_on_missing=False)
        plain = isinstance(node, (DictConfig, ListConfig)) and node._metadata.object_type in (None, dict, list)
        if plain and value is None and not node._metadata.optional:
            value = {} if isinstance(node, DictConfig) else []
        if plain and (isinstance(value, dict) or value in ({}, [])):
            OmegaConf.update(cfg, key, {} if isinstance(node, DictConfig) else [], merge=False)
        nested: Any = value
        for part in reversed(key.split(".")):
            nested = {part: nested}
        try:
            cfg = OmegaConf.merge(cfg, nested)
        except OmegaConfBaseException as exc:
            raise _explain(exc, source) from exc
    return cfg


def load_config(path: Optional[str | Path] = None, overrides: Optional[List[str]] = None) -> Config:
    """Build a Config from the defaults, a YAML file (with its bases) and dotted overrides.

    ``path`` is a file or the name of a shipped config (``sample/deeplabv3plus_r18``, see ``segkit configs``).
    ``overrides`` look like ``["train.lr=0.02", "model.backbone.name=resnet18"]``.
    Returns a DictConfig typed as Config: attribute access, validated on assignment.
    """
    cfg = _schema()
    if path is not None:
        path = find_config(path)
        for source, node in read_yaml_chain(path):
            try:
                cfg = OmegaConf.merge(cfg, node)
            except OmegaConfBaseException as exc:
                raise _explain(exc, source) from exc
    cfg = apply_overrides(cfg, overrides or [])
    if not cfg.name and path is not None:
        cfg.name = Path(path).stem
    missing = sorted(OmegaConf.missing_keys(cfg))
    if missing:
        raise ConfigError(
            f"{path or 'config'}: required key(s) not set: {', '.join(missing)} "
            f"(set them in the YAML file or as overrides, e.g. {missing[0]}=...)"
        )
    check_sizes(cfg, str(path or "config"))
    check_bands(cfg, str(path or "config"))
    return cfg  # type: ignore[return-value]


def check_sizes(cfg: Any, source: str) -> None:
    """(H, W) pairs must have two numbers: ``data.crop_size=[64]`` is an error, not a square."""
    for key in SIZE_KEYS:
        value = OmegaConf.select(cfg, key)
        if value is not None and len(value) != 2:
            raise ConfigError(f"{source}: {key}={list(value)} must be [H, W], e.g. {key}=[512,512]")


def check_bands(cfg: Any, source: str) -> None:
    """``model.backbone.in_channels`` follows ``data.channels`` unless set; mean/std and value_range give one
    number (pair) per band."""
    data = cfg.data
    if data.channels < 1:
        raise ConfigError(f"{source}: data.channels={data.channels} must be >= 1 (3 for RGB)")
    if cfg.model.backbone.in_channels is None:
        cfg.model.backbone.in_channels = data.channels
    for key in ("mean", "std"):
        if len(data[key]) != data.channels:
            raise ConfigError(
                f"{source}: data.{key} has {len(data[key])} values for data.channels={data.channels}: give one per "
                f"band, e.g. data.{key}=[{', '.join(['0.5' if key == 'mean' else '0.25'] * data.channels)}] "
                f"(segkit check prints the training split's)"
            )
    if data.unknown_colors not in ("error", "ignore"):
        raise ConfigError(f"{source}: data.unknown_colors={data.unknown_colors!r}: choose error or ignore")


def to_dict(cfg: Any) -> Dict[str, Any]:
    """Plain containers only, so a checkpoint holding it loads with weights_only=True."""
    return OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, (DictConfig, ListConfig)) else dict(cfg)


def from_dict(d: Dict[str, Any]) -> Config:
    """Rebuild a validated Config from ``to_dict`` output (e.g. a checkpoint's)."""
    try:
        cfg = OmegaConf.merge(_schema(), d)
        if cfg.model.backbone.in_channels is None:
            cfg.model.backbone.in_channels = cfg.data.channels
        return cfg  # type: ignore[return-value]
    except OmegaConfBaseException as exc:
        error = _explain(exc, "checkpoint config")
        name = ((d.get("model") or {}).get("decoder") or {}).get("name")
        if name is not None and name not in dict(decoder_config()._registered):
            error = ConfigError(
                f"{error} The checkpoint's decoder '{name}' is not registered here: import the module "
                f"that registers it (DECODERS['{name}'] = ...) before loading the checkpoint."
            )
        raise error from exc


def dump(cfg: Any) -> str:
    return OmegaConf.to_yaml(cfg)
