"""from_rank0: rank 0 lists (or scans) once and every rank gets the result, or rank 0's error."""

import os

import torch.distributed as dist
import torch.multiprocessing as mp

from segkit.data import DataError
from segkit.training.distributed import DistEnv, from_rank0


def _worker(rank: int, rendezvous: str, out: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{rendezvous}", rank=rank, world_size=2)
    env = DistEnv(rank=rank, world_size=2, control_group=dist.group.WORLD)
    calls = []
    shared = from_rank0(lambda: calls.append(rank) or {"listed_by": os.getpid()}, env)
    try:
        from_rank0(lambda: (_ for _ in ()).throw(DataError("no masks in data/x")), env)
        error = ""
    except DataError as exc:
        error = str(exc)
    with open(f"{out}.{rank}", "w") as f:
        f.write(f"{shared['listed_by']} {len(calls)} {error}")
    dist.destroy_process_group()


def test_rank0_makes_it_once_and_every_rank_gets_the_result_or_the_error(tmp_path):
    mp.start_processes(
        _worker, args=(str(tmp_path / "rendezvous"), str(tmp_path / "out")), nprocs=2, start_method="fork"
    )
    lines = [(tmp_path / f"out.{r}").read_text().split(" ", 2) for r in (0, 1)]
    assert lines[0][0] == lines[1][0]  # the same listing, made by one process
    assert [line[1] for line in lines] == ["1", "0"]  # only rank 0 ran make()
    assert all(line[2] == "no masks in data/x" for line in lines)
