"""Decoders x backbones x output strides, invalid combinations, norms, and torchvision's segmentation models."""

import warnings

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

from segkit.config import ConfigError, load_config
from segkit.models import DECODERS, build_model, convert_torchvision_segmentation
from tests.model_helpers import randomise_norm_stats

SAMPLE = "configs/_base/datasets/sample.yaml"  # 6 classes


def _cfg(*overrides, path=SAMPLE):
    return load_config(path, list(overrides))


def _build(*overrides, path=SAMPLE):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # U-Net on a dilated backbone says what it does; tested below
        return build_model(_cfg(*overrides, path=path))


# ------------------------------------------------------------------ every combination runs, forward and backward
@pytest.mark.parametrize("output_stride", [8, 16, 32])
@pytest.mark.parametrize("backbone,size", [("resnet18", (97, 131)), ("resnet50", (25, 39))])
@pytest.mark.parametrize("decoder", list(DECODERS))
def test_decoder_backbone_stride_runs_on_odd_sizes(decoder, backbone, size, output_stride):
    model = _build(
        f"model.decoder.name={decoder}",
        f"model.backbone.name={backbone}",
        f"model.backbone.output_stride={output_stride}",
        "model.aux_head=true",
    ).train()
    out = model(torch.randn(2, 3, *size))  # batch 2: BatchNorm in training mode needs more than one value
    assert out["out"].shape == out["aux"].shape == (2, 6, *size)
    (out["out"].mean() + 0.4 * out["aux"].mean()).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    model.eval()
    with torch.no_grad():
        assert list(model(torch.randn(1, 3, *size))) == ["out"]  # the aux head only feeds the loss


