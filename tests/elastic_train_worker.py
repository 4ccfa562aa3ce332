"""Run by tests/training/test_elastic.py under ``torchrun``: ``segkit train`` (the CLI, exit code and
all), except that on the first start (TORCHELASTIC_RESTART_COUNT=0) the rank named by SEGKIT_TEST_KILL_RANK
SIGKILLs itself when it begins iteration SEGKIT_TEST_KILL_AT (1-based), as the OOM killer would; with
SEGKIT_TEST_EXIT_DIR each rank writes its exit code to exit_rank<RANK> there.

usage: elastic_train_worker.py CONFIG [segkit train arguments...]
"""

import os
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from segkit.cli import run  # noqa: E402
from segkit.training import engine  # noqa: E402

kill_at = int(os.environ.get("SEGKIT_TEST_KILL_AT", "0"))
first_start = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") == "0"
if kill_at and first_start and os.environ.get("RANK") == os.environ.get("SEGKIT_TEST_KILL_RANK", "1"):
    step = engine.Trainer.step

    def step_then_die(self, it, batches):
        if it + 1 == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        return step(self, it, batches)

    engine.Trainer.step = step_then_die

code = run("train", sys.argv[1:])  # as `segkit train ...`: a SegkitError is one line and its exit code
if os.environ.get("SEGKIT_TEST_EXIT_DIR"):  # torchrun does not report its workers' exit codes on a signal
    Path(os.environ["SEGKIT_TEST_EXIT_DIR"], f"exit_rank{os.environ['RANK']}").write_text(str(code))
sys.exit(code)
