"""Writing inside a run folder without following links: the one place for these primitives.

A run folder is untrusted input: it can be shared, copied from elsewhere or edited by hand, and a
symbolic link in it (``run.lock -> ~/.bashrc``, ``entries -> /elsewhere``) would otherwise steer
a write to any file the user (or root) can write. So:

- :func:`check_run_folder` walks a run folder before a command uses it (``run --resume``,
  ``report``, ``export``) and refuses any link, and anything that is neither a regular file nor
  a folder, naming it (:class:`LinkInRunError`, exit 2);
- every run root in use is registered (:func:`register_root`, done by ``RunStore``), and every
  write under one (:func:`check_write_path`, :func:`safe_mkdirs`, :func:`open_nofollow`) checks
  with ``lstat`` that each component below the root is a real folder and the file itself is a
  regular file, and opens with ``O_NOFOLLOW`` (so a link planted while a run goes on is refused
  too, not followed).
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
from pathlib import Path

from energybench.errors import UserError

_ROOTS: set[str] = set()


class LinkInRunError(UserError, ValueError):
    """A link (or a FIFO, device, ...) where the tool reads or writes in a run folder (exit 2)."""


def _abs(path: Path | str) -> str:
    return os.path.abspath(os.fspath(path))


def register_root(root: Path | str) -> None:
    """Every later write under ``root`` (and its resolved form) is checked for links."""
    _ROOTS.add(_abs(root))
    _ROOTS.add(os.path.realpath(os.fspath(root)))


def _root_of(path: str) -> str | None:
    """The longest registered run root that ``path`` (absolute, unresolved) lies under."""
    best = None
    for root in _ROOTS:
        if path.startswith(root.rstrip("/") + "/") and (best is None or len(root) > len(best)):
            best = root
    return best


def _kind(mode: int) -> str:
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def _refuse(path: str, mode: int, want: str) -> LinkInRunError:
    return LinkInRunError(
        f"{path}: is {_kind(mode)} where energybench expects {want} in a run folder; refusing "
        "to follow it (a link in a run folder could steer a write outside it). Replace it with "
        "a real copy, or remove it"
    )


def _check_dirs(root: str, path: str) -> None:
    """Every existing component of ``path``'s parent below ``root`` is a real folder."""
    rel = os.path.relpath(os.path.dirname(path), root)
    cur = root
    for part in [] if rel == "." else rel.split(os.sep):
        cur = os.path.join(cur, part)
        try:
            st = os.lstat(cur)
        except FileNotFoundError:
            return
        if not stat.S_ISDIR(st.st_mode):
            raise _refuse(cur, st.st_mode, "a folder")


def check_write_path(path: Path | str) -> None:
    """Refuse ``path`` when it lies in a registered run folder and a component below the run
    root is a link or not a folder, or ``path`` itself is a link, FIFO, device or socket (a
    folder in its place is left to the caller: reading or replacing it fails, naming it)."""
    p = _abs(path)
    root = _root_of(p)
    if root is None:
        return
    _check_dirs(root, p)
    try:
        st = os.lstat(p)
    except FileNotFoundError:
        return
    if not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
        raise _refuse(p, st.st_mode, "a regular file or a folder")


def safe_mkdirs(path: Path | str) -> None:
    """``mkdir -p path``, refusing a link or a non-folder on the way under a run root."""
    p = _abs(path)
    root = _root_of(p + "/")
    if root is None:
        Path(p).mkdir(parents=True, exist_ok=True)
        return
    if not os.path.isdir(root):
        Path(root).mkdir(parents=True, exist_ok=True)
    rel = os.path.relpath(p, root)
    cur = root
    for part in [] if rel == "." else rel.split(os.sep):
        cur = os.path.join(cur, part)
        try:
            os.mkdir(cur)
        except FileExistsError:
            pass
        st = os.lstat(cur)
        if not stat.S_ISDIR(st.st_mode):
            raise _refuse(cur, st.st_mode, "a folder")


def open_nofollow(path: Path | str, flags: int, mode: int = 0o644) -> int:
    """``os.open`` that never follows a link at ``path`` and returns only a regular file's fd
    (a FIFO is not waited on: ``O_NONBLOCK`` for the open, cleared after)."""
    p = os.fspath(path)
    check_write_path(p)
    try:
        fd = os.open(p, flags | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, mode)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.EMLINK, errno.ENXIO):
            raise _refuse(p, os.lstat(p).st_mode, "a regular file") from None
        raise
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise _refuse(p, st.st_mode, "a regular file")
    if flags & (os.O_WRONLY | os.O_RDWR) and st.st_nlink > 1:
        os.close(fd)  # written in place (lock, trace): the other names would change with it
        raise LinkInRunError(
            f"{p}: is a hard link ({st.st_nlink} names for one file) where energybench writes "
            "in a run folder; writing it would change the file under its other names too. "
            "Replace it with a real copy, or remove it"
        )
    fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
    return fd


def check_run_folder(root: Path | str, max_entries: int = 1_000_000) -> None:
    """Refuse a run folder that is not a real folder or holds a link, FIFO, device or socket
    anywhere inside it (:class:`LinkInRunError` naming the first one found)."""
    top = _abs(root)
    try:
        st = os.lstat(top)
    except FileNotFoundError:
        return  # the caller says it is not a run
    if stat.S_ISLNK(st.st_mode):
        top = os.path.realpath(top)  # the folder given may be a link; what is inside may not
        st = os.stat(top)
    if not stat.S_ISDIR(st.st_mode):
        raise _refuse(top, st.st_mode, "a run folder")
    seen = 0
    stack = [top]
    while stack:
        d = stack.pop()
        with os.scandir(d) as it:
            for de in it:
                seen += 1
                if seen > max_entries:
                    return
                mode = de.stat(follow_symlinks=False).st_mode
                if stat.S_ISDIR(mode):
                    stack.append(de.path)
                elif not stat.S_ISREG(mode):
                    raise _refuse(de.path, mode, "a regular file or a folder")
