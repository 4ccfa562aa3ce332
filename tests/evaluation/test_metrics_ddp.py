"""Under DDP (two CPU processes, gloo) the all-reduced matrix equals the single-process one."""

import socket

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from segkit.evaluation.metrics import ConfusionMatrix


def _data(num_classes=4):
    g = torch.Generator().manual_seed(0)
    preds = torch.randint(0, num_classes, (6, 9, 11), generator=g)
    targets = torch.randint(0, num_classes + 1, (6, 9, 11), generator=g)
    targets[targets == num_classes] = 255
    return preds, targets


def _worker(rank: int, world: int, port: int, out) -> None:
    torch.set_num_threads(1)  # a forked child must not reuse the parent's OpenMP pool
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        preds, targets = _data()
        cm = ConfusionMatrix(4)
        for i in range(rank, len(preds), world):  # each image on exactly one rank
            cm.update(preds[i], targets[i])
        cm.all_reduce()
        out[rank] = cm.matrix.tolist()
    finally:
        dist.destroy_process_group()


def test_all_reduce_sums_the_ranks():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with mp.Manager() as manager:
        out = manager.dict()
        mp.start_processes(_worker, args=(2, port, out), nprocs=2, join=True, start_method="fork")
        results = dict(out)
    single = ConfusionMatrix(4)
    preds, targets = _data()
    single.update(preds, targets)
    assert results[0] == results[1] == single.matrix.tolist()
