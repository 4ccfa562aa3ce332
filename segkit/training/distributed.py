"""Single process, or DDP under ``torchrun`` (one process per GPU, any number of nodes).

``torchrun`` sets RANK, WORLD_SIZE and LOCAL_RANK; ``setup`` reads them, joins the process
group (nccl on CUDA, gloo on CPU) and picks ``cuda:LOCAL_RANK``. Only rank 0 logs and writes.

Elastic restarts (``torchrun --max-restarts=N``): torchrun's agent keeps one TCPStore for the whole
job, across restarts (static rendezvous caches it; c10d rendezvous shares it since torch 2.4,
pytorch/pytorch#128096), and ``init_process_group`` then reads the process-group keys of the
previous round: a restarted rank finds the dead worker's gloo address (Connection refused) or
waits for peers that never answer (a hang), pytorch/pytorch#135712. So under the agent's store
segkit never puts process-group keys there: rank 0 hosts a fresh store per round on a free port and
publishes its address (with a nonce) in the agent's store; the others retry until they reach the
store with that nonce, and everything has ``train.dist_timeout`` to finish (``join``).
"""

from __future__ import annotations

import datetime
import os
import signal
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any, Callable, List, Optional

import torch
import torch.distributed as dist
import torch.nn as nn

from segkit.config import ConfigError
from segkit.errors import SegkitError
from segkit.runtime import resolve_device

STATIC_HINT = (
    "workers restarted under static rendezvous (--master_addr/--master_port) cannot always meet again: "
    "use --rdzv-backend=c10d --rdzv-endpoint=HOST:PORT"
)


class DistributedSetupError(SegkitError, RuntimeError):
    """The processes of a torchrun job could not meet within train.dist_timeout."""

    exit_code = 1  # the run started and failed: torchrun may restart it


def restart_count() -> int:
    """How often torchrun has restarted this job's workers (0: the first start, or no torchrun)."""
    try:
        return int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0"))
    except ValueError:
        return 0


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


def setup(device_name: str = "auto", backend: str = "auto", timeout: float = 300.0) -> DistEnv:
    """Join the process group torchrun describes (or the one already joined), else run alone.
    ``timeout`` (seconds, ``train.dist_timeout``) bounds the join and every collective."""
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
        join(backend, device, timeout)
        owns = True
        watch_agent()
    env = DistEnv(dist.get_rank(), dist.get_world_size(), local_rank, device, owns)
    if env.distributed:
        env.control_group = dist.new_group(backend="gloo") if dist.get_backend() != "gloo" else dist.group.WORLD
    return env


def join(backend: str, device: torch.device, timeout: float) -> None:
    """``init_process_group`` with a deadline, on a store with no keys from an earlier round."""
    rank, world = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    addr = f"{os.environ.get('MASTER_ADDR', '?')}:{os.environ.get('MASTER_PORT', '?')}"
    delta = datetime.timedelta(seconds=timeout)
    device_id = device if device.type == "cuda" else None
    try:
        if os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True":
            store = round_store(rank, timeout)
            dist.init_process_group(
                backend, store=store, rank=rank, world_size=world, timeout=delta, device_id=device_id
            )
        else:  # env:// (rank 0 hosts a new store each start): nothing stale to read
            dist.init_process_group(backend, timeout=delta, device_id=device_id)
        dist.barrier()  # every rank has joined, inside the deadline
    except DistributedSetupError:
        raise
    except Exception as exc:  # DistStoreError, DistNetworkError, gloo/NCCL RuntimeErrors, TimeoutError
        raise setup_error(rank, world, addr, timeout, exc) from exc


def setup_error(rank: int, world: int, addr: str, timeout: float, exc: BaseException) -> DistributedSetupError:
    restarts = restart_count()
    detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if restarts:
        cause = f"this is restart {restarts} by torchrun: a peer did not restart with it, or {STATIC_HINT}"
    else:
        cause = (
            "a node did not start, or cannot reach that address (firewall, wrong --rdzv-endpoint/--master_addr), "
            "or --nnodes/--nproc_per_node differ between the nodes"
        )
    return DistributedSetupError(
        f"rank {rank} of {world} could not join the process group at {addr} within train.dist_timeout="
        f"{timeout:g}s ({detail}). Likely cause: {cause}."
    )


ROUND_KEY = "segkit/round_store"


def round_store(rank: int, timeout: float) -> Any:
    """A store for this round's process group: rank 0 hosts it on a free port and publishes
    ``port nonce`` in torchrun's agent store; the others connect to it once they see a nonce the
    store itself holds (a published value may be the last round's, whose store died with its rank 0)."""
    host, port = os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"])
    delta = datetime.timedelta(seconds=timeout)
    agent = dist.TCPStore(host, port, is_master=False, timeout=delta)
    key = f"{ROUND_KEY}/{os.environ.get('TORCHELASTIC_RUN_ID', '')}"
    if rank == 0:
        nonce = uuid.uuid4().hex
        own = dist.TCPStore(host, 0, is_master=True, timeout=delta, wait_for_workers=False)
        own.set("nonce", nonce)
        agent.set(key, f"{own.port} {nonce}")
        return dist.PrefixStore("segkit", own)
    deadline = time.monotonic() + timeout
    while True:
        port_text, nonce = agent.get(key).decode().split()
        try:
            socket.create_connection((host, int(port_text)), timeout=2).close()  # quiet when it is gone
            own = dist.TCPStore(host, int(port_text), is_master=False, timeout=datetime.timedelta(seconds=2))
            if own.get("nonce").decode() == nonce:
                own.set_timeout(delta)
                return dist.PrefixStore("segkit", own)
        except Exception:  # the last round's store (gone: refused), or another process on a reused port
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"rank 0's store for this round never appeared (last seen: port {port_text})")
        time.sleep(0.2)


def watch_agent() -> None:
    """Under torchrun: if the agent dies (kill -9, a lost node), its workers are orphaned and would
    train on without it; a SIGTERM to this process instead saves a checkpoint and stops, as on one machine."""
    if "TORCHELASTIC_RUN_ID" not in os.environ or not hasattr(os, "getppid"):
        return
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="segkit-agent-watch", daemon=True).start()


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
