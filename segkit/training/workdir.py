"""A training run's work dir: one run at a time (a lock file naming its owner), and a new run in a
used work dir moves the earlier run's files aside instead of overwriting or appending to them."""

from __future__ import annotations

import datetime
import errno
import json
import os
import socket
import time
from pathlib import Path
from typing import List, Optional

from segkit.errors import SegkitError

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; the lock file still names the owner
    fcntl = None

LOCK_NAME = "segkit.lock"
# what a training run writes; a new run moves these into previous/<time>/ (the new run's train.log
# opens after that)
RUN_FILES = ("last.pth", "best.pth", "iter_*.pth", "metrics.jsonl", "curves.png", "config.yaml", "tb", "train.log")


class WorkDirError(SegkitError, ValueError):
    """The work dir cannot be used (another run holds it, or it is not writable); the message says what to do."""


def _owner() -> dict:
    return {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "started": datetime.datetime.now().isoformat(timespec="seconds"),
    }


def _describe(owner: dict) -> str:
    return f"pid {owner.get('pid', '?')} on {owner.get('host', '?')}, started {owner.get('started', '?')}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


class WorkDirLock:
    """Held for a whole training run. The kernel drops the lock (``flock``) when its process dies,
    however it dies, so a lock file left by a killed run is stale and is taken over with a note.
    Where the file system has no ``flock`` the owner's pid is checked instead (same host only)."""

    def __init__(self, work: Path, say=print):
        self.path, self.say, self.fd = Path(work) / LOCK_NAME, say, None

    def __enter__(self) -> "WorkDirLock":
        while self.fd is None:
            fd = self._open()
            previous = self._read(fd)
            if not self._lock(fd, previous):
                os.close(fd)
                raise WorkDirError(
                    f"{self.path.parent} is in use by another training ({_describe(previous)}). "
                    f"Wait for it or stop it, or choose another --work-dir. If that run is gone, "
                    f"delete {self.path}."
                )
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if not same:  # the previous owner removed the file while we waited: lock the new one
                os.close(fd)
                continue
            self.fd = fd
            if previous:
                self.say(f"note: took over the stale lock of a run that is gone ({_describe(previous)})")
            os.ftruncate(fd, 0)
            os.write(fd, json.dumps(_owner()).encode())
        return self

    def _open(self) -> int:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            return os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as exc:
            raise WorkDirError(
                f"cannot write to the work dir {self.path.parent} ({exc.strerror}): choose a "
                f"writable --work-dir (or work_dir= in the config)"
            ) from exc

    @staticmethod
    def _read(fd: int) -> dict:
        try:
            return json.loads(os.pread(fd, 4096, 0) or b"{}")
        except ValueError:
            return {}

    def _lock(self, fd: int, previous: dict) -> bool:
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                return False
            except OSError as exc:
                if exc.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS):
                    raise
        mine = previous.get("host") == socket.gethostname()
        return not previous or (mine and not _pid_alive(int(previous.get("pid", 0))))

    def __exit__(self, *exc) -> None:
        if self.fd is not None:
            self.path.unlink(missing_ok=True)  # before closing: a waiting run then sees a new inode
            os.close(self.fd)
            self.fd = None


def move_aside(work: Path) -> Optional[Path]:
    """Move an earlier run's files into ``work/previous/<time>/``; returns that folder (None if nothing)."""
    work = Path(work)
    found: List[Path] = sorted({p for pattern in RUN_FILES for p in work.glob(pattern)})
    if not found:
        return None
    dest = work / "previous" / time.strftime("%Y%m%d-%H%M%S")
    dest = dest if not dest.exists() else dest.with_name(f"{dest.name}-{os.getpid()}")
    dest.mkdir(parents=True)
    for p in found:
        os.replace(p, dest / p.name)
    return dest
