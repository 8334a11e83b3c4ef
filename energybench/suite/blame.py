"""Blame a problem on ``defaults`` when the bad value reached an entry from there.

``defaults`` is deep-merged into every entry before validation, so the schema reports a bad
default once per entry, at ``entries.<i>...``. The user wrote it once, under ``defaults``:
this module moves such problems there (its line, or the ``--set defaults...`` that put it
there) and lists the entries it reached, once.
"""

from __future__ import annotations

from typing import Any, Protocol

from energybench.suite.errors import Path_, Problem


class _Locator(Protocol):
    def locate(self, path: Path_, key: bool = False) -> tuple[int | None, int | None]: ...


def _has(data: Any, path: Path_) -> bool:
    for part in path:
        if isinstance(data, dict) and part in data:
            data = data[part]
        elif isinstance(data, list) and isinstance(part, int) and 0 <= part < len(data):
            data = data[part]
        else:
            return False
    return True


def from_defaults(own: Any, defaults: dict[str, Any], rest: Path_) -> bool:
    """Whether the value at ``rest`` of a merged entry came from ``defaults``: the entry as
    written (``own``) stops having the path at a mapping key that ``defaults`` has."""
    node = own
    for k, part in enumerate(rest):
        if not isinstance(node, dict):
            return False  # lists and scalars are never merged: the entry's own value
        if part not in node:
            return _has(defaults, rest[: k + 1])
        node = node[part]
    return False


def blame_defaults(
    problems: list[Problem],
    entries: list[Any],
    defaults: dict[str, Any],
    marks: _Locator,
    file: str,
) -> list[Problem]:
    """``problems`` with those caused by ``defaults`` moved to it (one problem per default)."""
    out: list[Problem] = []
    moved: dict[tuple[str, str], tuple[Problem, list[str]]] = {}
    for pr in problems:
        loc = pr.loc
        i = loc[1] if len(loc) >= 3 and loc[0] == "entries" else None
        if (
            not isinstance(i, int)
            or not 0 <= i < len(entries)
            or not from_defaults(entries[i], defaults, loc[2:])
        ):
            out.append(pr)
            continue
        new_loc: Path_ = ("defaults", *loc[2:])
        name = entries[i].get("name") if isinstance(entries[i], dict) else None
        key = (".".join(map(str, new_loc)), pr.message)
        if key in moved:
            moved[key][1].append(str(name if name is not None else i))
            continue
        line, col = marks.locate(new_loc)
        new = Problem(file, line, col, key[0], pr.message, loc=new_loc)
        moved[key] = (new, [str(name if name is not None else i)])
        out.append(new)
    for new, names in moved.values():
        shown = ", ".join(f"'{n}'" for n in names[:5]) + (" ..." if len(names) > 5 else "")
        new.message += (
            f" (set in 'defaults'; reaches entr{'y' if len(names) == 1 else 'ies'} {shown})"
        )
    return out
