"""Environment faults as one-line errors naming the option or file and the fix (issue 10 item 9):
bad tool arguments, a data error inside a loader worker, an eval override that contradicts the
checkpoint. The work-dir faults (full disk, unwritable dir, random bytes) are in test_faults_work_dir."""

import shutil

import pytest

from segkit.errors import one_line
from tests.tool_loader import load_tool
from tests.train_helpers import CONFIG, tiny_overrides


@pytest.mark.parametrize(
    "args, message",
    [
        (["--alpha", "5"], "argument --alpha: must be between 0 (invisible) and 1 (opaque), not 5"),
        (["--batch-size", "0"], "argument --batch-size: must be 1 or more, not 0"),
        (["--out", "FILE"], "is a file; give a folder"),
    ],
)
def test_bad_infer_arguments_stop_before_any_work(sample_run, tmp_path, capsys, args, message):
    afile = tmp_path / "results.txt"
    afile.write_text("keep me")
    args = [str(afile) if a == "FILE" else a for a in args]
    with pytest.raises(SystemExit) as info:
        load_tool("infer").main(["x.png", "--checkpoint", str(sample_run / "last.pth"), *args])
    assert info.value.code == 2 and message in capsys.readouterr().err
    assert afile.read_text() == "keep me"


def test_a_data_error_in_a_loader_worker_is_one_line(sample_root, tmp_path, capsys):
    root = tmp_path / "data"
    shutil.copytree(sample_root, root)
    broken = sorted((root / "images" / "train").iterdir())[
        1
    ]  # not [0]: its pixel type is read in the main process first
    broken.write_bytes(b"not an image")
    code = load_tool("train").main(
        [
            str(CONFIG),
            *tiny_overrides(root, 8, f"data.root={root}", "data.num_workers=1", "train.val_interval=100"),
            "--work-dir",
            str(tmp_path / "work"),
        ]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert err.startswith(f"error: cannot decode image {broken}") and err.endswith(
        "(raised in DataLoader worker process 0)"
    )


def test_one_line_keeps_plain_messages():
    assert one_line(ValueError("a plain message")) == "a plain message"


def test_eval_with_a_num_classes_override_names_it(sample_run, capsys):
    assert load_tool("eval").main([str(sample_run / "last.pth"), "data.num_classes=3"]) == 2
    err = capsys.readouterr().err
    assert "None" not in err
    assert "the overrides: data.num_classes=3 but the checkpoint predicts 6 classes; leave data.num_classes out" in err
