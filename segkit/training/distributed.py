"""Single process, or DDP under ``torchrun`` (one process per GPU, any number of nodes).

``torchrun`` sets RANK, WORLD_SIZE and LOCAL_RANK; ``setup`` reads them, joins the process
group (nccl on CUDA, gloo on CPU) and picks ``cuda:LOCAL_RANK``. Only rank 0 logs and writes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Callable, List, Optional

import torch
import torch.distributed as dist
import torch.nn as nn

from segkit.config import ConfigError
from segkit.runtime import resolve_device


@dataclass
class DistEnv:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    owns_group: bool = False  # this module created the process group and must destroy it
    control_group: Optional[Any] = None  # a gloo group for host-side flags (no GPU sync)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def setup(device_name: str = "auto", backend: str = "auto") -> DistEnv:
    """Join the process group torchrun describes (or the one already joined), else run alone."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    initialised = dist.is_available() and dist.is_initialized()
    if world <= 1 and not initialised:
        return DistEnv(device=resolve_device(device_name))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(device_name, local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    owns = False
    if not initialised:
        if backend == "auto":
            backend = "nccl" if device.type == "cuda" else "gloo"
        if backend not in ("nccl", "gloo"):
            raise ConfigError(f"train.dist_backend={backend}: choose auto, nccl or gloo")
        dist.init_process_group(backend, device_id=device if device.type == "cuda" else None)
        owns = True
    env = DistEnv(dist.get_rank(), dist.get_world_size(), local_rank, device, owns)
    if env.distributed:
        env.control_group = dist.new_group(backend="gloo") if dist.get_backend() != "gloo" else dist.group.WORLD
    return env


def teardown(env: DistEnv) -> None:
    if env.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def any_rank(flag: bool, env: DistEnv) -> bool:
    """True on every rank if ``flag`` is true on any: all ranks take the same branch. On the CPU,
    through gloo, so a per-iteration check does not wait for the GPU."""
    return bool(max_over_ranks(int(flag), env))


def max_over_ranks(value: int, env: DistEnv) -> int:
    """The largest of the ranks' host-side integers, on every rank (through gloo, no GPU sync)."""
    if not env.distributed:
        return value
    t = torch.tensor([value], dtype=torch.int64)
    dist.all_reduce(t, op=dist.ReduceOp.MAX, group=env.control_group)
    return int(t.item())


def min_over_ranks(value: torch.Tensor, env: DistEnv) -> torch.Tensor:
    if env.distributed:
        value = value.clone()
        dist.all_reduce(value, op=dist.ReduceOp.MIN)
    return value


def gather(obj: Any, env: DistEnv) -> List[Any]:
    """Every rank's ``obj`` (a list of world_size items) on every rank."""
    if not env.distributed:
        return [obj]
    out: List[Any] = [None] * env.world_size
    dist.all_gather_object(out, obj, group=env.control_group)
    return out


def from_rank0(make: Callable[[], Any], env: DistEnv) -> Any:
    """``make()`` run on rank 0 only and its result (or the exception it raised) given to every rank:
    one directory listing or mask scan per run instead of one per process."""
    if not env.distributed:
        return make()
    box: List[Any] = [None]
    if env.is_main:
        try:
            box[0] = (True, make())
        except Exception as exc:  # every rank raises it, none waits for a result that never comes
            box[0] = (False, exc)
    dist.broadcast_object_list(box, src=0, group=env.control_group)
    made, value = box[0]
    if not made:
        raise value
    return value


def average_buffers(model: nn.Module, env: DistEnv) -> None:
    """Average floating-point buffers (BatchNorm running statistics) over the ranks. Plain
    BatchNorm under DDP updates them from each rank's own batch, so without this the ranks would
    validate slightly different models, and rank 0 would save yet another."""
    if not env.distributed:
        return
    for buf in model.buffers():
        if buf.is_floating_point():
            dist.all_reduce(buf, op=dist.ReduceOp.SUM)
            buf /= env.world_size


def prepare_model(model: nn.Module, env: DistEnv, log) -> nn.Module:
    """BatchNorm -> SyncBatchNorm when several CUDA processes train; DDP wrapper when distributed."""
    if not env.distributed:
        return model
    has_sync = any(isinstance(m, nn.SyncBatchNorm) for m in model.modules())
    if env.device.type == "cuda":
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        log(f"DDP: {env.world_size} processes; BatchNorm converted to SyncBatchNorm")
    elif has_sync:
        raise ConfigError(
            "model.backbone.norm=syncbn needs CUDA processes (NCCL); with gloo on the CPU use norm=bn (or gn)"
        )
    else:
        log(
            f"DDP: {env.world_size} processes on the CPU (gloo); BatchNorm kept (SyncBatchNorm needs CUDA): "
            f"statistics are per process"
        )
    model = model.to(env.device)
    ids = [env.device.index] if env.device.type == "cuda" else None
    # broadcast_buffers (default): rank 0's BatchNorm statistics reach every rank, so all ranks validate one model
    return nn.parallel.DistributedDataParallel(model, device_ids=ids)
