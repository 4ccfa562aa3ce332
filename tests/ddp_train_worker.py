"""Run by tests/training/test_ddp.py under ``torchrun --nproc_per_node=2``: trains the tiny setup with DDP
(gloo, CPU) and saves, from every rank, the all-reduced confusion matrix of the last validation and the
weights that rank validated.

usage: ddp_train_worker.py WORK_DIR OVERRIDE...
"""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402

from segkit.config import load_config  # noqa: E402
from segkit.evaluation import metrics  # noqa: E402
from segkit.training import engine  # noqa: E402
from segkit.training.engine import train  # noqa: E402
from tests.train_helpers import CONFIG  # noqa: E402

matrices = []
compute = metrics.ConfusionMatrix.compute


def recording_compute(self):
    matrices.append(self.matrix.clone())  # called after all_reduce: the global matrix
    return compute(self)


metrics.ConfusionMatrix.compute = recording_compute
models = []
average_buffers = engine.average_buffers


def recording_average_buffers(model, env):
    models.append(model)  # called before each validation: the model this rank validates
    return average_buffers(model, env)


engine.average_buffers = recording_average_buffers
work = Path(sys.argv[1])
results = train(load_config(CONFIG, sys.argv[2:]), str(work))
rank = int(os.environ["RANK"])
torch.save(
    {
        "matrix": matrices[-1],
        "results": results,
        "world_size": int(os.environ["WORLD_SIZE"]),
        "weights": {k: v.detach().clone() for k, v in models[-1].state_dict().items()},
    },
    work / f"ddp_rank{rank}.pt",
)
assert not dist.is_initialized()  # train() took the process group down again
