"""Progress display with rich: phase, step, live power (where known), ETA.

Display only; quiet (no bars) when stdout is not a terminal, so logs stay readable.
"""

from __future__ import annotations

from collections.abc import Callable

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class RunProgress:
    """One bar per phase; ``power`` is polled for the live power column."""

    def __init__(self, console: Console, power: Callable[[], float | None]) -> None:
        self.console = console
        self.power = power
        self.enabled = console.is_terminal
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[power]}"),
            TextColumn("{task.fields[info]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=console,
            disable=not self.enabled,
            transient=False,
        )
        self._task: TaskID | None = None

    def __enter__(self) -> RunProgress:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    def _power_text(self) -> str:
        p = self.power()
        return f"{p:6.1f} W" if p is not None else "   ?  W"

    def phase(self, description: str, total: int | None = None) -> None:
        """Start a new bar (the previous one is completed)."""
        if self._task is not None:
            self._progress.update(self._task, completed=self._progress.tasks[-1].total or 1)
        self._task = self._progress.add_task(
            description, total=total or 1, power=self._power_text(), info=""
        )

    def update(self, step: int, total: int, loss: float | None = None) -> None:
        if self._task is None:
            return
        info = f"loss {loss:.4f}" if loss is not None and loss == loss else ""
        self._progress.update(
            self._task, completed=step, total=total, power=self._power_text(), info=info
        )

    def log(self, message: str) -> None:
        self.console.print(message)
