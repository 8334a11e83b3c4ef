"""Ctrl-C that is never lost: a run ends promptly (exit 130) wherever the interrupt lands.

Python turns SIGINT into ``KeyboardInterrupt`` in the main thread at the next bytecode. When that
bytecode belongs to a finaliser (a ``__del__``, a weakref callback the garbage collector runs)
the exception is printed as "Exception ignored" and dropped: the run goes on as if nothing
happened and, in a wait, can wait for ever. :class:`CtrlC` records the interrupt before raising
it, and :func:`check` (called where a run waits or starts a phase) raises it again, so a dropped
interrupt costs at most one wait step, never the run.
"""

from __future__ import annotations

import signal
import threading
import time
from types import FrameType, TracebackType
from typing import Any

_pending = threading.Event()


def check() -> None:
    """Raise ``KeyboardInterrupt`` if Ctrl-C was pressed (and perhaps dropped) since the run
    started."""
    if _pending.is_set():
        raise KeyboardInterrupt


def sleep(seconds: float, step_s: float = 0.1) -> None:
    """``time.sleep`` in short steps, each followed by :func:`check`."""
    end = time.monotonic() + seconds
    while True:
        check()
        left = end - time.monotonic()
        if left <= 0:
            return
        time.sleep(min(step_s, left))


class CtrlC:
    """``with CtrlC():`` SIGINT is recorded, then raised as ``KeyboardInterrupt`` (outside the
    main thread, or where another handler is installed, nothing changes)."""

    def __init__(self) -> None:
        self._old: Any = None
        self._installed = False

    def _on_sigint(self, signum: int, frame: FrameType | None) -> None:
        _pending.set()
        raise KeyboardInterrupt

    def __enter__(self) -> CtrlC:
        _pending.clear()
        if threading.current_thread() is threading.main_thread():
            old = signal.getsignal(signal.SIGINT)
            if old is signal.default_int_handler:
                self._old = old
                signal.signal(signal.SIGINT, self._on_sigint)
                self._installed = True
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._installed:
            signal.signal(signal.SIGINT, self._old)
            self._installed = False
        _pending.clear()
