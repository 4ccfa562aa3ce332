"""ResNetBackbone: the feature contract, parity with torchvision, dilation rules, norms, freezing, bad arguments."""

import ast
import math
from pathlib import Path

import pytest
import torch
import torch.nn as nn
import torchvision
from torchvision.models._utils import IntermediateLayerGetter
from torchvision.ops import FrozenBatchNorm2d

from segkit.config import ConfigError, load_config
from segkit.models import ResNetBackbone, build_backbone, load_backbone_weights
from segkit.models.backbone import ARCHS, FEATURE_NAMES
from tests.model_helpers import randomise_norm_stats

# ------------------------------------------------------------------ contract: feature_info tells the truth
DEPTHS = ["resnet18", "resnet34", "resnet50", "resnet101", "resnet152"]
VARIANTS = [name for name in ARCHS if name not in DEPTHS]  # grouped and widened bottlenecks


def _check_contract(name, output_stride, deep_stem):
    # Shapes only, so the meta device: every architecture is built and run for real, without the arithmetic.
    with torch.device("meta"):
        backbone = ResNetBackbone(name, output_stride=output_stride, deep_stem=deep_stem)
    h, w = 97, 131  # odd: each stride-2 step rounds up, so a feature of stride s is ceil(size / s)
    features = backbone(torch.empty(1, 3, h, w, device="meta"))
    assert list(features) == [s.name for s in backbone.feature_info] == list(FEATURE_NAMES)
    for spec in backbone.feature_info:
        measured = tuple(features[spec.name].shape)
        assert measured == (1, spec.channels, math.ceil(h / spec.stride), math.ceil(w / spec.stride)), spec
    assert backbone.feature_info[-1].stride == output_stride


@pytest.mark.parametrize("deep_stem", [False, True], ids=["stem7x7", "deepstem"])
@pytest.mark.parametrize("output_stride", [8, 16, 32])
@pytest.mark.parametrize("name", DEPTHS)
def test_measured_features_match_feature_info(name, output_stride, deep_stem):
    _check_contract(name, output_stride, deep_stem)


@pytest.mark.parametrize("name,output_stride", list(zip(VARIANTS, [8, 16, 32, 8, 16])))
def test_measured_features_match_feature_info_resnext_wide(name, output_stride):
    _check_contract(name, output_stride, deep_stem=False)  # same stages as resnet50/101: one stride each


def test_forward_can_stop_early():
    backbone = ResNetBackbone("resnet18").eval()
    x = torch.randn(1, 3, 64, 64)
    early = backbone(x, last="layer2")
    assert list(early) == ["stem", "layer1", "layer2"]
    torch.testing.assert_close(early["layer2"], backbone(x)["layer2"], rtol=0, atol=0)
    assert list(backbone(x, last="stem")) == ["stem"]


# ------------------------------------------------------------------ parity with torchvision
PARITY = [  # (name, output stride): every depth, the grouped and the widened bottleneck
    ("resnet18", 32),
    ("resnet34", 32),
    ("resnet50", 8),
    ("resnet50", 32),
    ("resnet101", 16),
    ("resnet152", 8),
    ("resnext50_32x4d", 8),
    ("wide_resnet50_2", 16),
]


def empty_backbone(name, **kwargs) -> ResNetBackbone:
    """Built without spending time on random initialisation: for models whose every tensor is then loaded."""
    with torch.device("meta"):
        backbone = ResNetBackbone(name, **kwargs)
    return backbone.to_empty(device="cpu")


@pytest.mark.parametrize("name,output_stride", PARITY)
@torch.no_grad()
def test_torchvision_weights_give_torchvision_outputs(name, output_stride):
    dilate = {32: [False, False, False], 16: [False, False, True], 8: [False, True, True]}[output_stride]
    kwargs = {"replace_stride_with_dilation": dilate} if output_stride != 32 else {}
    reference = getattr(torchvision.models, name)(weights=None, **kwargs).eval()
    randomise_norm_stats(reference, affine=True)

    backbone = empty_backbone(name, output_stride=output_stride).eval()
    report = load_backbone_weights(backbone, reference.state_dict())  # files: see test_weights.py
    assert sorted(report.left_over) == ["fc.bias", "fc.weight"]

    names = {"relu": "stem", "layer1": "layer1", "layer2": "layer2", "layer3": "layer3", "layer4": "layer4"}
    expected = IntermediateLayerGetter(reference, names)(x := torch.randn(1, 3, 35, 45))
    got = backbone(x)
    for key in FEATURE_NAMES:
        torch.testing.assert_close(got[key], expected[key], rtol=0, atol=1e-5, msg=f"{name} {key}")


# ------------------------------------------------------------------ dilation rules
def _dilations(stage: nn.Sequential, conv: str):
    return [getattr(block, conv).dilation[0] for block in stage]


def test_basic_block_dilates_with_torchvisions_first_block_rule():
    backbone = ResNetBackbone("resnet34", output_stride=8)
    # layer3 goes from dilation 1 to 2: its first block's strided-position conv keeps 1
    assert _dilations(backbone.layer3, "conv1") == [1, 2, 2, 2, 2, 2]
    assert _dilations(backbone.layer3, "conv2") == [2, 2, 2, 2, 2, 2]
    assert _dilations(backbone.layer4, "conv1") == [2, 4, 4]
    assert _dilations(backbone.layer4, "conv2") == [4, 4, 4]
    assert all(block.conv1.stride == (1, 1) for block in [*backbone.layer3, *backbone.layer4])
    assert backbone.layer3[0].downsample[0].stride == (1, 1)


