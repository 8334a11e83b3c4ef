"""The seal of a run folder: the sha256 of every record, written when a writer finishes.

``seal.json`` lists each file of the run (manifest, idle baseline, phase records, power traces)
with its sha256. ``energybench site --check`` compares the folder with it, so a record edited,
added or removed after the run finished is caught. A seal is not a signature: whoever can write
the folder can write a new seal; it detects hand edits and accidents, not a determined forger.
It reads files through the store's hashing only.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from energybench.records.store import file_sha256

SEAL_NAME = "seal.json"
#: What is sealed: records and traces (checkpoints carry their own hashes in their records).
SEALED_GLOBS = ("manifest.json", "idle.json", "entries/*/*.json", "traces/*")


def sealed_files(root: Path) -> dict[str, str]:
    """Relative path -> sha256 of every file the seal covers (regular files only)."""
    out = {}
    for pattern in SEALED_GLOBS:
        for path in sorted(root.glob(pattern)):
            if path.is_file() and not path.is_symlink():
                out[path.relative_to(root).as_posix()] = file_sha256(path)
    return out


def write_seal(root: Path) -> None:
    """Write ``seal.json`` for the folder as it is now (atomically; never through a link)."""
    target = root / SEAL_NAME
    if target.is_symlink():
        raise OSError(f"{target} is a symbolic link; refusing to write through it")
    tmp = root / f".{SEAL_NAME}.{os.getpid()}.tmp"
    text = json.dumps({"sha256": sealed_files(root)}, indent=1, sort_keys=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, target)


def _is_run_file(rel: str) -> bool:
    """``rel`` is a path a seal can list: relative, inside the run folder, one of its files."""
    parts = Path(rel).parts
    return bool(parts) and not Path(rel).is_absolute() and ".." not in parts and "\0" not in rel


def seal_problems(root: Path) -> list[str]:
    """What differs between the folder and its seal (empty: intact)."""
    path = root / SEAL_NAME
    if not path.is_file() or path.is_symlink():
        return [f"{path}: no seal (the run did not finish, or an energybench before 0.3 wrote it)"]
    try:
        sealed = json.loads(path.read_text(encoding="utf-8"))["sha256"]
        if not isinstance(sealed, dict):
            raise TypeError("sha256 is not a mapping")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return [f"{path}: unreadable seal ({exc})"]
    now = sealed_files(root)
    problems = []
    for rel, digest in sorted(sealed.items()):
        if rel not in now and not _is_run_file(rel):  # "/etc/passwd", "../x": never looked at
            problems.append(f"{path}: lists '{rel[:80]}', which is not a file of a run folder")
        elif rel not in now:
            problems.append(f"{root / rel}: sealed but missing")
        elif now[rel] != digest:
            problems.append(f"{root / rel}: changed after the run finished (sha256 differs)")
    for rel in sorted(set(now) - set(sealed)):
        problems.append(f"{root / rel}: added after the run finished (not in the seal)")
    return problems
