"""The errors segkit shows to users. Each says what is wrong, naming the file, key or option, and how to
fix it; ``segkit`` commands catch ``SegkitError`` once (segkit/cli/__init__.py) and print it as one
``error: ...`` line, exiting with its ``exit_code`` (2 unless the class says otherwise). Any other
exception is a bug in segkit and keeps its traceback.

They stay ValueErrors (ImportError, OSError, ...) too, so code written against the older classes keeps
catching them.

``segkit.training.workdir.WorkDirError``, ``segkit.training.faults.NonFiniteLossError``,
``segkit.checkpoint.CheckpointWriteError``, ``segkit.runtime.DeviceUnavailable`` and
``segkit.studio.StudioError`` live beside the code that raises them and derive from these.
"""

from __future__ import annotations

import importlib
import re
from types import ModuleType


class SegkitError(Exception):
    """The base of every error segkit raises at users; ``segkit`` commands catch it once."""

    exit_code = 2  # the shell's "bad input" (argparse's too); a run that failed after starting says 1


class ConfigError(SegkitError, ValueError):
    """A setting that does not fit: a config file, an override or a command-line option."""


class DataError(SegkitError, ValueError):
    """A data set problem a user must fix on disk or in the config; the message says which and how."""


class CheckpointError(SegkitError, ValueError):
    """A file that cannot be used as a segkit checkpoint; the message says why and what to do."""


class MissingDependency(SegkitError, ImportError):
    """An optional package a feature needs is not installed; the message names the ``pip install``."""


class OutputError(SegkitError, OSError):
    """An output file that cannot be written where it was asked for; the message names it."""


def optional_import(module: str, extra: str, feature: str) -> ModuleType:
    """``import module``, or a ``MissingDependency`` saying that ``feature`` needs it and which extra has it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        missing = exc.name or module.split(".")[0]  # segkit.studio: the fastapi it imports
        raise MissingDependency(f"{feature} needs {missing} ({exc}): pip install 'segkit[{extra}]'") from exc


def one_line(exc: BaseException) -> str:
    """The message of ``exc`` for a one-line error. A data loader worker's error comes back to the
    main process with the worker's whole traceback in its message; keep the original message (its
    last line) and say which worker."""
    text = str(exc)
    lines = [line for line in text.splitlines() if line.strip()]
    if not text.startswith("Caught ") or "Original Traceback" not in text or len(lines) < 2:
        return text
    where = lines[0].split(" in ", 1)[-1].rstrip(".")  # "DataLoader worker process 0"
    message = re.sub(r"^[\w.]+(Error|Exception): ", "", lines[-1].strip())
    return f"{message} (raised in {where})"
