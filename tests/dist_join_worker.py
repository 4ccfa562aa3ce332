"""Run by tests/training/test_dist_join.py as one rank of a torchrun-like job (the environment says which):
joins the process group with segkit's ``setup`` (or, with ``torch`` as argument, torch's own
``init_process_group``), all-reduces a 1, prints the sum; a DistributedSetupError prints and exits 3.

usage: dist_join_worker.py TIMEOUT_SECONDS [segkit|torch]
"""

import datetime
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402

from segkit.training.distributed import DistributedSetupError, setup, teardown  # noqa: E402

timeout = float(sys.argv[1])
if sys.argv[2:] == ["torch"]:
    dist.init_process_group("gloo", timeout=datetime.timedelta(seconds=timeout))
    env = None
else:
    try:
        env = setup("cpu", "gloo", timeout)
    except DistributedSetupError as exc:
        print(f"error: {exc}", flush=True)
        sys.exit(3)
x = torch.ones(1)
dist.all_reduce(x)
print(f"sum {int(x.item())}", flush=True)
teardown(env) if env else dist.destroy_process_group()
