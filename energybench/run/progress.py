"""Progress display with rich: phase, step, live power (where known, marked when estimated), ETA.

Display only. When stdout is not a terminal (CI logs, ``nohup``) there are no bars: one line per
phase and one per quarter of a training phase instead, so logs stay readable.
"""

from __future__ import annotations

import time
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

from energybench.meters.base import LivePower


def power_text(p: LivePower | float | None) -> str:
    """The live power column: "  28.0 W" when measured, "≈28.0 W est." when any part of it
    comes from a power model (never shown as if it were a measurement), "   ?  W" unknown."""
    if p is None:
        return "   ?  W"
    if isinstance(p, LivePower):
        if p.is_estimate:
            return f"≈{p.power_w:.1f} W est."
        p = p.power_w
    return f"{p:6.1f} W"


class RunProgress:
    """One bar per phase; ``power`` is polled for the live power column."""

    def __init__(self, console: Console, power: Callable[[], LivePower | float | None]) -> None:
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
        self._logged_quarter = -1

    def __enter__(self) -> RunProgress:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    def _power_text(self) -> str:
        return power_text(self.power())

    def phase(self, description: str, total: int | None = None) -> None:
        """Start a new bar (the previous one is completed)."""
        if not self.enabled:
            steps = f" ({total} steps)" if total and total > 1 else ""
            self.console.print(f"{time.strftime('%H:%M:%S')} {description}{steps}", highlight=False)
            self._logged_quarter = 0
        if self._task is not None:
            self._progress.update(self._task, completed=self._progress.tasks[-1].total or 1)
        self._task = self._progress.add_task(
            description, total=total or 1, power=self._power_text(), info=""
        )

    def update(self, step: int, total: int, loss: float | None = None) -> None:
        info = f"loss {loss:.4f}" if loss is not None and loss == loss else ""
        if not self.enabled:
            quarter = 4 * step // total if total else 0
            if quarter > self._logged_quarter:
                self._logged_quarter = quarter
                self.console.print(
                    f"{time.strftime('%H:%M:%S')}   step {step}/{total} {info}", highlight=False
                )
            return
        if self._task is None:
            return
        self._progress.update(
            self._task, completed=step, total=total, power=self._power_text(), info=info
        )

    def log(self, message: str) -> None:
        self.console.print(message)
