"""The training and evaluation loaders (the ones train() and eval use), pad_collate, ShardSampler and normalize."""

import cv2
import pytest
import torch
import torch.distributed as dist

from segkit.data import (
    DataError,
    ShardSampler,
    build_dataset,
    build_eval_loader,
    build_train_loader,
    normalize,
    pad_collate,
    train_transform,
)
from segkit.data.loaders import TrainSampler
from tests.data_files import data_cfg, folder_set


def _item(h, w, index, value=1):
    return {"image": torch.full((3, h, w), 9, dtype=torch.uint8), "mask": torch.full((h, w), value), "index": index}


def test_pad_collate_pads_images_with_zero_and_masks_with_ignore_index():
    batch = pad_collate(11)([_item(4, 6, 0), _item(5, 3, 1)])
    assert batch["image"].shape == (2, 3, 5, 6) and batch["mask"].shape == (2, 5, 6)
    assert (batch["mask"][0, 4] == 11).all() and (batch["mask"][1, :, 3:] == 11).all()
    assert (batch["image"][0, :, 4] == 0).all() and (batch["image"][0, :, :4] == 9).all()
    assert batch["index"].tolist() == [0, 1]
    same = pad_collate(11)([_item(4, 6, 2), _item(4, 6, 3, value=2)])
    assert same["mask"].dtype == torch.int64 and same["mask"][1].unique().tolist() == [2]


def test_a_batch_mixing_8_bit_and_deeper_images_is_one_clear_error():
    deep = {**_item(4, 6, 1), "image": torch.zeros(3, 4, 6, dtype=torch.float32)}
    for shapes in ((_item(4, 6, 0), deep), (_item(4, 6, 0), {**deep, "image": torch.zeros(3, 5, 6)})):
        with pytest.raises(DataError, match=r"different pixel types \(float32, uint8\).*data\.value_range"):
            pad_collate(11)(list(shapes))


def _repeated_image_dataset(tmp_path):
    """One image eight times: whatever differs between items is the augmentation."""
    folder_set(tmp_path, splits=(("train", 1),))
    cfg = data_cfg(root=str(tmp_path), crop_size=[16, 16], scale_range=[0.5, 2.0])
    dataset = build_dataset(cfg, "train", train_transform(cfg))
    dataset.pairs = dataset.pairs * 8
    return dataset


def _images(loader, n):
    stream = iter(loader)
    return [next(stream)["image"] for _ in range(n)]


def test_workers_draw_different_augmentations_reproducibly(tmp_path):
    dataset = _repeated_image_dataset(tmp_path)
    first = _images(build_train_loader(dataset, 1, num_workers=2, seed=3), 4)
    # batches 0 and 1 come from workers 0 and 1: a forked worker used to copy its parent's albumentations
    # generator, so both drew the same augmentations
    assert not torch.equal(first[0], first[1])
    assert all(
        torch.equal(a, b) for a, b in zip(first, _images(build_train_loader(dataset, 1, num_workers=2, seed=3), 4))
    )
    assert not all(
        torch.equal(a, b) for a, b in zip(first, _images(build_train_loader(dataset, 1, num_workers=2, seed=4), 4))
    )
    # each sample carries its own augmentation seed: the stream does not depend on the number of workers
    assert all(
        torch.equal(a, b) for a, b in zip(first, _images(build_train_loader(dataset, 1, num_workers=0, seed=3), 4))
    )


class _ThreadReport(torch.utils.data.Dataset):
    ignore_index = 255
    transform = None

    def __len__(self):
        return 2

    def __getitem__(self, index):
        return _item(2, 2, cv2.getNumThreads())


def test_loader_settings_and_opencv_single_threaded_in_workers():
    loader = build_eval_loader(_ThreadReport(), 2, num_workers=1, pin_memory=False)
    assert loader.persistent_workers and not loader.drop_last
    assert next(iter(loader))["index"].tolist() == [1, 1]  # cv2.setNumThreads(0): no thread pool in a worker
    train = build_train_loader(_ThreadReport(), 1, num_workers=1, seed=0)
    assert train.drop_last and isinstance(train.sampler, TrainSampler)
    assert next(iter(train))["index"].tolist() == [1]


def test_shard_sampler_gives_each_image_to_exactly_one_rank():
    dataset = list(range(10))
    shards = [list(ShardSampler(dataset, num_replicas=3, rank=r)) for r in range(3)]
    assert sorted(sum(shards, [])) == dataset and [len(s) for s in shards] == [4, 3, 3]


def test_distributed_loaders_use_the_right_samplers(tmp_path):
    dataset = _repeated_image_dataset(tmp_path)
    ranks = [build_train_loader(dataset, 2, 0, seed=1, rank=r, world_size=2).sampler for r in (0, 1)]
    assert all(isinstance(s, TrainSampler) for s in ranks)
    assert not set(ranks[0].epoch(0)[0]) & set(ranks[1].epoch(0)[0])  # the processes share an epoch out
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'rendezvous'}", rank=0, world_size=1)
    try:
        assert isinstance(build_eval_loader(dataset, 2, distributed=True).sampler, ShardSampler)
    finally:
        dist.destroy_process_group()


def test_normalize_on_uint8_batches():
    images = torch.tensor([0, 128, 255], dtype=torch.uint8).view(1, 3, 1, 1).expand(2, 3, 2, 2)
    out = normalize(images, [0.5, 0.5, 0.5], [0.25, 0.5, 1.0])
    expected = (torch.tensor([0, 128, 255]) / 255.0 - 0.5) / torch.tensor([0.25, 0.5, 1.0])
    assert out.dtype == torch.float32 and torch.allclose(out[1, :, 1, 1], expected, atol=1e-6)
    assert normalize(images, [0.5] * 3, [0.5] * 3, torch.float64).dtype == torch.float64
