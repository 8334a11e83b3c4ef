"""The measurement seam: records, the Meter interface, and the EnergyMonitor that opens windows.

Phases and models never talk to NVML or sysfs: they call ``EnergyMonitor.window(name)``.
Meters report per-device energy with its provenance (:class:`Source`) and an uncertainty.
Nothing here may return a silent zero: an unmeasurable figure is ``None`` with a reason.
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

from energybench.meters.plugins import Source
from energybench.records.window import (
    FLAG_BELOW_MIN_WINDOW,
    FLAG_CHANNELS_DISAGREE,
    FLAG_ESTIMATE,
    FLAG_INCOMPLETE,
    FLAG_METER_ERROR,
    FLAG_SHARED_DEVICE,
    FLAG_SHARING_NOT_CHECKED,
    FLAG_SHORT_WINDOW,
    FLAG_SIMULATED,
    DeviceEnergy,
    Window,
)
from energybench.run import interrupt

__all__ = [
    "FLAG_BELOW_MIN_WINDOW",
    "FLAG_CHANNELS_DISAGREE",
    "FLAG_ESTIMATE",
    "FLAG_INCOMPLETE",
    "FLAG_METER_ERROR",
    "FLAG_SHARED_DEVICE",
    "FLAG_SHARING_NOT_CHECKED",
    "FLAG_SHORT_WINDOW",
    "FLAG_SIMULATED",
    "DeviceEnergy",
    "Source",
    "Window",
]


class Clock(Protocol):
    """Wall clock, monotonic clock and sleep; injectable so that simulated devices can run on
    virtual time. Window edges are stamped with :meth:`time`; every interval (durations, power
    integration) is measured with :meth:`monotonic`, which never jumps with NTP or DST."""

    def time(self) -> float:
        """Unix time in seconds."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never goes backwards (only differences are meaningful)."""
        ...

    def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` (virtual clocks just advance)."""
        ...


class SystemClock:
    """The real clock: :func:`time.time` and :func:`time.sleep`."""

    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        """In the main thread, in short steps that end on a Ctrl-C even one a finaliser dropped
        (:func:`energybench.run.interrupt.sleep`): the idle baseline and the cool-down wait here."""
        if seconds <= 0:
            return
        if threading.current_thread() is threading.main_thread():
            interrupt.sleep(seconds)
        else:
            time.sleep(seconds)


SYSTEM_CLOCK = SystemClock()


#: Human scope of each device kind, for "GPU only; CPU/RAM not measured" style labels.
KIND_LABELS = {
    "gpu": "GPU",
    "module": "GPU + CPU + memory module",
    "cpu": "CPU",
    "dram": "DRAM",
    "ram": "RAM",
    "system": "system",
}


@dataclass
class MeterStatus:
    """What `energybench meters` prints for one meter."""

    name: str
    ok: bool
    reason: str = ""  # why it does not work (empty when ok)
    fix: str = ""  # how to make it work
    details: list[dict[str, Any]] = field(default_factory=list)  # one dict per device seen


class Meter(ABC):
    """One kind of energy source (NVML, RAPL, an estimate). Windows are identified by a key."""

    name: str = "meter"

    @abstractmethod
    def begin(self, key: str) -> None:
        """Open window ``key`` (read counters, mark the trace position)."""

    @abstractmethod
    def end(self, key: str) -> list[DeviceEnergy]:
        """Close window ``key`` and return one record per device it covers."""

    def live_power_w(self) -> float | None:
        """Latest total power seen by this meter, for progress display; None if unknown."""
        return None

    def live_power_is_estimate(self) -> bool:
        """Whether :meth:`live_power_w` comes from a power model (a source declared as an estimate)
        rather than a meter reading; the progress line marks such a figure."""
        return False

    def idle_power_w(self) -> dict[str, float]:
        """Idle power per device id measured by :meth:`EnergyMonitor.measure_idle`."""
        return {}

    def describe(self) -> list[dict[str, Any]]:
        """Environment facts for the manifest (one dict per device)."""
        return []

    def covers_host(self) -> str | None:
        """Why this GPU meter's figures already include the host's CPU and memory (a superchip
        module counter), or None. The monitor adds no host meter on top of one that does."""
        return None

    def add_note(self, note: str) -> None:
        """Attach ``note`` to the records of devices this meter covers (default: ignored)."""

    def update_period_s(self) -> float | None:
        """Slowest update period of this meter's readings in s (a shorter window is flagged)."""
        return None

    def temperatures_c(self) -> dict[str, float]:
        """Current temperature per device id in °C (for cool-down); empty when unknown."""
        return {}

    def start(self) -> None:
        """Start background work (samplers). Called once by the monitor."""

    def close(self) -> None:
        """Stop background work and flush traces."""


@dataclass(frozen=True)
class LivePower:
    """The live power figure of the progress line (W) and whether it includes an estimate."""

    power_w: float
    is_estimate: bool


class _Unset:
    """Marker type of an argument that was not given."""


_UNSET = _Unset()


class EnergyMonitor:
    """Opens named (nestable) windows on every meter at once, after a device synchronise.

    ``on_charging`` is told the GPU set of each :meth:`charging` block (simulated devices use it
    to load only those GPUs).
    ``sync`` is called at both edges of a window (e.g. ``torch.cuda.synchronize``) so that
    queued GPU work is counted in the window it belongs to. ``clock`` gives window edges (unix s);
    ``min_window_s`` flags windows shorter than a configured minimum (``below-min-window``).
    A window shorter than a meter's update period is flagged ``short-window``. ``end_window``
    never raises because of a meter: a failing meter is recorded in ``Window.flags``.
    """

    def __init__(
        self,
        meters: list[Meter],
        sync: Callable[[], None] | None = None,
        allow_estimates: bool = True,
        *,
        clock: Clock | None = None,
        min_window_s: float = 0.0,
        on_charging: Callable[[frozenset[int] | None], None] | None = None,
    ) -> None:
        self.meters = meters
        self._on_charging = on_charging
        self.sync = sync or (lambda: None)
        self.clock: Clock = clock or SYSTEM_CLOCK
        self.min_window_s = min_window_s
        self.idle_w: dict[str, float] = {}
        self.idle_temp_c: dict[str, float] = {}
        self.idle_measurement: Window | None = None
        self._open: dict[str, tuple[float, float]] = {}  # name -> (unix s, monotonic s)
        self._gpus: dict[str, frozenset[int] | None] = {}
        self._charge: frozenset[int] | None = None
        self._lock = threading.Lock()
        self._started = False
        self.allow_estimates = allow_estimates

    def start(self) -> None:
        if not self._started:
            for m in self.meters:
                m.start()
            self._started = True

    def close(self) -> None:
        for m in self.meters:
            m.close()
        self._started = False

    def __enter__(self) -> EnergyMonitor:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def charging(self, gpus: Collection[int] | None) -> Iterator[None]:
        """Windows opened inside (without their own ``gpus``) are charged for ``gpus`` only."""
        before = self._charge
        self._charge = None if gpus is None else frozenset(gpus)
        if self._on_charging is not None:  # e.g. a simulator loading only these GPUs
            self._on_charging(self._charge)
        try:
            yield
        finally:
            self._charge = before
            if self._on_charging is not None:
                self._on_charging(before)

    def begin_window(self, name: str, gpus: Collection[int] | None | _Unset = _UNSET) -> None:
        """Open window ``name`` on every meter.

        ``gpus``: torch (CUDA) positions of the GPUs the measured work uses; other GPUs seen in
        the window are recorded with ``charged=False`` and not summed. None charges every
        device; by default, what the enclosing :meth:`charging` says (else every device).
        """
        if isinstance(gpus, _Unset):
            gpus = self._charge
        self.start()
        with self._lock:
            if name in self._open:
                raise ValueError(f"window '{name}' is already open")
            self.sync()
            self._open[name] = (self.clock.time(), self.clock.monotonic())
            self._gpus[name] = None if gpus is None else frozenset(gpus)
            for m in self.meters:
                m.begin(name)

    def end_window(self, name: str) -> Window:
        """Close window ``name`` and return it, with the static/dynamic split per device."""
        flags: list[str] = []
        with self._lock:
            if name not in self._open:
                raise ValueError(f"window '{name}' is not open")
            self.sync()
            start, start_mono = self._open.pop(name)
            gpus = self._gpus.pop(name, None)
            devices: list[DeviceEnergy] = []
            for m in self.meters:
                try:
                    devices.extend(m.end(name))
                except Exception as exc:  # a meter must never stop the run
                    flags.append(f"{FLAG_METER_ERROR}:{m.name}:{type(exc).__name__}: {exc}")
            duration = max(self.clock.monotonic() - start_mono, 0.0)
        periods = [p for p in (m.update_period_s() for m in self.meters) if p is not None]
        if periods and duration < max(periods):
            flags.append(FLAG_SHORT_WINDOW)
        if duration < self.min_window_s:
            flags.append(FLAG_BELOW_MIN_WINDOW)
        for d in devices:
            d.charged = _charged(d, gpus)
            if not d.charged:
                continue
            _split_static(d, self.idle_w.get(d.device), duration)
            if d.cross_check and d.cross_check.get("flag"):
                flags.append(f"{FLAG_CHANNELS_DISAGREE}:{d.device}")
            if not d.complete:
                flags.append(f"{FLAG_INCOMPLETE}:{d.device}")
            if d.shared:
                flags.append(f"{FLAG_SHARED_DEVICE}:{d.device}")
            if not d.sharing_checked:
                flags.append(f"{FLAG_SHARING_NOT_CHECKED}:{d.device}")
        win = Window(name=name, start_unix_s=start, duration_s=duration, devices=devices)
        if win.is_estimate:
            flags.append(FLAG_ESTIMATE)
        if win.is_simulated:
            flags.append(FLAG_SIMULATED)
        win.flags = list(dict.fromkeys(flags))
        return win

    @contextmanager
    def window(
        self, name: str, gpus: Collection[int] | None | _Unset = _UNSET
    ) -> Iterator[WindowHandle]:
        """``with monitor.window("train", gpus=[0]) as w: ...``; ``w.measurement`` is set on exit.

        ``gpus`` as in :meth:`begin_window`."""
        handle = WindowHandle(name)
        self.begin_window(name, gpus)
        try:
            yield handle
        finally:
            handle.measurement = self.end_window(name)

    def measure_idle(self, seconds: float) -> dict[str, float]:
        """Measure idle power in W per device for ``seconds`` (nothing else should run).

        Later windows get ``static_j = idle_power_w x duration_s`` and
        ``dynamic_j = energy_j - static_j`` per device. Devices whose idle window was incomplete
        or unmeasured get no idle figure. The idle window itself is kept in
        :attr:`idle_measurement` (for the run store).
        """
        if seconds <= 0:
            return {}
        self.begin_window("__idle__")
        self.clock.sleep(seconds)
        meas = self.end_window("__idle__")
        self.idle_temp_c = self.temperatures_c()
        self.idle_measurement = meas
        for d in meas.devices:
            if d.energy_j is not None and d.complete and meas.duration_s > 0:
                self.idle_w[d.device] = d.energy_j / meas.duration_s
        return dict(self.idle_w)

    def set_idle(self, idle_w: dict[str, float], temp_c: dict[str, float] | None = None) -> None:
        """Use idle powers in W (and temperatures) measured elsewhere (e.g. an earlier run)."""
        self.idle_w = dict(idle_w)
        if temp_c:
            self.idle_temp_c = dict(temp_c)

    def temperatures_c(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for m in self.meters:
            try:
                out.update(m.temperatures_c())
            except Exception:  # noqa: BLE001 - a sensor failing must not stop the run
                continue
        return out

    def cool_down(self, tolerance_c: float, max_s: float, poll_s: float = 1.0) -> dict[str, Any]:
        """Wait until every device is within ``tolerance_c`` of its idle temperature.

        Gives up after ``max_s`` s. Returns what happened (for the run store): waited_s, reached,
        temperatures before/after; ``skipped`` with the reason when no temperature is known.
        """
        idle = self.idle_temp_c
        now = self.temperatures_c()
        common = sorted(set(idle) & set(now))
        if not common:
            why = "no idle temperature" if now else "no temperature sensor on the measured devices"
            return {"skipped": why}
        t0 = self.clock.monotonic()
        start = dict(now)

        def hot(temps: dict[str, float]) -> list[str]:
            return [d for d in common if d in temps and temps[d] > idle[d] + tolerance_c]

        while hot(now) and self.clock.monotonic() - t0 < max_s:
            self.clock.sleep(poll_s)
            now = self.temperatures_c()
        return {
            "waited_s": self.clock.monotonic() - t0,
            "reached": not hot(now),
            "idle_c": {d: idle[d] for d in common},
            "start_c": {d: start[d] for d in common},
            "end_c": {d: now.get(d) for d in common},
        }

    def live_power_w(self) -> float | None:
        vals = [p for p in (m.live_power_w() for m in self.meters) if p is not None]
        return sum(vals) if vals else None

    def live_power(self) -> LivePower | None:
        """Latest total power with whether any part of it is an estimate; None if unknown."""
        parts = [(m.live_power_w(), m) for m in self.meters]
        known = [(p, m) for p, m in parts if p is not None]
        if not known:
            return None
        return LivePower(
            power_w=sum(p for p, _ in known),
            is_estimate=any(m.live_power_is_estimate() for _, m in known),
        )

    def describe(self) -> list[dict[str, Any]]:
        return [dict(meter=m.name, **d) for m in self.meters for d in m.describe()]


def _charged(d: DeviceEnergy, gpus: frozenset[int] | None) -> bool:
    """Whether a window using the GPUs ``gpus`` (None: all) is charged for device ``d``.

    Host devices (CPU, RAM) are always charged. A GPU (or superchip module) is charged when one
    of its torch positions is used. A window that uses no GPU (CPU-side work) on a superchip
    node is charged the modules whose Grace CPUs the run may use (``cpu_side``: NVML's CPU
    affinity of the module meets the process's CPU affinity; every module where either is
    unknown), since their counters are the only figure of those CPUs. The rule depends on the
    device and the process only, never on what else the suite runs.
    """
    if gpus is None or d.kind not in ("gpu", "module"):
        return True
    if d.kind == "module" and not gpus:
        return d.cpu_side
    positions = set(d.cuda_positions)
    if d.cuda_position is not None:
        positions.add(d.cuda_position)
    return bool(positions & gpus)


def _split_static(d: DeviceEnergy, idle_w: float | None, duration_s: float) -> None:
    """Static (idle power x duration) and dynamic (the rest) energy of ``d``, in place.

    Not applicable to a constant-power model (its "dynamic" part is only noise). A window that
    used less than the idle baseline gets dynamic 0 J with a note, never a negative figure.
    """
    if idle_w is None or d.energy_j is None:
        return
    if d.constant_power:
        d.issues.append("static/dynamic split not applicable: constant-power model")
        return
    d.idle_power_w = idle_w
    d.static_j = min(idle_w * duration_s, d.energy_j)
    d.dynamic_j = d.energy_j - d.static_j
    if idle_w * duration_s > d.energy_j:
        d.issues.append(
            f"energy below the idle baseline ({idle_w:.3g} W x {duration_s:.3g} s): "
            "dynamic energy taken as 0 J"
        )


@dataclass
class WindowHandle:
    name: str
    measurement: Window | None = None
