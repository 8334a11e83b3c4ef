"""User errors in a suite: :class:`Problem` (one located problem) and :class:`SuiteError`."""

from __future__ import annotations

from dataclasses import dataclass, field

from energybench.errors import UserError

Path_ = tuple[str | int, ...]

#: At most this many problems are listed; the rest are counted (a 1 MB suite can have 10^5).
MAX_LISTED = 50


@dataclass
class Problem:
    """One validation problem, located in the YAML file (or in a ``--set``)."""

    file: str
    line: int | None
    column: int | None
    path: str
    message: str
    loc: Path_ = field(default=(), compare=False, repr=False)  # ``path`` as keys and indices

    def __str__(self) -> str:
        where = self.file
        if self.line is not None:
            where += f":{self.line}:{self.column}"
        field_ = f" at '{self.path}'" if self.path else ""
        return f"{where}: {self.message}{field_}"


@dataclass
class SuiteError(UserError):
    """Bad input (exit code 2). ``str()`` is the full user-facing message."""

    problems: list[Problem] = field(default_factory=list)

    def __str__(self) -> str:
        n = len(self.problems)
        head = f"invalid suite ({n} problem{'s' if n != 1 else ''}):"
        lines = [f"  {p}" for p in self.problems[:MAX_LISTED]]
        if n > MAX_LISTED:
            lines.append(f"  ... and {n - MAX_LISTED} more")
        return "\n".join([head, *lines])
