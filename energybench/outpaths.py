"""Output targets (``--out``, ``--report``, ``-o``) are checked before any work starts.

A run can take hours; finding out at the end that its report cannot be written (a directory in
the way, a parent that is a file, a read-only folder) wastes them. These checks create nothing:
they look for the nearest existing ancestor and ask whether it is a writable folder.
"""

from __future__ import annotations

import os
from pathlib import Path

from energybench.errors import UserError


class OutputPathError(UserError, ValueError):
    """An output path that cannot be written (user error, exit 2)."""


def _writable_ancestor(path: Path, what: str, target: Path) -> None:
    """The nearest existing ancestor of ``path`` (inclusive) is a folder this user can write."""
    probe = path
    while not (probe.exists() or probe.is_symlink()):
        if probe.parent == probe:
            break
        probe = probe.parent
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
