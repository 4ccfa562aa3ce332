"""Backbone weights: torchvision files and downloads (simulated offline), segkit checkpoints, and what must fail."""

from urllib.error import URLError

import pytest
import torch
import torch.nn as nn
import torchvision

from segkit.checkpoint import save_checkpoint
from segkit.config import ConfigError, load_config
from segkit.models import ResNetBackbone, build_model, load_backbone_weights
from tests.model_helpers import randomise_norm_stats
from tests.train_helpers import assert_same_tensors


@pytest.fixture(scope="module")
def resnet18_file(tmp_path_factory):
    """A torchvision ResNet-18 state dict with non-trivial norm statistics, saved as a .pth file."""
    reference = randomise_norm_stats(torchvision.models.resnet18(weights=None).eval())
    path = tmp_path_factory.mktemp("weights") / "resnet18-torchvision.pth"
    torch.save(reference.state_dict(), path)
    return path, reference


def _cfg(*overrides):
    return load_config("configs/sample/fcn_r18.yaml", ["model.backbone.output_stride=32", *overrides])


def test_torchvision_file_loads_through_the_config(resnet18_file):
    path, reference = resnet18_file
    model = build_model(_cfg(f"model.backbone.pretrained={path}"))
    own = model.backbone.state_dict()
    for key, value in reference.state_dict().items():
        if not key.startswith("fc."):
            assert torch.equal(own[key], value), key


def test_only_fc_is_left_over(resnet18_file):
    report = load_backbone_weights(ResNetBackbone("resnet18"), resnet18_file[0])
    assert sorted(report.left_over) == ["fc.bias", "fc.weight"]
    assert report.loaded == len(ResNetBackbone("resnet18").state_dict())


def test_offline_torchvision_download_says_how_to_pass_a_file(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # no cached copy can answer instead

    def no_network(url, *args, **kwargs):
        raise URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    with pytest.raises(ConfigError) as err:
        build_model(_cfg("model.backbone.pretrained=torchvision"))
    message = str(err.value)
    assert "https://download.pytorch.org/models/resnet18-" in message
    assert "model.backbone.pretrained=/path/to/resnet18-" in message
    assert "URLError" in message


def test_deep_stem_with_torchvision_weights_fails_before_any_download(monkeypatch):
    def must_not_download(*args, **kwargs):
        raise AssertionError("tried to download")

    monkeypatch.setattr(torch.hub, "download_url_to_file", must_not_download)
    with pytest.raises(ConfigError, match="deep_stem=false"):
        build_model(_cfg("model.backbone.pretrained=torchvision", "model.backbone.deep_stem=true"))


def test_segkit_checkpoint_gives_its_backbone(tmp_path):
    trained = build_model(_cfg())
    save_checkpoint(tmp_path / "last.pth", {"model": trained.state_dict(), "config": {}, "meta": {}})
    # a different decoder: only the backbone is taken from the checkpoint
    model = build_model(_cfg("model.decoder.name=deeplabv3", f"model.backbone.pretrained={tmp_path / 'last.pth'}"))
    assert_same_tensors(model.backbone.state_dict(), trained.backbone.state_dict(), "backbone")


def test_ddp_prefixed_state_dict_loads(resnet18_file, tmp_path):
    path, reference = resnet18_file
    torch.save({f"module.{k}": v for k, v in reference.state_dict().items()}, tmp_path / "ddp.pth")
    backbone = ResNetBackbone("resnet18")
    load_backbone_weights(backbone, tmp_path / "ddp.pth")
    assert torch.equal(backbone.conv1.weight, reference.conv1.weight)


def test_file_for_another_depth_fails_naming_keys(resnet18_file):
    with torch.device("meta"):  # the check needs only the shapes
        resnet34, resnet50 = ResNetBackbone("resnet34"), ResNetBackbone("resnet50")
    with pytest.raises(ConfigError) as err:
        load_backbone_weights(resnet34, resnet18_file[0])
    message = str(err.value)
    assert "does not fit backbone resnet34" in message and "missing: layer1.2." in message
    assert "model.backbone.name" in message
    with pytest.raises(ConfigError, match="shape mismatches: layer1.0.conv1.weight"):
        load_backbone_weights(resnet50, resnet18_file[0])


@torch.no_grad()
def test_frozen_bn_loads_a_batchnorm_file(resnet18_file):
    path, reference = resnet18_file
    frozen = ResNetBackbone("resnet18", norm="frozen_bn")
    load_backbone_weights(frozen, path)  # was rejected: BatchNorm's num_batches_tracked had nowhere to go
    plain = ResNetBackbone("resnet18").eval()
    load_backbone_weights(plain, path)
    x = torch.randn(1, 3, 64, 64)
    # frozen BN folds the statistics into one scale and shift, BN computes (x - mean) / std * w + b: the same
    # function in another float order, ~1e-5 apart after 17 layers (failed at 1.4e-5 in a full run)
    torch.testing.assert_close(frozen(x)["layer4"], plain(x)["layer4"], rtol=1e-4, atol=1e-4)


def test_group_norm_cannot_take_batchnorm_statistics(resnet18_file):
    with pytest.raises(ConfigError, match="norm=GroupNorm.*unexpected: bn1.running_mean"):
        load_backbone_weights(ResNetBackbone("resnet18", norm="gn"), resnet18_file[0])


@torch.no_grad()
def test_rgb_weights_adapt_to_one_input_channel(resnet18_file):
    grey_model, rgb_model = ResNetBackbone("resnet18", in_channels=1).eval(), ResNetBackbone("resnet18").eval()
    for model in (grey_model, rgb_model):
        load_backbone_weights(model, resnet18_file[0])
    grey = torch.randn(1, 1, 48, 48)  # a grey image gives what it gave as RGB
    torch.testing.assert_close(
        grey_model(grey)["layer2"], rgb_model(grey.expand(1, 3, -1, -1))["layer2"], rtol=1e-4, atol=1e-4
    )


@torch.no_grad()
def test_rgb_weights_adapt_to_an_extra_input_channel(resnet18_file):
    rgbx_model, rgb_model = ResNetBackbone("resnet18", in_channels=4).eval(), ResNetBackbone("resnet18").eval()
    for model in (rgbx_model, rgb_model):
        load_backbone_weights(model, resnet18_file[0])
    rgb, extra = torch.randn(1, 3, 48, 48), torch.randn(1, 1, 48, 48)  # the extra channel starts unheard
    torch.testing.assert_close(
        rgbx_model(torch.cat([rgb, extra], 1))["layer2"], rgb_model(rgb)["layer2"], rtol=0, atol=1e-6
    )


@pytest.mark.parametrize(
    "content,match",
    [
        (b"not a torch file at all", "cannot be read as PyTorch weights"),
        (None, "weights_only=True"),  # a pickled nn.Module
        ({"epoch": 3}, "not a state dict or checkpoint"),
    ],
)
def test_unusable_files_fail_clearly(tmp_path, content, match):
    path = tmp_path / "weights.pth"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        torch.save(nn.Conv2d(1, 1, 1) if content is None else content, path)
    with pytest.raises(ConfigError, match=match):
        load_backbone_weights(ResNetBackbone("resnet18"), path)


def test_missing_file_names_the_key(tmp_path):
    with pytest.raises(ConfigError, match=r"not found: .*nope\.pth \(model\.backbone\.pretrained\)"):
        build_model(_cfg(f"model.backbone.pretrained={tmp_path / 'nope.pth'}"))
