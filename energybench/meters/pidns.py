"""Which NVML process ids are the run's own, inside a container (a PID namespace) too.

NVML reports the pids of processes with a GPU context as the *host* (initial PID namespace)
sees them. Inside Docker, Kubernetes or enroot with a PID namespace, ``os.getpid()`` is another
number, so comparing the two would call the run's own work "another process". This module
reads ``/proc`` through a seam (:class:`ProcView`; tests and ``--simulate`` pass a fake) and
says, per proc(5):

* whether this process is in a PID namespace other than the initial one: ``NSpid`` in
  ``/proc/self/status`` lists more than one pid, or ``/proc/self/ns/pid`` is not the initial
  namespace (inode ``0xEFFFFFFC``; Docker mounts its own ``/proc``, where ``NSpid`` shows one
  pid);
* whether NVML's (host) pids can be matched: ``NSpid``'s first field is the pid in the
  namespace of the process that mounted ``/proc``; it is the host pid when that namespace is
  the initial one (``/proc/1/ns/pid`` readable and initial).

Where they can be matched, the run's keys are its namespace pids plus those host pids; where
they cannot, a pid NVML reports that is not one of the run's is *unknown*, never "another
process" (sharing not checked). Nothing here reads NVML.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

#: Inode of the initial PID namespace (``PROC_PID_INIT_INO`` in the kernel).
PROC_PID_INIT_INO = 0xEFFFFFFC


class ProcView:
    """Read-only ``/proc`` access (the seam): ``status`` text and PID-namespace inodes."""

    def __init__(self, root: Path = Path("/proc")) -> None:
        self.root = Path(root)

    def status(self, pid: str) -> str | None:
        """``/proc/<pid>/status`` (``pid`` may be ``"self"``), or None when unreadable."""
        try:
            return (self.root / pid / "status").read_text()
        except OSError:
            return None

    def pid_ns_inode(self, pid: str) -> int | None:
        """Inode of ``/proc/<pid>/ns/pid`` (``"pid:[N]"``), or None when unreadable."""
        try:
            link = os.readlink(self.root / pid / "ns" / "pid")
        except OSError:
            return None
        m = re.fullmatch(r"pid:\[(\d+)\]", link)
        return int(m.group(1)) if m else None


def nspid(status: str | None) -> list[int]:
    """The ``NSpid`` pids of a ``/proc/<pid>/status`` text (outermost first; [] if absent)."""
    for line in (status or "").splitlines():
        if line.startswith("NSpid:"):
            return [int(x) for x in line.split()[1:]]
    return []


@dataclass(frozen=True)
class PidView:
    """How this process's pids relate to NVML's.

    ``isolated``: in a PID namespace other than the initial one. ``matchable``: NVML's host
    pids can be matched to the run's processes (always outside a namespace). ``host_pid``:
    this process's pid on the host when known.
    """

    isolated: bool
    matchable: bool
    host_pid: int | None = None

    @property
    def note(self) -> str:
        """Why NVML's pids cannot be matched (empty when they can)."""
        if self.matchable:
            return ""
        return (
            "running in a PID namespace (container) whose host pids are not visible: NVML "
            "reports host pids, which cannot be matched to this run's processes"
        )


def pid_view(proc: ProcView | None = None) -> PidView:
    """Read the namespace facts of this process from ``proc`` (default: the real ``/proc``)."""
    proc = proc or ProcView()
    own = nspid(proc.status("self"))
    ino = proc.pid_ns_inode("self")
    isolated = len(own) > 1 or (ino is not None and ino != PROC_PID_INIT_INO)
    if not isolated:
        return PidView(False, True, own[0] if own else None)
    host_proc = proc.pid_ns_inode("1") == PROC_PID_INIT_INO  # /proc is the host's
    if len(own) > 1 and host_proc:
        return PidView(True, True, own[0])
    return PidView(True, False, None)


def run_keys(pids: Iterable[int], view: PidView, proc: ProcView | None = None) -> set[int]:
    """The pids under which NVML may report the run's processes ``pids``: the pids themselves
    and, in a namespace whose host pids are visible, each one's host pid (``NSpid[0]``)."""
    keys = set(pids)
    if view.isolated and view.matchable:
        proc = proc or ProcView()
        if view.host_pid is not None:
            keys.add(view.host_pid)
        for p in list(keys - {os.getpid(), view.host_pid}):
            ns = nspid(proc.status(str(p)))
            if len(ns) > 1:
                keys.add(ns[0])
    return keys
