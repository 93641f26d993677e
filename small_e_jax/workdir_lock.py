"""One trainer per workdir: a lock file holding the holder's process id, host and start time.

    with WorkdirLock(Path(run_dir) / "trainer.lock"):
        ...   # train

:meth:`WorkdirLock.acquire` creates the file atomically (``O_CREAT | O_EXCL``). If it exists:

* its holder is alive, or on another host (whose processes cannot be checked from here):
  :class:`WorkdirLocked`, whose one-line message names the holder and the file;
* its holder is gone (same host, no such process) or the file is unreadable: a stale lock, taken
  over with one warning line.

:meth:`WorkdirLock.release` removes the file only while it is still this lock's (same pid, host
and token), so a lock taken over by another process is never removed by the old holder.

Written here rather than with ``filelock``: its ``FileLock`` (``flock``) records no holder to
name, and its ``SoftFileLock`` breaks stale locks silently in its own record format; this run
needs a readable JSON record, a refusal naming the holder and a warning on take-over.
"""

from __future__ import annotations

import datetime
import json
import logging
import os
import socket
import uuid
from pathlib import Path
from typing import Any, Optional

log = logging.getLogger(__name__)


class WorkdirLocked(RuntimeError):
    """Another live trainer holds the lock; the message names it."""


def _alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this host (signal 0 checks without sending)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    return True


def read_lock(path: Path) -> Optional[dict[str, Any]]:
    """The record in a lock file, or None if it is missing or unreadable."""
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def describe(record: dict[str, Any]) -> str:
    return (f"pid {record.get('pid')} on {record.get('host')}, started {record.get('started_at')}")


class WorkdirLock:
    """An exclusive lock on a run directory (see module doc); a context manager."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.record: Optional[dict[str, Any]] = None  # set while held

    def acquire(self) -> "WorkdirLock":
        """Take the lock, taking over a stale one; :class:`WorkdirLocked` if it is held."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        record = {"pid": os.getpid(), "host": socket.gethostname(),
                  "started_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                  "token": uuid.uuid4().hex}
        for _ in range(3):  # a take-over races another process's at most a couple of times
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                self._check_holder()
                continue
            with os.fdopen(fd, "w") as f:
                json.dump(record, f)
            self.record = record
            return self
        raise WorkdirLocked(f"could not take the trainer lock {self.path} (another trainer keeps taking it)")

    def _check_holder(self) -> None:
        """The lock file exists: refuse if its holder may be alive, else remove it (stale)."""
        holder = read_lock(self.path)
        if holder is None:
            if not self.path.exists():
                return  # released meanwhile: try again
            reason = "unreadable lock file"
        else:
            pid, host = holder.get("pid"), holder.get("host")
            here = host == socket.gethostname()
            if not (here and isinstance(pid, int) and not _alive(pid)):
                where = "" if here else " (another host: its process cannot be checked from here)"
                raise WorkdirLocked(
                    f"{self.path.parent} is in use by another trainer ({describe(holder)}){where}; "
                    f"stop it, or delete {self.path} if it is gone")
            reason = f"{describe(holder)}: no such process"
        # Remove only the file inspected: another trainer may have replaced it in the meantime.
        if read_lock(self.path) == holder:
            try:
                self.path.unlink()
            except FileNotFoundError:
                pass
            log.warning("taking over a stale trainer lock %s (%s)", self.path, reason)

    def release(self) -> None:
        """Remove the lock file if it is still this lock's (idempotent)."""
        if self.record is not None and read_lock(self.path) == self.record:
            try:
                self.path.unlink()
            except FileNotFoundError:
                pass
        self.record = None

    def __enter__(self) -> "WorkdirLock":
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()
