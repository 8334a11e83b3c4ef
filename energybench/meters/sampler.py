"""Background power sampling: a polling thread, online trapezoid integration and CSV traces.

The sampler reads instantaneous power (plus temperature, SM clock, utilisation) from one reader
per device at a fixed period, integrates power into a running energy figure per device (trapezoid
rule, O(1) memory), keeps per-window statistics, and streams a run-length-deduplicated trace to a
CSV file. Integration and window arithmetic use ``clock.monotonic()``; trace rows keep unix time
for humans. It knows nothing about NVML or sysfs: readers are plain callables. It must not hold
the whole trace in memory and must not let a failing reader stop the other devices or the run.
"""

from __future__ import annotations

import csv
import math
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np

from energybench.meters.base import SYSTEM_CLOCK, Clock
from energybench.records import safefs

#: Columns of a trace CSV, in order. ``unix_s`` is the read time (s), ``power_w`` in W.
TRACE_COLUMNS = ("unix_s", "device", "power_w", "temp_c", "sm_clock_mhz", "util_pct")

_SLEEP_MAX_S = 0.2  # periods up to this sleep plainly; longer ones wait on the stop event
try:
    _trapezoid = np.trapezoid
except AttributeError:  # numpy < 2 spells it trapz
    _trapezoid = np.trapz  # type: ignore[attr-defined]


def integrate_trace(unix_s: Sequence[float], power_w: Sequence[float]) -> float:
    """Trapezoid integral in J of a power trace (s, W) — e.g. one device's rows of a trace CSV."""
    if len(unix_s) < 2:
        return 0.0
    return float(_trapezoid(np.asarray(power_w, dtype=float), np.asarray(unix_s, dtype=float)))


@dataclass
class Reading:
    """One sample of one device. Power in W; optional extras may be None when unsupported."""

    power_w: float
    temp_c: float | None = None
    sm_clock_mhz: float | None = None
    util_pct: float | None = None

    def values(self) -> tuple[float | None, ...]:
        return (self.power_w, self.temp_c, self.sm_clock_mhz, self.util_pct)


@dataclass
class WindowStats:
    """Sample statistics of one device over one window (power in W)."""

    samples: int = 0
    sum_w: float = 0.0
    sum_sq_w: float = 0.0
    peak_w: float | None = None

    def add(self, p: float) -> None:
        self.samples += 1
        self.sum_w += p
        self.sum_sq_w += p * p
        self.peak_w = p if self.peak_w is None else max(self.peak_w, p)

    @property
    def std_w(self) -> float:
        """Sample standard deviation of power in W (0 with fewer than two samples)."""
        if self.samples < 2:
            return 0.0
        mean = self.sum_w / self.samples
        var = (self.sum_sq_w - self.samples * mean * mean) / (self.samples - 1)
        return math.sqrt(max(var, 0.0))


@dataclass
class _DeviceState:
    last_t: float | None = None
    last_p: float | None = None
    cum_j: float = 0.0
    failing: bool = False  # the latest read failed: do not extrapolate past last_t
    errors: int = 0
    last_error: str | None = None
    first_error_unix_s: float | None = None


class TraceWriter:
    """Streams trace rows to a CSV file (appending), run-length deduplicated per device.

    A row whose values (power, temperature, clock, utilisation) equal the device's previous row
    is held back; only the last row of such a run is written, when the values change or at
    :meth:`close`. So the file keeps the first and last point of every constant stretch and the
    trapezoid integral of the file equals the sampler's online integral.
    Rows are buffered and flushed every ``flush_rows`` rows or ``flush_s`` seconds.
    """

    def __init__(self, path: Path, flush_rows: int = 256, flush_s: float = 2.0) -> None:
        self.path = path
        safefs.safe_mkdirs(path.parent)  # in a run folder: no link followed (records.safefs)
        fd = safefs.open_nofollow(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        new = os.fstat(fd).st_size == 0
        self._fh: IO[str] | None = os.fdopen(fd, "a", newline="")
        self._csv = csv.writer(self._fh)
        if new:
            self._csv.writerow(TRACE_COLUMNS)
        self._buf: list[tuple[Any, ...]] = []
        self._last_vals: dict[str, tuple[float | None, ...]] = {}
        self._held: dict[str, tuple[Any, ...]] = {}
        self._flush_rows, self._flush_s = flush_rows, flush_s
        self._last_flush = time.monotonic()
        self.rows_written = 0

    @staticmethod
    def _row(t: float, device: str, r: Reading) -> tuple[Any, ...]:
        def fmt(v: float | None) -> Any:
            return "" if v is None else round(v, 3)

        return (
            f"{t:.6f}",
            device,
            fmt(r.power_w),
            fmt(r.temp_c),
            fmt(r.sm_clock_mhz),
            fmt(r.util_pct),
        )

    def add(self, t: float, device: str, r: Reading) -> None:
        vals = r.values()
        row = self._row(t, device, r)
        if self._last_vals.get(device) == vals:
            self._held[device] = row
            return
        held = self._held.pop(device, None)
        if held is not None:
            self._buf.append(held)
        self._buf.append(row)
        self._last_vals[device] = vals
        due = time.monotonic() - self._last_flush > self._flush_s
        if len(self._buf) >= self._flush_rows or due:
            self.flush()

    def flush(self) -> None:
        if self._fh is None:
            return
        self._csv.writerows(self._buf)
        self.rows_written += len(self._buf)
        self._buf.clear()
        self._fh.flush()
        self._last_flush = time.monotonic()

    def close(self) -> None:
        if self._fh is None:
            return
        self._buf.extend(self._held.values())
        self._held.clear()
        self.flush()
        self._fh.close()
        self._fh = None


class Poller:
    """Calls ``fn`` every ``period_s`` seconds on a daemon thread until :meth:`stop`.

    Ticks are scheduled on a fixed grid (no drift); missed ticks are skipped, not bunched.
    ``cpu_s`` is the CPU time the thread has used (s), for overhead measurements.
    """

    def __init__(self, fn: Callable[[], object], period_s: float, name: str = "energybench-poll"):
        self.fn, self.period_s, self.name = fn, period_s, name
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.cpu_s = 0.0
        self.ticks = 0

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        if self.running:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        cpu0 = time.thread_time()
        next_t = time.monotonic()
        while True:
            try:
                self.fn()
            except Exception:  # a reader bug must not kill the thread; readers record errors
                pass
            self.ticks += 1
            self.cpu_s = time.thread_time() - cpu0
            next_t += self.period_s
            now = time.monotonic()
            if next_t < now:  # overran: skip the missed ticks
                next_t = now
            if next_t - now <= _SLEEP_MAX_S:
                # time.sleep wakes up about twice as cheaply as Event.wait (a timed lock);
                # stop() then waits at most one short period
                time.sleep(next_t - now)
                if self._stop.is_set():
                    break
            elif self._stop.wait(next_t - now):
                break

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=max(5.0, 5 * self.period_s))
            self._thread = None


