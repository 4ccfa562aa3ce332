"""Inference modes: slide equals whole for a model without spatial context, memory stays one
batch of crops, TTA averages the right passes."""

import pytest
import torch
import torch.nn as nn

from segkit.inference.modes import infer, slide_logits, windows


class PixelModel(nn.Module):
    """A 1x1 conv: every output pixel depends on its own input pixel only, so any tiling of the
    image gives the same logits. Records the batch shapes it sees."""

    def __init__(self, num_classes=5):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, num_classes, 1)
        self.seen = []

    def forward(self, x):
        self.seen.append(tuple(x.shape))
        return {"out": self.conv(x)}


def test_slide_equals_whole_on_an_image_larger_than_the_crop():
    model = PixelModel()
    x = torch.randn(2, 3, 77, 130)
    whole = infer(model, x, 5, mode="whole")
    slide = infer(model, x, 5, mode="slide", crop=(32, 48), stride=(20, 30))
    torch.testing.assert_close(slide, whole, rtol=1e-6, atol=1e-6)
    assert torch.equal(slide.argmax(1), whole.argmax(1))


def test_slide_holds_at_most_one_batch_of_crops():
    model = PixelModel()
    x = torch.randn(1, 3, 100, 100)
    boxes = windows(100, 100, (32, 32), (24, 24))
    slide_logits(model, x, 5, (32, 32), (24, 24), crop_batch=3)
    assert max(shape[0] for shape in model.seen) == 3
    assert sum(shape[0] for shape in model.seen) == len(boxes) == 16  # 4 x 4: offsets 0, 24, 48, 68
    assert all(shape[-2:] == (32, 32) for shape in model.seen)


def test_windows_cover_every_pixel_and_end_at_the_border():
    covered = torch.zeros(50, 71, dtype=torch.int32)
    boxes = windows(50, 71, (20, 30), (15, 25))
    for y0, x0, h, w in boxes:
        assert y0 + h <= 50 and x0 + w <= 71
        covered[y0 : y0 + h, x0 : x0 + w] += 1
    assert int(covered.min()) >= 1
    assert windows(10, 12, (64, 64), (32, 32)) == [(0, 0, 10, 12)]  # crop larger than the image: one window


def test_stride_larger_than_crop_is_refused():
    with pytest.raises(ValueError, match="no larger than the crop"):
        windows(100, 100, (32, 32), (40, 32))


def test_flip_tta_of_a_mirror_symmetric_model_changes_nothing():
    model = PixelModel()
    x = torch.randn(1, 3, 20, 31)
    torch.testing.assert_close(infer(model, x, 5, flip=True), infer(model, x, 5), rtol=1e-6, atol=1e-6)


class LopsidedModel(nn.Module):
    """A 3x3 conv with a one-sided kernel plus a left-to-right ramp: its logits of a mirrored image are not the
    mirror of its logits, so flip TTA that does not flip (or flips only one way) gives other numbers."""

    def __init__(self, num_classes=5):
        super().__init__()
        torch.manual_seed(1)
        self.conv = nn.Conv2d(3, num_classes, 3, padding=1)
        with torch.no_grad():
            self.conv.weight[..., 0] = 0  # looks at its own column and the one to its right only

    def forward(self, x):
        ramp = torch.linspace(0, 1, x.shape[-1], device=x.device)
        return {"out": self.conv(x) + ramp * torch.arange(1, self.conv.out_channels + 1)[:, None, None]}


@pytest.mark.parametrize("mode", ["whole", "slide"])
def test_flip_tta_is_the_mean_of_the_image_and_its_mirror_flipped_back(mode):
    model = LopsidedModel().eval()
    x = torch.randn(2, 3, 20, 31)
    with torch.no_grad():
        plain, mirrored = model(x)["out"], model(x.flip(-1))["out"].flip(-1)
    assert (plain - mirrored).abs().max() > 0.1  # the model is not mirror-symmetric: the check below can fail
    window = {"crop": (20, 31), "stride": (20, 31)} if mode == "slide" else {}  # one window: the whole image
    tta = infer(model, x, 5, mode=mode, flip=True, **window)
    torch.testing.assert_close(tta, (plain + mirrored) / 2, rtol=1e-5, atol=1e-5)


def test_tta_runs_every_scale_and_flip_and_returns_the_input_size():
    model = PixelModel()
    x = torch.randn(1, 3, 40, 60)
    out = infer(model, x, 5, scales=(0.5, 1.0, 1.5), flip=True)
    assert out.shape == (1, 5, 40, 60)
    assert [s[-2:] for s in model.seen] == [(20, 30), (20, 30), (40, 60), (40, 60), (60, 90), (60, 90)]


def test_resize_runs_the_model_at_that_size_and_returns_the_input_size():
    model = PixelModel()
    out = infer(model, torch.randn(1, 3, 45, 61), 5, resize=(32, 48))
    assert model.seen == [(1, 3, 32, 48)] and out.shape == (1, 5, 45, 61)


def test_unknown_mode_is_an_error():
    with pytest.raises(ValueError, match="whole or slide"):
        infer(PixelModel(), torch.randn(1, 3, 8, 8), 5, mode="tiles")
