"""A patched ``torch.cuda`` that records which GPU every call is about, and fails at once when a
call is about a GPU other than the expected one.

No GPU exists on the test machine, so the CUDA path is tested through this seam: each patched
function resolves the device it names (an index, ``"cuda:N"``, a ``torch.device``, a stream, or
nothing: the current device, as torch does) and appends ``(function, index)`` to
:attr:`CudaRecorder.calls`. With ``expect`` set, a call about another GPU raises
:class:`WrongDevice` (the code under test called ``torch.cuda`` for the wrong GPU).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest
import torch


class WrongDevice(AssertionError):
    """A ``torch.cuda`` call named (or defaulted to) a GPU the test did not expect."""


class FakeStream:
    def __init__(self, index: int) -> None:
        self.device = torch.device("cuda", index)
        self.device_index = index


class CudaRecorder:
    """Patches ``torch.cuda`` (``monkeypatch`` undoes it) for ``count`` visible GPUs."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, count: int = 2, expect: int | None = None):
        self.count, self.expect = count, expect
        self.current = 0
        self.calls: list[tuple[str, int]] = []
        self.allocated = {i: 0 for i in range(count)}
        rec = self

        class Event:
            """A CUDA event: recorded on a stream of one GPU; 1 ms between two records."""

            def __init__(self, enable_timing: bool = False) -> None:
                self.index: int | None = None
                self.order = 0
                self.timing = enable_timing is True

            def record(self, stream: Any = None) -> None:
                self.index = rec.note("Event.record", stream)
                rec.event_clock += 1
                self.order = rec.event_clock

            def synchronize(self) -> None:
                assert self.index is not None, "synchronize on an event never recorded"
                rec.note("Event.synchronize", self.index)
                rec.event_syncs += 1
                rec.completed = max(rec.completed, self.order)  # and all queued before it

            def elapsed_time(self, end: Event) -> float:
                # as CUDA: both events need enable_timing=True, and the end must have completed
                if not (self.timing and end.timing):
                    raise RuntimeError("Both events must be created with enable_timing=True")
                if end.order > rec.completed:
                    raise RuntimeError("CUDA error: device not ready")
                assert self.index == end.index, "events of two GPUs compared"
                return float(end.order - self.order)

        self.event_clock = 0
        self.event_syncs = 0
        self.completed = 0  # order of the last event known complete (synchronised)
        cuda = torch.cuda
        patch = monkeypatch.setattr
        patch(cuda, "is_available", lambda: True)
        patch(cuda, "device_count", lambda: self.count)
        patch(cuda, "current_device", lambda: self.current)
        patch(cuda, "set_device", self._set_device)
        patch(cuda, "device", self._device_cm)
        patch(cuda, "current_stream", lambda device=None: FakeStream(self.note("stream", device)))
        patch(cuda, "synchronize", self._synchronize)
        patch(cuda, "Event", Event)
        patch(cuda, "reset_peak_memory_stats", lambda d=None: self.note("reset_peak", d) and None)
        patch(cuda, "max_memory_allocated", self._peak("max_memory_allocated", 1))
        patch(cuda, "max_memory_reserved", self._peak("max_memory_reserved", 2))
        patch(cuda, "empty_cache", lambda: self.note("empty_cache", None) and None)

    # ------------------------------------------------------------------ resolution
    def index_of(self, device: Any) -> int:
        """The GPU ``device`` names (None: the current one, as in torch)."""
        if device is None:
            return self.current
        if isinstance(device, FakeStream):
            return device.device_index
        if isinstance(device, int):
            return device
        dev = torch.device(device)
        if dev.type != "cuda":
            raise WrongDevice(f"a torch.cuda call named the non-CUDA device {dev}")
        return dev.index if dev.index is not None else self.current

    def note(self, name: str, device: Any) -> int:
        index = self.index_of(device)
        if not 0 <= index < self.count:
            raise WrongDevice(f"{name} names cuda:{index}; only {self.count} GPU(s) exist")
        self.calls.append((name, index))
        if self.expect is not None and index != self.expect:
            raise WrongDevice(f"{name} is about cuda:{index}, the work is on cuda:{self.expect}")
        return index

    # ------------------------------------------------------------------ patched functions
    def _synchronize(self, device: Any = None) -> None:
        self.note("synchronize", device)
        self.completed = self.event_clock  # every event recorded so far has completed

    def _set_device(self, device: Any) -> None:
        self.current = self.note("set_device", device)

    @contextlib.contextmanager
    def _device_cm(self, device: Any) -> Iterator[None]:
        before = self.current
        self.current = self.note("device", device)
        try:
            yield
        finally:
            self.current = before

    def _peak(self, name: str, scale: int) -> Any:
        def read(device: Any = None) -> int:
            return 1000 * scale * (self.note(name, device) + 1)

        return read

    def names(self, function: str) -> list[int]:
        """The GPUs the recorded calls of ``function`` were about."""
        return [i for f, i in self.calls if f == function]
