"""The training augmentation: image and mask stay aligned, masks stay class ids, padding is ignore_index."""

import albumentations as A
import cv2
import numpy as np
import pytest

from segkit.data import train_transform
from segkit.data.transforms import photometric_distortion, random_scale
from tests.data_files import data_cfg


def _pattern(seed: int, h: int = 96, w: int = 160) -> np.ndarray:
    """A black image with white boxes and discs of many sizes, asymmetric so that a flip or a shift shows."""
    rng = np.random.default_rng(seed)
    image = np.zeros((h, w, 3), np.uint8)
    for _ in range(40):
        x, y, r = int(rng.integers(0, w)), int(rng.integers(0, h)), int(rng.integers(2, 12))
        if rng.random() < 0.5:
            cv2.rectangle(image, (x, y), (x + 2 * r, y + r), (255, 255, 255), -1)
        else:
            cv2.circle(image, (x, y), r, (255, 255, 255), -1)
    return image


def _mask_of(image: np.ndarray) -> np.ndarray:
    # photometric distortion keeps black <= 48 and white >= 95 on a grey image (+-32, x0.5..1.5 either order)
    return (image.mean(-1) > 72).astype(np.int32)


def _interior(mask: np.ndarray) -> np.ndarray:
    """Pixels at least 2 px from a class edge and from the crop's border (bilinear edges are fuzzy)."""
    kernel = np.ones((5, 5), np.uint8)
    inside = [
        cv2.erode((mask == c).astype(np.uint8), kernel, borderType=cv2.BORDER_CONSTANT, borderValue=0) for c in (0, 1)
    ]
    return (inside[0] | inside[1]).astype(bool)


@pytest.mark.parametrize("base_size", [None, 80])
def test_image_and_mask_stay_aligned_through_the_training_pipeline(base_size):
    cfg = data_cfg(
        num_classes=2,
        crop_size=[64, 64],
        scale_range=[0.5, 2.0],
        base_size=base_size,
        hflip=True,
        photometric=True,
        ignore_index=255,
    )
    transform = train_transform(cfg, seed=0)
    for draw in range(40):
        image = _pattern(draw)
        out = transform(image=image, mask=_mask_of(image))
        img, mask = out["image"], out["mask"]
        assert img.dtype == np.uint8 and img.shape == (64, 64, 3) and mask.shape == (64, 64)
        interior = _interior(mask)
        assert (_mask_of(img)[interior] == mask[interior]).all(), draw  # a flip or crop on one side only fails this
        if (mask == 255).any():  # padding, where the scaled image ran short of the crop: black in the image
            assert _mask_of(img)[mask == 255].max() == 0


@pytest.mark.parametrize("base_size", [None, 80])
def test_mask_resampling_is_centre_aligned_with_the_image(base_size):
    """cv2's INTER_NEAREST samples at floor(x / scale), half a pixel off the bilinear image: edges drift
    (97% agreement here). INTER_NEAREST_EXACT samples pixel centres, as the bilinear image does."""
    transform = A.Compose([random_scale(data_cfg(num_classes=2, scale_range=[0.5, 2.0], base_size=base_size))], seed=0)
    agreement = []
    for draw in range(40):
        image = _pattern(draw)
        out = transform(image=image, mask=(image[..., 0] > 127).astype(np.int32))
        agreement.append(((out["image"][..., 0] > 127) == out["mask"]).mean())
    assert np.mean(agreement) > 0.99 and min(agreement) > 0.98


def test_masks_keep_class_ids_and_pad_with_the_configured_ignore_index():
    cfg = data_cfg(num_classes=10, ignore_index=7, crop_size=[64, 64], scale_range=[0.5, 2.0])
    transform = train_transform(cfg, seed=1)
    rng = np.random.default_rng(0)
    mask = rng.choice(np.array([0, 5, 9], np.int32), size=(24, 40))  # a small image: the crop always pads
    image = rng.integers(0, 256, (24, 40, 3), dtype=np.uint8)
    seen = set()
    for _ in range(20):
        seen.update(np.unique(transform(image=image, mask=mask)["mask"]).tolist())
    assert seen == {0, 5, 9, 7}  # nearest-neighbour only (no 2, 3, 4 ...), and the pad is ignore_index=7


def test_photometric_distortion_follows_mmsegmentation_ranges():
    grey = np.full((8, 8, 3), 100, np.uint8)  # saturation and hue leave grey alone: brightness and contrast show
    compose = A.Compose(photometric_distortion(), seed=0)
    values = np.array([compose(image=grey)["image"][0, 0, 0] for _ in range(400)], dtype=int)
    assert values.min() >= (100 - 32) * 0.5 - 1 and values.max() <= (100 + 32) * 1.5 + 1
    assert values.min() < 50 and values.max() > 180  # the extremes of +-32 and x0.5..1.5 are reached
    unchanged = (values == 100).mean()
    assert 0.15 < unchanged < 0.35  # brightness and contrast each skipped half the time: a quarter untouched
    out = compose(image=grey)["image"]
    assert (out == out[0, 0]).all()  # colour only: no noise, no geometry
