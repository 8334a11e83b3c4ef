"""docs/guarantees.md links each promise to the tests that hold it: every linked file exists and
every linked test is defined in it (a moved or renamed test would leave a promise unbacked)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
#: `tests/x.py`, `tests/x.py::test_y`, and `::test_z` (a test of the file linked just before)
LINK = re.compile(r"`((?:tests|\.ci|benchmarks)/[^`:]+?)(?:::(\w+))?`|`::(\w+)`")


def _links(text: str) -> list[tuple[str, str | None]]:
    out: list[tuple[str, str | None]] = []
    last = ""
    for m in LINK.finditer(text):
        path, name, bare = m.groups()
        last = path or last
        out.append((last, name or bare))
    return out


def test_every_test_the_guarantees_link_exists() -> None:
    links = _links((ROOT / "docs" / "guarantees.md").read_text(encoding="utf-8"))
    assert len(links) > 20
    missing = []
    for path, name in links:
        f = ROOT / path
        if not f.exists() or (
            name is not None and not re.search(rf"def {name}\b", f.read_text(encoding="utf-8"))
        ):
            missing.append(f"{path}::{name}" if name else path)
    assert not missing, f"docs/guarantees.md links tests that do not exist: {missing}"


def test_the_checker_finds_a_renamed_test() -> None:
    assert _links("`tests/run/test_interrupt.py::test_gone`, `::test_too`") == [
        ("tests/run/test_interrupt.py", "test_gone"),
        ("tests/run/test_interrupt.py", "test_too"),
    ]