def test_unet_on_a_dilated_backbone_says_what_happens():
    with pytest.warns(UserWarning, match="output-stride-8 backbone.*do not upsample.*meant for output_stride=32"):
        build_model(_cfg("model.decoder.name=unet", "model.backbone.name=resnet18", "model.backbone.output_stride=8"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        build_model(_cfg("model.decoder.name=unet", "model.backbone.name=resnet18", "model.backbone.output_stride=32"))


@pytest.mark.parametrize("output_stride,rates", [(8, (12, 24, 36)), (16, (6, 12, 18)), (32, (3, 6, 9))])
@pytest.mark.parametrize("decoder", ["deeplabv3", "deeplabv3plus"])
def test_aspp_rates_follow_the_output_stride(decoder, output_stride, rates):
    with torch.device("meta"):
        model = build_model(
            _cfg(
                f"model.decoder.name={decoder}",
                "model.backbone.name=resnet18",
                f"model.backbone.output_stride={output_stride}",
            )
        )
    aspp = model.decoder.head[0] if decoder == "deeplabv3" else model.decoder.aspp
    assert tuple(branch[0].dilation[0] for branch in aspp.convs[1:4]) == rates
    assert isinstance(aspp.convs[4][0], nn.AdaptiveAvgPool2d)  # image pooling


def test_deeplabv3plus_separable_convs_are_depthwise():
    with torch.device("meta"):
        model = build_model(
            _cfg(
                "model.decoder.name=deeplabv3plus",
                "model.decoder.separable=true",
                "model.backbone.name=resnet18",
                "model.backbone.output_stride=16",
            )
        )
    depthwise = [m for m in model.decoder.modules() if isinstance(m, nn.Conv2d) and m.groups > 1]
    assert len(depthwise) == 5  # three ASPP branches, two decoder convs
    assert all(m.groups == m.in_channels == m.out_channels for m in depthwise)
    assert model.decoder.skip[0].out_channels == 48


# ------------------------------------------------------------------ norms in the decoders
@pytest.mark.parametrize("decoder", list(DECODERS))
def test_group_norm_decoders_build_and_train(decoder):
    model = _build(
        f"model.decoder.name={decoder}",
        "model.backbone.name=resnet18",
        "model.backbone.norm=gn",
        "model.backbone.norm_groups=16",
        "model.backbone.output_stride=16",
        "model.aux_head=true",
    ).train()
    assert any(isinstance(m, nn.GroupNorm) for m in model.decoder.modules())
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    model(torch.randn(1, 3, 45, 61))["out"].sum().backward()  # group norm does not need a batch


@pytest.mark.parametrize("decoder", ["deeplabv3", "deeplabv3plus"])
def test_batchnorm_deeplab_with_one_image_per_batch_says_what_to_change(decoder):
    model = _build(f"model.decoder.name={decoder}", "model.backbone.name=resnet18", "model.backbone.output_stride=16")
    with pytest.raises(ValueError, match=r"train\.batch_size >= 2.*model\.backbone\.norm=gn"):
        model.train()(torch.randn(1, 3, 45, 61))
    model.train()(torch.randn(2, 3, 45, 61))["out"].sum().backward()  # two images are enough
    with torch.no_grad():
        assert model.eval()(torch.randn(1, 3, 45, 61))["out"].shape == (1, 6, 45, 61)  # inference is not affected


def test_syncbn_builds_and_runs_on_cpu_without_a_process_group():
    model = _build("model.decoder.name=deeplabv3plus", "model.backbone.name=resnet18", "model.backbone.norm=syncbn")
    assert isinstance(model.decoder.skip[1], nn.SyncBatchNorm)
    model.train()(torch.randn(2, 3, 45, 61))["out"].sum().backward()
    with torch.no_grad():
        assert model.eval()(torch.randn(1, 3, 45, 61))["out"].shape == (1, 6, 45, 61)


def test_frozen_bn_backbone_gets_trainable_decoder_norms():
    with torch.device("meta"):
        model = build_model(_cfg("model.backbone.name=resnet18", "model.backbone.norm=frozen_bn"))
    assert type(model.backbone.bn1).__name__ == "FrozenBatchNorm2d"
    assert isinstance(model.decoder.head[2], nn.BatchNorm2d)


# ------------------------------------------------------------------ invalid combinations fail at build time
@pytest.mark.parametrize(
    "overrides,key",
    [
        (["model.decoder.name=pspnet"], "model.decoder.name"),
        (["model.backbone.name=vgg16"], "model.backbone.name"),
        (["model.backbone.output_stride=4"], "model.backbone.output_stride"),
        (["model.backbone.multi_grid=[1,2,4]"], "model.backbone.multi_grid"),  # ResNet-18: 2 blocks
        (["model.decoder.name=unet", "model.decoder.unet_channels=[256,128,64,32]"], "model.decoder.unet_channels"),
        (["model.decoder.name=unet", "model.decoder.unet_channels=[256,128,0,32,16]"], "model.decoder.unet_channels"),
        (["model.decoder.name=deeplabv3plus", "model.backbone.norm=gn"], "model.backbone.norm_groups"),
        (["model.decoder.name=unet", "model.backbone.norm=gn"], "model.backbone.norm_groups"),
        (["model.decoder.name=deeplabv3plus", "model.decoder.skip_channels=0"], "model.decoder.skip_channels"),
        (["model.decoder.name=deeplabv3", "model.decoder.aspp_rates=[]"], "model.decoder.aspp_rates"),
        (["model.decoder.name=deeplabv3", "model.decoder.dropout=1.5"], "model.decoder.dropout"),
        (["model.decoder.name=fcn", "model.decoder.num_convs=0"], "model.decoder.num_convs"),
        (["model.decoder.name=fcn", "model.decoder.channels=-8"], "model.decoder.channels"),
        (["model.aux_head=true", "model.aux_channels=0"], "model.aux_channels"),
        (["data.num_classes=0"], "data.num_classes"),
    ],
)
def test_invalid_configs_fail_naming_the_key(overrides, key):
    cfg = _cfg("model.backbone.name=resnet18", *overrides)
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # U-Net at the default output stride 8
        with torch.device("meta"):
            build_model(cfg)


def test_unknown_decoder_lists_the_valid_ones():
    with pytest.raises(ConfigError, match="choose one of fcn, deeplabv3, deeplabv3plus, unet"):
        build_model(_cfg("model.decoder.name=pspnet"))


# ------------------------------------------------------------------ the same architecture as torchvision's
def _params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize(
    "name,config",
    [("deeplabv3_resnet50", "configs/voc/deeplabv3_r50_os8.yaml"), ("fcn_resnet50", "configs/voc/fcn_r50_os8.yaml")],
)
@torch.no_grad()
def test_torchvision_segmentation_models_are_the_same_architecture(name, config):
    reference = getattr(torchvision.models.segmentation, name)(
        weights=None, weights_backbone=None, num_classes=21, aux_loss=True
    ).eval()
    randomise_norm_stats(reference)
    with torch.device("meta"):  # every tensor is loaded below: no time spent on random initialisation
        model = build_model(load_config(config, ["model.backbone.pretrained=null"]))
    model = model.to_empty(device="cpu").eval()
    assert _params(model) == _params(reference)
    assert _params(model.decoder) == _params(reference.classifier)
    assert _params(model.aux_head) == _params(reference.aux_classifier)

    model.load_state_dict(convert_torchvision_segmentation(reference.state_dict()), strict=True)
    x = torch.randn(1, 3, 49, 67)
    expected = reference(x)
    torch.testing.assert_close(model(x)["out"], expected["out"], rtol=0, atol=1e-5)
    aux = F.interpolate(model.aux_head(model.backbone(x)), size=x.shape[-2:], mode="bilinear", align_corners=False)
    torch.testing.assert_close(aux, expected["aux"], rtol=0, atol=1e-5)


def test_conversion_rejects_other_state_dicts():
    with pytest.raises(ValueError, match="'decode_head.conv_seg.weight' is not from a torchvision"):
        convert_torchvision_segmentation({"decode_head.conv_seg.weight": torch.zeros(1)})


@pytest.mark.parametrize(
    "decoder,option,user",
    [
        ("deeplabv3plus", "model.decoder.unet_channels=[1,2,3]", "unet"),
        ("unet", "model.decoder.skip_channels=32", "deeplabv3plus"),
        ("fcn", "model.decoder.separable=true", "deeplabv3 and deeplabv3plus"),
        ("deeplabv3", "model.decoder.num_convs=2", "fcn"),
    ],
)
def test_an_option_of_another_decoder_is_an_error_naming_its_decoder(decoder, option, user):
    cfg = _cfg("model.backbone.name=resnet18", f"model.decoder.name={decoder}", option)
    key = option.split("=")[0].replace(".", r"\.")
    with pytest.raises(
        ConfigError,
        match=rf"{key}=.* is an option of the {user} decoder, not of "
        rf"model\.decoder\.name={decoder}",
    ):
        with torch.device("meta"):
            build_model(cfg)


@pytest.mark.parametrize(
    "decoder,set_to_02,default",
    [
        ("fcn", [0.2], [0.1]),  # before the classifier; null: torchvision's FCNHead's 0.1
        ("deeplabv3", [0.2], [0.5]),  # the ASPP projection; null: torchvision's 0.5
        ("deeplabv3plus", [0.2, 0.1], [0.5, 0.1]),  # the ASPP projection; the classifier's 0.1 is fixed
        ("unet", [0.2], [0.0]),  # before the classifier; null: none
    ],
)
def test_the_shared_dropout_option_sets_each_decoders_dropout_rate(decoder, set_to_02, default):
    def rates(*overrides):
        with torch.device("meta"), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # U-Net at the default output stride 8
            model = build_model(_cfg("model.backbone.name=resnet18", f"model.decoder.name={decoder}", *overrides))
        return [m.p for m in model.modules() if isinstance(m, torch.nn.Dropout)]  # in module order

    assert rates("model.decoder.dropout=0.2") == set_to_02
    assert rates() == default


def test_logits_already_at_the_input_size_skip_the_resize_and_stay_identical():
    # U-Net ends at stride 1: the same-size bilinear resize was an identity that cost a pass each way
    from segkit.models.segmenter import to_size

    logits = torch.randn(2, 5, 17, 23, requires_grad=True)
    assert to_size(logits, (17, 23)) is logits
    assert torch.equal(F.interpolate(logits, size=(17, 23), mode="bilinear", align_corners=False), logits)
    assert to_size(logits, (34, 46)).shape[-2:] == (34, 46)
    model = build_model(
        load_config(
            None,
            [
                "model.decoder.name=unet",
                "model.backbone.name=resnet18",
                "model.backbone.output_stride=32",
                "data.num_classes=3",
            ],
        )
    ).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 64, 96))["out"].shape == (1, 3, 64, 96)
