"""The backbone outside segkit's Segmenter: alone, as an smp encoder, behind torchvision's DeepLabV3/FCN."""

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision
from torchvision.models.segmentation import FCN, DeepLabV3
from torchvision.models.segmentation.deeplabv3 import DeepLabHead
from torchvision.models.segmentation.fcn import FCNHead

from segkit.models import ResNetBackbone, TorchvisionBackbone


# ------------------------------------------------------------------ (a) alone, as a feature extractor
def test_backbone_alone_feeds_a_custom_head():
    backbone = ResNetBackbone("resnet18", output_stride=16)
    channels = {spec.name: spec.channels for spec in backbone.feature_info}

    class TwoScaleHead(nn.Module):  # what another segmenter would write, reading channels from feature_info
        def __init__(self):
            super().__init__()
            self.deep = nn.Conv2d(channels["layer4"], 32, 1)
            self.fine = nn.Conv2d(channels["layer1"], 32, 1)
            self.classify = nn.Conv2d(32, 3, 1)

        def forward(self, f):
            deep = F.interpolate(self.deep(f["layer4"]), size=f["layer1"].shape[-2:], mode="bilinear")
            return self.classify(deep + self.fine(f["layer1"]))

    head = TwoScaleHead()
    logits = head(backbone(torch.randn(2, 3, 65, 65)))
    assert logits.shape == (2, 3, 17, 17)  # layer1: stride 4
    logits.mean().backward()
    assert backbone.layer4[0].conv1.weight.grad is not None


# ------------------------------------------------------------------ (b) as a segmentation_models.pytorch encoder
@pytest.fixture(scope="module")
def smp():
    smp = pytest.importorskip("segmentation_models_pytorch")
    from segkit.models.smp_encoder import register_smp_encoders

    names = register_smp_encoders()
    assert "segkit_resnet50" in names and "segkit_resnet50" in smp.encoders.get_encoder_names()
    return smp


@pytest.mark.parametrize("arch", ["Unet", "FPN", "DeepLabV3Plus"])
def test_smp_models_build_and_train_on_segkit_encoders(smp, arch):
    model = getattr(smp, arch)("segkit_resnet18", encoder_weights=None, classes=4).train()
    assert isinstance(model.encoder, ResNetBackbone)
    out = model(torch.randn(2, 3, 64, 96))
    assert out.shape == (2, 4, 64, 96)
    out.mean().backward()
    assert model.encoder.conv1.weight.grad is not None


def test_smp_dilation_is_segkits_own(smp):
    model = smp.DeepLabV3Plus("segkit_resnet50", encoder_weights=None, encoder_output_stride=8, classes=2)
    encoder = model.encoder
    assert encoder.output_stride == 8 and encoder.out_channels == [3, 64, 256, 512, 1024, 2048]
    # torchvision's rule, not smp's make_dilated: the first dilated block keeps the previous rate
    assert [b.conv2.dilation[0] for b in encoder.layer3[:2]] == [1, 2]
    assert [b.conv2.dilation[0] for b in encoder.layer4[:2]] == [2, 4]
    features = encoder(torch.randn(1, 3, 64, 64))
    assert [tuple(f.shape[1:]) for f in features] == [
        (3, 64, 64),
        (64, 32, 32),
        (256, 16, 16),
        (512, 8, 8),
        (1024, 8, 8),
        (2048, 8, 8),
    ]
    with pytest.raises(ValueError, match="built at output stride 8"):
        encoder.make_dilated(16)


def test_smp_encoder_depth_and_input_channels(smp):
    model = smp.Unet(
        "segkit_resnet18",
        encoder_weights=None,
        encoder_depth=3,
        decoder_channels=(64, 32, 16),
        in_channels=1,
        classes=2,
    )
    assert model.encoder.out_channels == [1, 64, 64, 128]
    assert model.encoder.conv1.in_channels == 1
    assert len(model.encoder(torch.randn(1, 1, 64, 64))) == 4  # layer3 and layer4 are not run
    assert model(torch.randn(1, 1, 64, 64)).shape == (1, 2, 64, 64)


def test_smp_has_no_imagenet_weights_for_segkit_encoders(smp):
    with pytest.raises(KeyError, match="Wrong pretrained weights `imagenet`"):
        smp.Unet("segkit_resnet18", encoder_weights="imagenet")


# ------------------------------------------------------------------ (c) behind torchvision's DeepLabV3 / FCN classes
@torch.no_grad()
def test_torchvision_deeplabv3_runs_on_segkit_backbone_with_torchvisions_weights():
    reference = torchvision.models.segmentation.deeplabv3_resnet50(
        weights=None, weights_backbone=None, num_classes=21, aux_loss=True
    ).eval()
    with torch.device("meta"):  # every tensor is loaded below: no time spent on random initialisation
        model = DeepLabV3(
            TorchvisionBackbone(ResNetBackbone("resnet50", output_stride=8)), DeepLabHead(2048, 21), FCNHead(1024, 21)
        )
    model = model.to_empty(device="cpu").eval()
    model.load_state_dict(reference.state_dict(), strict=True)  # the same names, key for key
    x = torch.randn(1, 3, 41, 53)
    expected, got = reference(x), model(x)
    for key in ("out", "aux"):
        torch.testing.assert_close(got[key], expected[key], rtol=0, atol=1e-5)


def test_torchvision_fcn_on_a_resnet18_at_output_stride_8():
    # something torchvision cannot build itself: its BasicBlock does not dilate
    backbone = TorchvisionBackbone(ResNetBackbone("resnet18", output_stride=8, frozen_stages=1))
    model = FCN(backbone, FCNHead(backbone.out_channels, 5), FCNHead(backbone.aux_channels, 5)).train()
    assert not backbone.layer1.training  # train() goes through the backbone: frozen stages stay frozen
    out = model(torch.randn(2, 3, 57, 71))
    assert out["out"].shape == out["aux"].shape == (2, 5, 57, 71)
    (out["out"].mean() + out["aux"].mean()).backward()
    assert backbone.layer4[0].conv1.weight.grad is not None and backbone.layer1[0].conv1.weight.grad is None
    assert "backbone.layer1.0.conv1.weight" in model.state_dict()  # torchvision's names, no wrapper prefix