@dataclass
class PowerSampler:
    """Samples power of several devices; integrates it; keeps window stats; writes a trace.

    ``readers`` maps a device id to a callable returning a :class:`Reading`; a reader that
    raises is recorded as failing (its integral stops at the last good sample and resumes,
    bridging the gap with the trapezoid rule, if it recovers). Times are ``clock.monotonic()``
    except in the trace file (unix s). :meth:`poll` takes one sample of
    every device and is thread-safe: the meter calls it at window edges, the thread in between.
    """

    readers: dict[str, Callable[[], Reading]]
    period_s: float = 0.05
    clock: Clock = SYSTEM_CLOCK
    trace_path: Path | None = None
    _states: dict[str, _DeviceState] = field(init=False, default_factory=dict)
    _windows: dict[str, dict[str, WindowStats]] = field(init=False, default_factory=dict)
    _lock: threading.Lock = field(init=False, default_factory=threading.Lock)
    _writer: TraceWriter | None = field(init=False, default=None)
    _poller: Poller | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self._states = {d: _DeviceState() for d in self.readers}
        if self.trace_path is not None:
            self._writer = TraceWriter(self.trace_path)

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Start the background thread (idempotent)."""
        if self._poller is None:
            self._poller = Poller(self.poll, self.period_s, name="energybench-sampler")
        self._poller.start()

    def stop(self) -> None:
        """Stop the thread and flush the trace file."""
        if self._poller is not None:
            self._poller.stop()
        with self._lock:
            if self._writer is not None:
                self._writer.close()
                self._writer = None

    @property
    def cpu_s(self) -> float:
        """CPU seconds used by the sampling thread so far."""
        return self._poller.cpu_s if self._poller else 0.0

    # ------------------------------------------------------------------ sampling
    def poll(self) -> None:
        """Read every device once (thread-safe)."""
        with self._lock:
            for device, read in self.readers.items():
                st = self._states[device]
                try:
                    r = read()
                except Exception as exc:
                    st.errors += 1
                    st.failing = True
                    st.last_error = f"{type(exc).__name__}: {exc}"
                    if st.first_error_unix_s is None:
                        st.first_error_unix_s = self.clock.time()
                    continue
                t = self.clock.monotonic()
                self._add(device, st, t, r, self.clock.time())

    def _add(self, device: str, st: _DeviceState, t: float, r: Reading, unix_s: float) -> None:
        p = float(r.power_w)
        if st.last_t is not None and st.last_p is not None and t > st.last_t:
            st.cum_j += 0.5 * (p + st.last_p) * (t - st.last_t)
        if st.last_t is None or t >= st.last_t:
            st.last_t, st.last_p = t, p
        st.failing = False
        for stats in self._windows.values():
            stats[device].add(p)
        if self._writer is not None:
            self._writer.add(unix_s, device, r)

    # ------------------------------------------------------------------ queries
    def cum_energy_j(self, device: str, t: float) -> float | None:
        """Integrated energy in J of ``device`` from its first sample to ``t`` (monotonic s).

        Past the last sample the last power is held; a failing device is not extrapolated.
        None before the first sample.
        """
        with self._lock:
            st = self._states[device]
            if st.last_t is None or st.last_p is None:
                return None
            if st.failing:
                t = min(t, st.last_t)
            return st.cum_j + st.last_p * (t - st.last_t)

    def last_sample(self, device: str) -> tuple[float, float] | None:
        """(monotonic_s, power_w) of the latest good sample, or None."""
        st = self._states[device]
        if st.last_t is None or st.last_p is None:
            return None
        return st.last_t, st.last_p

    def errors(self, device: str) -> int:
        """How many reads of ``device`` have failed so far."""
        return self._states[device].errors

    def failing(self, device: str) -> bool:
        return self._states[device].failing

    def last_error(self, device: str) -> str | None:
        return self._states[device].last_error

    def first_error_unix_s(self, device: str) -> float | None:
        return self._states[device].first_error_unix_s

    def open_window(self, key: str) -> None:
        with self._lock:
            self._windows[key] = {d: WindowStats() for d in self.readers}

    def close_window(self, key: str) -> dict[str, WindowStats]:
        with self._lock:
            return self._windows.pop(key, {d: WindowStats() for d in self.readers})
