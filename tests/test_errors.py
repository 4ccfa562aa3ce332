"""One error base: every error segkit raises at users is a SegkitError; `segkit <command>` turns it into one
``error:`` line and its exit code (2), and anything else, a bug, keeps its traceback."""

import importlib
import inspect
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import segkit
from segkit.cli import COMMANDS, run
from segkit.errors import MissingDependency, optional_import

ROOT = Path(__file__).resolve().parents[1]
# exceptions segkit defines that are not errors shown to users, and why
NOT_ERRORS = {
    "segkit.training.faults.TrainingInterrupted": "a stop on a signal after saving a checkpoint: "
    "`segkit train` exits 128 + the signal",
    "segkit.training.faults.ValidationAbandoned": "control flow inside Trainer.validate (a stop signal during a "
    "validation), caught there; the run then stops with TrainingInterrupted",
}


def defined_exceptions():
    """Every exception class defined in a segkit module (the modules of extras not installed left out)."""
    for info in pkgutil.walk_packages(segkit.__path__, "segkit."):
        try:
            module = importlib.import_module(info.name)
        except ImportError:  # the studio's web stack without fastapi
            continue
        for cls in vars(module).values():
            if inspect.isclass(cls) and issubclass(cls, BaseException) and cls.__module__ == module.__name__:
                yield f"{cls.__module__}.{cls.__qualname__}", cls


def test_every_error_segkit_defines_derives_from_segkit_error():
    from segkit import CheckpointError, ConfigError, DataError, SegkitError

    found = dict(defined_exceptions())
    assert {
        "segkit.training.workdir.WorkDirError",
        "segkit.studio.session.StudioError",
        "segkit.training.faults.NonFiniteLossError",
        "segkit.checkpoint.CheckpointWriteError",
    } <= set(found)
    assert all(issubclass(cls, SegkitError) for cls in (ConfigError, DataError, CheckpointError))
    assert [name for name, cls in found.items() if not issubclass(cls, SegkitError) and name not in NOT_ERRORS] == []
    assert all(issubclass(cls, ValueError) for cls in (ConfigError, DataError, CheckpointError))  # as they were


FAKE_COMMAND = """
from segkit.errors import DataError
from segkit.training.faults import NonFiniteLossError


def main(argv):
    if argv == ["data"]:
        raise DataError("data root not found: /nowhere (data.root)")
    if argv == ["nan"]:
        raise NonFiniteLossError(7, None)
    if argv == ["bug"]:
        raise ValueError("a bug in segkit")
    return None
"""


@pytest.fixture
def fake_command(tmp_path, monkeypatch):
    (tmp_path / "fake_segkit_command.py").write_text(FAKE_COMMAND)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(COMMANDS, "fake", ("fake_segkit_command", "a command for this test"))
    return "fake"


def test_the_dispatcher_prints_a_segkit_error_as_one_line_with_its_exit_code(fake_command, capsys):
    assert run(fake_command, ["data"]) == 2
    assert capsys.readouterr().err == "error: data root not found: /nowhere (data.root)\n"
    assert run(fake_command, ["nan"]) == 1  # the run started and failed: not bad input
    assert capsys.readouterr().err.startswith("error: the loss is not finite (NaN or inf) at iteration 7")
    assert run(fake_command, []) == 0


def test_any_other_exception_is_a_bug_and_keeps_its_traceback(fake_command):
    with pytest.raises(ValueError, match="a bug in segkit"):
        run(fake_command, ["bug"])


@pytest.mark.parametrize("command", [["-m", "segkit", "train"], ["tools/train.py"]])
def test_a_mistyped_key_is_one_error_line_naming_it_and_exit_2(command):
    done = subprocess.run(
        [sys.executable, *command, "sample/fcn_r18", "train.lrr=0.1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "'train.lrr'" in lines[0], done.stderr
    assert "Traceback" not in done.stderr


def test_a_missing_extra_names_the_pip_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if it were not installed
    with pytest.raises(
        MissingDependency,
        match=r"the onnxruntime backend needs onnxruntime .*"
        r"pip install 'segkit\[onnx\]'",
    ) as info:
        optional_import("onnxruntime", "onnx", "the onnxruntime backend")
    assert isinstance(info.value, ImportError)  # callers that catch ImportError still do


def test_an_unwritable_picture_is_a_segkit_error(tmp_path):
    import numpy as np

    from segkit.errors import OutputError
    from segkit.visualization.overlays import save_rgb

    (tmp_path / "file").write_text("x")
    # atomic_write's mkdir said "File exists; an earlier out.png is unchanged": neither the cause nor true
    with pytest.raises(OutputError, match=r"cannot write .*file/out.png: .*file is a file, not a folder; write to"):
        save_rgb(tmp_path / "file" / "out.png", np.zeros((4, 4, 3), np.uint8))  # its folder is a file
    with pytest.raises(OutputError, match=r"use a \.png or \.jpg path"):
        save_rgb(tmp_path / "out.nope", np.zeros((4, 4, 3), np.uint8))
