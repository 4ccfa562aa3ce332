"""`segkit infer` on a disk that fills (issue 19 item 7): every file goes to a temporary name and is renamed,
so rerun over earlier outputs on a full tmpfs it leaves each earlier mask byte-identical, and the error
line names the file and says the disk is full."""

import subprocess
import sys

from tests.train_helpers import ROOT


def _infer(images, checkpoint, out, export):
    command = [sys.executable, "-m", "segkit", "infer", *map(str, images), "--checkpoint", str(checkpoint)]
    command += ["--out", str(out), "--export", "coco", str(export)]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_a_full_disk_leaves_earlier_outputs_whole_and_names_the_file(sample_run, sample_root, full_tmpfs):
    mount, fill = full_tmpfs
    images = sorted((sample_root / "images" / "val").iterdir())
    out, export = mount / "out", mount / "pred.json"
    first = _infer(images, sample_run / "last.pth", out, export)
    assert first.returncode == 0, first.stderr
    before = {p.name: p.read_bytes() for p in sorted(out.iterdir())}
    assert len([n for n in before if n.endswith("_mask.png")]) == len(images)
    export_before = export.read_bytes()

    fill()
    again = _infer(images, sample_run / "last.pth", out, export)
    assert again.returncode == 2, again.stdout + again.stderr
    lines = [line for line in again.stderr.splitlines() if "error" in line]  # the rest: the progress bar
    assert len(lines) == 1 and "Traceback" not in again.stderr, again.stderr
    assert lines[0].startswith(f"error: cannot write {out}/"), again.stderr
    assert "no space left on device (the disk is full)" in lines[0]
    assert {p.name: p.read_bytes() for p in sorted(out.iterdir())} == before  # nothing partial, no temporaries
    assert export.read_bytes() == export_before
    assert not list(mount.glob(".*.tmp*"))
