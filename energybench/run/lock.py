"""One writer per run folder: ``<run>/run.lock``, held with ``flock`` by the process writing it.

The lock file says who holds it (pid, host, start time) so that a second writer (say a second
``run --resume`` of the same folder) is refused with exit 2 naming the holder. The kernel drops
an ``flock`` when its process dies, however it dies, so a lock left by a killed run is stale by
construction: the next writer takes it over and says whose it was. Readers (report, export,
plan) never take the lock: every record is written atomically. The lock file is opened without
following a link (``O_NOFOLLOW``) and must be a regular file: a ``run.lock`` planted as a link
to another file is refused, never truncated.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from energybench.errors import UserError
from energybench.records import safefs
from energybench.records.check import MAX_UNIX_S

LOCK_NAME = "run.lock"


class RunLockedError(UserError, ValueError):
    """Another live process is writing this run folder (user error, exit 2)."""


@dataclass(frozen=True)
class Holder:
    """Who wrote a lock file: process id, host name and when it took the lock."""

    pid: int | None
    host: str
    since: float | None

    @classmethod
    def read(cls, path: Path) -> Holder | None:
        """The holder recorded in ``path`` (None when the file is empty or unreadable)."""
        try:
            fd = safefs.open_nofollow(path, os.O_RDONLY)
            with os.fdopen(fd, "rb") as fh:
                data = json.loads(fh.read(65536).decode("utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(data, dict):
            return None
        pid, host, since = data.get("pid"), data.get("host"), data.get("since_unix_s")
        # a hand-edited lock: only a process id (1 .. 2^31) is ever signalled, only a date a
        # clock can show is shown (-1 would signal every process, 1e30 overflow, NaN fail)
        ok_pid = isinstance(pid, int) and not isinstance(pid, bool) and 0 < pid < 2**31
        ok_since = (
            isinstance(since, int | float)
            and not isinstance(since, bool)
            and 0 <= since <= MAX_UNIX_S  # False for NaN
        )
        return cls(
            pid if ok_pid else None,
            host[:200] if isinstance(host, str) else "?",
            since if ok_since else None,
        )

    def describe(self) -> str:
        when = (
            time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(self.since))
            if self.since is not None
            else "an unknown time"
        )
        return f"pid {self.pid if self.pid is not None else '?'} on host {self.host} since {when}"

    def alive_here(self) -> bool:
        """True when the holder's process still runs on this host."""
        if self.pid is None or self.host != socket.gethostname():
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True


class RunLock:
    """The write lock of one run folder; ``with RunLock(root) as lock:`` (``lock.note`` says
    whose stale lock was taken over, if any)."""

    def __init__(self, root: Path) -> None:
        self.path = Path(root) / LOCK_NAME
        self.note: str | None = None
        self._fd: int | None = None

    def acquire(self) -> RunLock:
        """Take the lock or raise :class:`RunLockedError` naming the holder."""
        while True:
            fd = safefs.open_nofollow(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                holder = Holder.read(self.path)
                who = holder.describe() if holder else "another process (starting up)"
                raise RunLockedError(
                    f"{self.path}: the run folder is being written by {who}; wait for it to "
                    "finish (or stop it) before resuming it; two writers would duplicate work "
                    "and overwrite each other's records"
                ) from None
            try:  # the file may have been removed by a holder releasing it meanwhile: retry
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        self._fd = fd
        old = Holder.read(self.path)
        if old is not None:
            if old.host != socket.gethostname():
                state = "written on another host; no process holds it"
            elif old.alive_here():
                state = "that process runs but no longer holds it"
            else:
                state = "no longer running"
            self.note = f"took over the stale lock {self.path} left by {old.describe()} ({state})"
        me = {"pid": os.getpid(), "host": socket.gethostname(), "since_unix_s": time.time()}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(me).encode(), 0)
        os.fsync(fd)
        return self

    def release(self) -> None:
        """Remove the lock file and drop the lock (idempotent)."""
        if self._fd is None:
            return
        try:
            self.path.unlink(missing_ok=True)
        finally:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> RunLock:
        return self.acquire() if self._fd is None else self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
