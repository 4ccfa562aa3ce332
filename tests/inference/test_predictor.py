"""Predictor: the Python API gives the evaluation path's masks, for paths and arrays of any channel count."""

import numpy as np
import pytest
import torch

from segkit.checkpoint import CheckpointError
from segkit.data import build_dataset, build_eval_loader, read_image
from segkit.evaluation.evaluator import evaluate
from segkit.inference.predictor import Predictor, to_rgb
from segkit.runtime import inference_dtype


@pytest.fixture(scope="module")
def predictor(camvid_run):
    return Predictor.from_checkpoint(camvid_run / "last.pth", device="cpu")


def test_predict_gives_class_ids_at_the_image_size(predictor, camvid_root):
    path = sorted((camvid_root / "test").iterdir())[0]
    mask = predictor.predict(path)
    assert mask.shape == (360, 480) and mask.dtype == np.int64
    assert 0 <= mask.min() and mask.max() < 11
    assert predictor.class_names[3] == "Road" and len(predictor.palette) == 11
    assert np.array_equal(mask, predictor.predict(read_image(path)))


def test_predict_proba_is_a_distribution_whose_argmax_is_predict(predictor, camvid_root):
    image = read_image(sorted((camvid_root / "test").iterdir())[1])[:200, :240]
    probs = predictor.predict_proba(image)
    assert probs.shape == (11, 200, 240)
    np.testing.assert_allclose(probs.sum(0), 1.0, atol=1e-5)
    assert np.array_equal(probs.argmax(0), predictor.predict(image))


def test_grayscale_and_rgba_inputs_are_converted(predictor):
    rng = np.random.default_rng(0)
    grey = rng.integers(0, 256, (64, 80), dtype=np.uint8)
    rgb = np.repeat(grey[..., None], 3, axis=2)
    rgba = np.dstack([rgb, np.full_like(grey, 128)])
    want = predictor.predict(rgb)
    for image in (grey, grey[..., None], rgba, rgb.astype(np.float32) / 255):
        assert np.array_equal(predictor.predict(image), want)
    with pytest.raises(ValueError, match="expected H x W"):
        to_rgb(np.zeros((4, 4, 2), np.uint8))


def test_predictor_agrees_with_the_evaluation_path(predictor, camvid_small):
    cfg = predictor.cfg
    dataset = build_dataset(cfg.data, cfg.data.val_split)
    dataset.pairs = dataset.pairs[:2]  # two full-size images are enough, and keep the test quick
    preds = []
    cpu = torch.device("cpu")  # called as tools/eval.py calls it: the checkpoint's autocast choice
    evaluate(
        predictor.model,
        build_eval_loader(dataset, 1),
        cfg,
        cpu,
        inference_dtype(cfg, cpu),
        on_batch=lambda batch, pred: preds.append(pred[0].numpy()),
    )
    images = [dataset.read(i)[0] for i in range(len(dataset))]
    mine = list(predictor.predict_many(images, batch_size=1))
    assert len(mine) == len(preds) == 2 and all(np.array_equal(a, b) for a, b in zip(mine, preds))


def test_slide_mode_runs_on_an_image_larger_than_the_crop(camvid_run):
    predictor = Predictor.from_checkpoint(camvid_run / "last.pth", device="cpu", slide=True)
    predictor.settings.update(crop=[64, 96], stride=[48, 64])
    mask = predictor.predict(np.zeros((100, 150, 3), np.uint8))
    assert mask.shape == (100, 150)


def test_bad_checkpoints_fail_with_a_clear_message(tmp_path, camvid_run):
    not_torch = tmp_path / "notes.pth"
    not_torch.write_text("hello")
    with pytest.raises(CheckpointError, match="truncated, corrupt or not a checkpoint"):
        Predictor.from_checkpoint(not_torch)
    truncated = tmp_path / "cut.pth"
    truncated.write_bytes((camvid_run / "last.pth").read_bytes()[:5000])
    with pytest.raises(CheckpointError, match="truncated"):
        Predictor.from_checkpoint(truncated)
    foreign = tmp_path / "weights.pth"
    torch.save({"conv.weight": torch.zeros(1)}, foreign)
    with pytest.raises(CheckpointError, match="not a segkit checkpoint"):
        Predictor.from_checkpoint(foreign)
    with pytest.raises(ValueError, match="CUDA is not available"):
        if torch.cuda.is_available():
            pytest.skip("CUDA present")
        Predictor.from_checkpoint(camvid_run / "last.pth", device="cuda")
