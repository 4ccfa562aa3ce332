"""Charts leave matplotlib as they found it: no backend switch (a notebook keeps its inline
backend), no pyplot import, no figure left open."""

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = """
import json, sys
import matplotlib
matplotlib.use("svg")  # a user's backend, e.g. a notebook's
from segkit.training.plots import plot_confusion, plot_iou
from segkit.training.progress import plot_curves
out = sys.argv[1]
plot_confusion([[5, 1], [2, 7]], ["a", "b"], out + "/confusion.png")
plot_iou([0.5, float("nan")], ["a", "b"], out + "/iou.png", miou=0.5)
open(out + "/metrics.jsonl", "w").write(json.dumps({"iter": 1, "loss": 1.0, "lr": 0.1}) + "\\n")
plot_curves(__import__("pathlib").Path(out + "/metrics.jsonl"), __import__("pathlib").Path(out + "/curves.png"))
print(json.dumps({"backend": matplotlib.get_backend(), "pyplot": "matplotlib.pyplot" in sys.modules}))
"""


def test_charts_keep_the_users_backend_and_never_import_pyplot(tmp_path):
    run = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path)],
        check=False,
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert json.loads(run.stdout.splitlines()[-1]) == {"backend": "svg", "pyplot": False}
    for name in ("confusion", "iou", "curves"):
        assert (tmp_path / f"{name}.png").read_bytes()[:4] == b"\x89PNG"
