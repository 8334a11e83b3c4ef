"""Bug reports: when a run stops on an exception that is not the user's fault (not a
:class:`~energybench.errors.UserError`), the CLI saves what a maintainer needs (the traceback,
the command line, the versions) to a file and points the user at it, instead of a raw traceback.

The file goes into the run folder when one exists, else into the system's temporary folder (a
bug during set-up must not leave a run folder behind). A leaf module: standard library only.
"""

from __future__ import annotations

import platform
import shlex
import sys
import tempfile
import time
import traceback
from importlib import metadata
from pathlib import Path

#: Installed packages whose versions a bug report lists (those that are installed).
REPORTED_PACKAGES = ("energybench", "torch", "torchvision", "numpy", "pydantic", "typer")


def _versions() -> list[str]:
    lines = [f"python {platform.python_version()} ({sys.executable})", platform.platform()]
    for name in REPORTED_PACKAGES:
        try:
            lines.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            continue
    return lines


def crash_report_text(exc: BaseException, argv: list[str] | None = None) -> str:
    """The text of a bug report for ``exc``: when, the command line, versions, the traceback."""
    command = shlex.join(sys.argv if argv is None else argv)
    trace = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    return "\n".join(
        [
            "energybench crash report: please attach this file to a bug report.",
            f"time: {time.strftime('%Y-%m-%dT%H:%M:%S%z')}",
            f"command: {command}",
            "versions:",
            *(f"  {line}" for line in _versions()),
            "",
            trace,
        ]
    )


def write_crash_report(
    exc: BaseException, run_dir: Path | None, argv: list[str] | None = None
) -> Path:
    """Save the bug report of ``exc`` as ``crash-<timestamp>.txt`` in ``run_dir`` (or in the
    temporary folder when there is no run folder yet); returns its path. ``OSError`` if it
    cannot be written."""
    folder = run_dir if run_dir is not None and run_dir.is_dir() else Path(tempfile.gettempdir())
    stamp = time.strftime("%Y%m%d-%H%M%S")
    prefix = "crash" if folder == run_dir else "energybench-crash"
    text = crash_report_text(exc, argv)
    for n in range(1, 100):  # two crashes within a second: keep both
        suffix = "" if n == 1 else f"-{n}"
        path = folder / f"{prefix}-{stamp}{suffix}.txt"
        try:
            with open(path, "x", encoding="utf-8") as fh:
                fh.write(text)
            return path
        except FileExistsError:
            continue
    raise FileExistsError(f"{folder}: too many crash reports named {prefix}-{stamp}*")
