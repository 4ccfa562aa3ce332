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

import contextlib
import errno
import importlib
import os
import re
import tempfile
from pathlib import Path
from types import ModuleType
from typing import Iterator, Optional, Union


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

    cause: Optional[OSError] = None  # the OSError behind it, where there is one


REASONS = {
    errno.ENOSPC: "no space left on device (the disk is full)",
    errno.EDQUOT: "the disk quota is exceeded",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission denied",
}


def write_reason(exc: OSError) -> str:
    """Why a write failed, in words ("no space left on device (the disk is full)")."""
    return REASONS.get(exc.errno, exc.strerror or str(exc))


def os_error_behind(exc: BaseException, path: Path) -> Optional[OSError]:
    """The OSError that ``exc`` is or wraps. ``torch.save`` turns a full disk into a RuntimeError
    ("[enforce fail at inline_container.cc] unexpected pos"): the write fell short, and the folder's free
    space says whether the disk filled up."""
    seen: Optional[BaseException] = exc
    while seen is not None:
        if isinstance(seen, OSError) and not isinstance(seen, SegkitError):
            return seen
        seen = seen.__cause__ or seen.__context__
    if isinstance(exc, RuntimeError) and "unexpected pos" in str(exc):
        try:
            stats = os.statvfs(path.parent)
            full = stats.f_bavail * stats.f_frsize < 1 << 20
        except (OSError, AttributeError):
            full = False
        code = errno.ENOSPC if full else errno.EIO
        return OSError(code, os.strerror(code))
    return None


def current_umask() -> int:
    mask = os.umask(0o022)  # the only portable way to read it is to set it
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_write(
    path: Union[str, Path], durable: bool = False, prefix: Optional[str] = None, mode: Optional[int] = None
) -> Iterator[Path]:
    """A temporary path in ``path``'s folder (``.NAME.XXXX.tmp``: hidden, and no ``*.pth`` / ``*.png``
    glob of that folder, e.g. ``--resume auto`` or a data reader, sees a half-written file; writers must
    name their format rather than infer it from the suffix) for the caller to write; renamed over ``path`` when the block ends
    without an error (flushed to disk first when ``durable``), else removed. An earlier file at ``path``
    is therefore replaced whole or not at all, never by a partial one. A failed write (a full disk,
    permissions) is an ``OutputError`` naming ``path`` (its ``cause``: the OSError); the file is written with
    ``mode``, by default the umask's permissions. ``prefix``: the temporary name's start instead of ``.NAME.``
    (the studio puts its process id there, to find what a killed studio left)."""
    path, tmp = Path(path), None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=prefix or f".{path.name}.", suffix=".tmp", dir=path.parent)
        tmp = Path(name)
        os.fchmod(fd, 0o666 & ~current_umask() if mode is None else mode)  # mkstemp makes 0600 whatever the umask
        os.close(fd)
        yield tmp
        if durable:
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
        os.replace(tmp, path)
        tmp = None
    except Exception as exc:
        cause = os_error_behind(exc, path)
        if cause is None:
            raise
        blocker = _file_in_the_way(path)
        if blocker is not None:  # mkdir of a folder whose name a file holds: "File exists" would mislead
            why = f"{blocker} is a file, not a folder; write to a path in a folder, or move that file away"
        else:
            why = write_reason(cause) + (f"; the earlier {path.name} is unchanged" if path.is_file() else "")
        error = OutputError(f"cannot write {path}: {why}")
        error.cause = cause
        raise error from exc
    finally:
        if tmp is not None:
            tmp.unlink(missing_ok=True)


def _file_in_the_way(path: Path) -> Optional[Path]:
    """The first of ``path``'s folders that exists as something other than a folder, or None."""
    for folder in reversed(path.parents):
        if folder.exists() and not folder.is_dir():
            return folder
    return None


def write_text_atomically(path: Union[str, Path], text: str) -> Path:
    """``path.write_text(text)`` through ``atomic_write``: the earlier file stays whole if it fails."""
    with atomic_write(path) as tmp:
        tmp.write_text(text)
    return Path(path)


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
