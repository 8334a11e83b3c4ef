"""Output targets (``--out``, ``--report``, ``-o``) are checked before any work starts.

A run can take hours; finding out at the end that its report cannot be written (a directory in
the way, a parent that is a file, a read-only folder) wastes them. These checks create nothing:
they look for the nearest existing ancestor and ask whether it is a writable folder on a file
system that holds files (not ``/proc``, ``/sys``, ``/dev`` and the like, where a "write" changes
kernel settings or fails half-way).
"""

from __future__ import annotations

import os
from pathlib import Path

from energybench.errors import UserError


class OutputPathError(UserError, ValueError):
    """An output path that cannot be written (user error, exit 2)."""


#: kernel file systems: no place for results
SPECIAL_FS = frozenset(
    {
        "proc", "sysfs", "devtmpfs", "devpts", "cgroup", "cgroup2", "debugfs", "tracefs",
        "securityfs", "pstore", "bpf", "configfs", "fusectl", "mqueue", "hugetlbfs",
        "binfmt_misc", "efivarfs", "autofs", "rpc_pipefs", "nsfs",
    }
)  # fmt: skip


def _fs_type(path: Path) -> str | None:
    """The type of the file system ``path`` (an existing path) is on (None: not known)."""
    try:
        real = os.path.realpath(path)
        with open("/proc/self/mounts", encoding="utf-8", errors="replace") as fh:
            mounts = [line.split() for line in fh]
    except OSError:
        return None
    best, kind = "", None
    for fields in mounts:
        if len(fields) < 3:
            continue
        point = fields[1].replace("\\040", " ")
        inside = real == point or real.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best):
            best, kind = point, fields[2]
    return kind


def _writable_ancestor(path: Path, what: str, target: Path) -> None:
    """The nearest existing ancestor of ``path`` (inclusive) is a folder this user can write."""
    probe = path
    while not (probe.exists() or probe.is_symlink()):
        if probe.parent == probe:
            break
        probe = probe.parent
    kind = _fs_type(probe)
    if kind in SPECIAL_FS:
        raise OutputPathError(
            f"{what} {target}: {probe} is on the kernel's {kind} file system, not a place for "
            "files; choose a folder on a disk"
        )
    if not probe.is_dir():
        raise OutputPathError(
            f"{what} {target}: {probe} is a file, not a folder, so nothing can be written "
            "under it; choose another path"
        )
    if not os.access(probe, os.W_OK | os.X_OK):
        raise OutputPathError(
            f"{what} {target}: the folder {probe} is not writable by this user; choose "
            "another path or fix its permissions"
        )


def check_file_target(path: Path, what: str) -> None:
    """``path`` can be created or replaced as a file (``what``: e.g. ``--report``)."""
    path = Path(path)
    if path.is_dir():
        raise OutputPathError(
            f"{what} {path}: is a directory; give a file name (e.g. {path / 'report.html'})"
        )
    if path.exists() and not os.access(path, os.W_OK):
        raise OutputPathError(f"{what} {path}: the file exists and is not writable")
    _writable_ancestor(path.parent, what, path)


def check_dir_target(path: Path, what: str) -> None:
    """``path`` is, or can be created as, a writable folder (``what``: e.g. ``--out``)."""
    path = Path(path)
    if (path.exists() or path.is_symlink()) and not path.is_dir():
        raise OutputPathError(f"{what} {path}: is a file, not a folder; choose a folder")
    _writable_ancestor(path, what, path)