@pytest.mark.parametrize("output_stride,rates", [(8, [4, 8, 16]), (16, [2, 4, 8]), (32, [1, 2, 4])])
def test_multi_grid_scales_layer4_rates(output_stride, rates):
    backbone = ResNetBackbone("resnet50", output_stride=output_stride, multi_grid=[1, 2, 4])
    assert _dilations(backbone.layer4, "conv2") == rates
    assert backbone.layer4[0].conv2.stride == ((2, 2) if output_stride == 32 else (1, 1))
    basic = ResNetBackbone("resnet18", output_stride=output_stride, multi_grid=[1, 2])
    assert _dilations(basic.layer4, "conv2") == rates[:2]
    out = basic(torch.randn(1, 3, 64, 64))["layer4"]
    assert out.shape[-1] == 64 // output_stride


# ------------------------------------------------------------------ norms and freezing
@pytest.mark.parametrize(
    "norm,cls",
    [("bn", nn.BatchNorm2d), ("syncbn", nn.SyncBatchNorm), ("gn", nn.GroupNorm), ("frozen_bn", FrozenBatchNorm2d)],
)
def test_norm_choices_train_on_cpu(norm, cls):
    backbone = ResNetBackbone("resnet18", output_stride=8, deep_stem=True, norm=norm).train()
    assert isinstance(backbone.layer1[0].bn1, cls) and isinstance(backbone.stem[1], cls)
    out = backbone(torch.randn(2, 3, 33, 47))  # not distributed: SyncBatchNorm works as BatchNorm
    out["layer4"].mean().backward()
    assert out["layer4"].shape == (2, 512, 5, 6)
    assert torch.isfinite(backbone.layer1[0].conv1.weight.grad).all()


@pytest.mark.parametrize("deep_stem", [False, True])
def test_frozen_stages_keep_weights_and_statistics(deep_stem):
    backbone = ResNetBackbone("resnet18", deep_stem=deep_stem, frozen_stages=2)
    backbone.train()  # train() must not wake the frozen norms
    frozen = [backbone.stem] if deep_stem else [backbone.conv1, backbone.bn1]
    frozen += [backbone.layer1, backbone.layer2]
    before = {k: v.clone() for k, v in backbone.state_dict().items()}
    backbone(torch.randn(2, 3, 64, 64))["layer4"].sum().backward()
    after = backbone.state_dict()
    for module in frozen:
        assert not module.training
        assert all(not p.requires_grad and p.grad is None for p in module.parameters())
    frozen_keys = [k for k in before if k.startswith(("stem.", "conv1", "bn1", "layer1.", "layer2."))]
    assert frozen_keys and all(torch.equal(before[k], after[k]) for k in frozen_keys)
    assert not torch.equal(before["layer3.0.bn1.running_mean"], after["layer3.0.bn1.running_mean"])
    assert backbone.layer3.training and backbone.layer3[0].conv1.weight.grad is not None


# ------------------------------------------------------------------ bad arguments: plain errors, keys from the config layer
BAD_ARGUMENTS = [
    ({"name": "resnet42"}, "name"),
    ({"output_stride": 12}, "output_stride must be 8, 16 or 32"),
    ({"multi_grid": [1, 2]}, "multi_grid"),
    ({"multi_grid": [0, 1, 2]}, "multi_grid"),
    ({"frozen_stages": 5}, "frozen_stages"),
    ({"norm": "layernorm"}, "norm"),
    ({"norm": "gn", "norm_groups": 24}, "norm_groups"),
    ({"in_channels": 0}, "in_channels"),
]


@pytest.mark.parametrize("kwargs,argument", BAD_ARGUMENTS)
def test_bad_arguments_are_plain_errors_naming_the_argument(kwargs, argument):
    kwargs = {"name": "resnet50", **kwargs}
    with pytest.raises(ValueError, match=f"^{argument}") as err:
        with torch.device("meta"):
            ResNetBackbone(**kwargs)
    assert not isinstance(err.value, ConfigError) and "model.backbone" not in str(err.value)


@pytest.mark.parametrize("kwargs,argument", BAD_ARGUMENTS)
def test_the_config_layer_adds_the_key(kwargs, argument):
    cfg = load_config("sample/fcn_r18", [f"model.backbone.{k}={v}" for k, v in {"name": "resnet50", **kwargs}.items()])
    with pytest.raises(ConfigError, match=rf"model\.backbone\.{argument.split()[0]}"):
        with torch.device("meta"):
            build_backbone(cfg.model.backbone)


def test_the_backbone_imports_nothing_from_the_config_layer():
    # the package's __init__ (build_model) is config-aware; the reusable module itself is not
    tree = ast.parse((Path(__file__).resolve().parents[2] / "segkit/models/backbone.py").read_text())
    imported = {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    imported |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    assert not {m for m in imported if "config" in m or m.startswith(("omegaconf", "segkit"))}, imported


def test_unknown_backbone_lists_the_valid_ones():
    with pytest.raises(ValueError, match="resnet18, resnet34, resnet50"):
        ResNetBackbone("resnet42")
