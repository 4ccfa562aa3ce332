"""Loss terms: ignore_index everywhere, class weights, OHEM selection, smp terms, aux weight, errors."""

import math

import pytest
import torch
import torch.nn.functional as F

from segkit.config import load_config
from segkit.data.stats import class_weights
from segkit.training.losses import CrossEntropy, OhemCrossEntropy, build_loss

IGNORE = 255


def _cfg(*overrides):
    return load_config(None, ["data.num_classes=4", f"data.ignore_index={IGNORE}", *overrides])


def _batch(seed=0, n=2, c=4, h=9, w=11):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, c, h, w, generator=g, requires_grad=True)
    target = torch.randint(0, c, (n, h, w), generator=g)
    target[:, :2] = IGNORE
    return logits, target


def test_ce_matches_torch_with_ignore_and_weights():
    logits, target = _batch()
    w = [0.5, 1.0, 2.0, 3.0]
    ours = CrossEntropy(IGNORE, w)(logits, target)
    ref = F.cross_entropy(logits, target, weight=torch.tensor(w), ignore_index=IGNORE)
    assert torch.allclose(ours, ref, atol=1e-6)
    assert torch.allclose(CrossEntropy(IGNORE)(logits, target), F.cross_entropy(logits, target, ignore_index=IGNORE))


def test_all_ignored_batch_gives_zero_not_nan():
    """A crop of padding only must not look like a divergence (NaN stops training)."""
    logits, target = _batch()
    target[:] = IGNORE
    for name in ("ce", "ohem", "dice", "lovasz", "focal"):
        loss, _ = build_loss(_cfg(f"loss.terms=[{{name: {name}}}]"))({"out": logits}, target)
        assert loss.item() == 0.0, name
        loss.backward()
        assert torch.isfinite(logits.grad).all(), name
        logits.grad = None


@pytest.mark.parametrize("name", ["ce", "ohem", "dice", "lovasz", "focal"])
def test_ignored_pixels_do_not_matter(name):
    logits, target = _batch()
    criterion = build_loss(_cfg(f"loss.terms=[{{name: {name}, ohem_min_kept: 10}}]"))
    loss, _ = criterion({"out": logits}, target)
    loss.backward()
    assert logits.grad[:, :, :2].abs().max() == 0  # no gradient where the label is ignored
    changed = logits.detach().clone()
    changed[:, :, :2] = 100.0
    assert torch.allclose(criterion({"out": changed}, target)[0], loss.detach(), atol=1e-6)


def test_ohem_keeps_hard_pixels_or_at_least_min_kept():
    logits, target = _batch(n=1, h=20, w=20)
    valid = target != IGNORE
    ce = F.cross_entropy(logits.detach(), torch.where(valid, target, 0), reduction="none")
    prob = torch.exp(-ce)
    hard = valid & (prob < 0.7)
    assert 10 < hard.sum() < valid.sum()  # the threshold selects a strict subset here
    expected = ce[hard].mean()
    assert torch.allclose(OhemCrossEntropy(IGNORE, thresh=0.7, min_kept=5)(logits, target), expected, atol=1e-6)
    # min_kept above the pixel count: every labelled pixel counts, i.e. plain cross-entropy
    assert torch.allclose(
        OhemCrossEntropy(IGNORE, thresh=0.7, min_kept=10**6)(logits, target),
        F.cross_entropy(logits, target, ignore_index=IGNORE),
        atol=1e-6,
    )
    # few hard pixels: the min_kept hardest are kept instead
    k = int(hard.sum()) + 20
    hardest = ce[valid].sort(descending=True).values[:k]
    assert torch.allclose(OhemCrossEntropy(IGNORE, thresh=0.7, min_kept=k)(logits, target), hardest.mean(), atol=1e-5)


def test_terms_combine_with_weights_and_aux():
    logits, target = _batch()
    aux = logits.detach() * 0.5
    cfg = _cfg("loss.terms=[{name: ce, weight: 1.0}, {name: dice, weight: 0.5}]", "loss.aux_weight=0.4")
    total, parts = build_loss(cfg)({"out": logits, "aux": aux}, target)
    expected = parts["ce"] + 0.5 * parts["dice"] + 0.4 * (parts["aux_ce"] + 0.5 * parts["aux_dice"])
    assert torch.allclose(total, expected)
    assert set(parts) == {"ce", "dice", "aux_ce", "aux_dice"}
    no_aux, _ = build_loss(_cfg("loss.terms=[{name: ce}, {name: dice, weight: 0.5}]", "loss.aux_weight=0"))(
        {"out": logits, "aux": aux}, target
    )
    assert torch.allclose(no_aux, parts["ce"] + 0.5 * parts["dice"])


def test_auto_class_weights_come_from_median_frequency(sample_root):
    from segkit.data import build_dataset

    cfg = load_config(
        "configs/sample/deeplabv3plus_r18.yaml",
        [f"data.root={sample_root}", "loss.terms=[{name: ce, class_weights: auto}]"],
    )
    with pytest.raises(ValueError, match="auto"):
        build_loss(cfg)
    weights = class_weights(build_dataset(cfg.data, "train"))
    criterion = build_loss(cfg, weights)
    assert criterion.terms["ce"].weight.tolist() == pytest.approx(weights)
    assert weights[0] < 1 < max(weights)  # background is the most frequent class


@pytest.mark.parametrize(
    "override, message",
    [
        ("loss.terms=[{name: cee}]", "unknown loss 'cee'.*loss.terms\\[0\\].name"),
        ("loss.terms=[{name: ce, class_weights: [1, 2]}]", "loss.terms\\[0\\].class_weights has 2 values"),
        ("loss.terms=[{name: lovasz, class_weights: [1, 1, 1, 1]}]", "Lovasz loss takes no class weights"),
        ("loss.terms=[{name: ce, class_weights: median}]", "use auto, null or a list"),
    ],
)
def test_bad_loss_config_names_the_key(override, message):
    with pytest.raises(ValueError, match=message):
        build_loss(_cfg(override))


def test_focal_and_dice_class_weights_are_used():
    logits, target = _batch()
    for name in ("dice", "focal"):
        plain = build_loss(_cfg(f"loss.terms=[{{name: {name}}}]"))({"out": logits}, target)[0]
        weighted = build_loss(_cfg(f"loss.terms=[{{name: {name}, class_weights: [10, 0.1, 0.1, 0.1]}}]"))(
            {"out": logits}, target
        )[0]
        assert math.isfinite(weighted.item()) and not torch.allclose(plain, weighted), name
