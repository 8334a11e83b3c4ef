"""Simulated devices for tests and benchmarks: an NVML GPU that replays a power trace, and a
fake RAPL sysfs tree. They sit behind the same seams the real meters use
(:class:`~energybench.meters.nvml.GpuDevice`/``GpuBackend`` and
:class:`~energybench.meters.rapl.RaplFs`), usually on a :class:`ManualClock` so that tests run
on virtual time. Nothing here touches real hardware; it is not a meter and must never be picked
by ``meters: [auto]``.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from energybench.meters.nvml import (
    GpuBackend,
    GpuDevice,
    GpuError,
    GpuLostError,
    GpuNotSupportedError,
)
from energybench.meters.rapl import RaplFs

SIM_START_UNIX_S = 1_700_000_000.0


class ManualClock:
    """A virtual clock: :meth:`sleep` advances it instantly. Unix seconds."""

    def __init__(self, start: float = SIM_START_UNIX_S) -> None:
        self.t = start

    def time(self) -> float:
        return self.t

    def monotonic(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.t += max(seconds, 0.0)

    advance = sleep


class PowerTrace:
    """Piecewise-constant power: ``points`` are (t_s, power_w) from which the power holds.

    Times are relative to the device's start; power before the first point is the first power.
    """

    def __init__(self, points: Sequence[tuple[float, float]] | float) -> None:
        if isinstance(points, (int, float)):
            points = [(0.0, float(points))]
        pts = sorted((float(t), float(p)) for t, p in points)
        if not pts:
            raise ValueError("a power trace needs at least one point")
        self.t = [t for t, _ in pts]
        self.p = [p for _, p in pts]
        self._cum = [0.0]  # energy in J from t[0] to t[i]
        for i in range(1, len(pts)):
            self._cum.append(self._cum[-1] + self.p[i - 1] * (self.t[i] - self.t[i - 1]))

    @classmethod
    def from_function(
        cls, fn: Callable[[float], float], duration_s: float, step_s: float = 0.01
    ) -> PowerTrace:
        """Sample ``fn(t) -> W`` every ``step_s`` over ``duration_s`` (held in between)."""
        n = int(math.ceil(duration_s / step_s))
        return cls([(i * step_s, fn(i * step_s)) for i in range(n + 1)])

    def power_w(self, t: float) -> float:
        i = bisect.bisect_right(self.t, t) - 1
        return self.p[max(i, 0)]

    def energy_j(self, t: float) -> float:
        """Energy in J from the first point to ``t`` (negative before it)."""
        if t <= self.t[0]:
            return self.p[0] * (t - self.t[0])
        i = bisect.bisect_right(self.t, t) - 1
        return self._cum[i] + self.p[i] * (t - self.t[i])


@dataclass
class SimFault:
    """Calls of ``method`` ("*" for all) raise ``kind`` from ``start_s`` to ``end_s`` (relative).

    ``kind``: "lost" (GpuLostError), "not_supported" (GpuNotSupportedError), "error" (GpuError).
    """

    method: str
    start_s: float
    end_s: float = math.inf
    kind: str = "lost"


@dataclass
class SimGpu(GpuDevice):
    """A GPU replaying ``trace`` on ``clock``.

    The sensor updates every ``update_period_s``; instantaneous power is the mean over the last
    ``sensor_window_s`` before the latest update (default: the whole period; 0.025 mimics the
    A100/H100 25-ms-in-100-ms behaviour), ``power_usage_mw`` a 1 s mean. The energy counter
    (mJ, offset by ``initial_energy_mj``) updates every ``counter_period_s`` (default: the
    sensor period) and restarts from 0 at ``counter_reset_at_s``. ``lost_at_s`` makes every call
    raise GpuLostError from then on; ``faults`` add finer failures. ``counter_supported=False``
    mimics pre-Volta GPUs. All times relative to ``t0`` (default: clock time at creation).
    """

    clock: ManualClock
    trace: PowerTrace = field(default_factory=lambda: PowerTrace(100.0))
    index: int = 0
    uuid_: str = ""
    name_: str = "Simulated GPU"
    update_period_s: float = 0.1
    sensor_window_s: float | None = None
    counter_period_s: float | None = None
    initial_energy_mj: int = 987_654_321
    counter_supported: bool = True
    instant_supported: bool = True
    counter_reset_at_s: float | None = None
    lost_at_s: float | None = None
    faults: list[SimFault] = field(default_factory=list)
    power_limit_w: float = 700.0
    arch: str = "hopper"
    mig: bool = False
    t0: float | None = None
    calls: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.trace, PowerTrace):
            self.trace = PowerTrace(self.trace)
        if not self.uuid_:
            self.uuid_ = f"GPU-{self.index:08x}-5151-4e00-8000-{self.index:012x}"
        if self.t0 is None:
            self.t0 = self.clock.time()

    # ------------------------------------------------------------------ helpers
    def rel(self) -> float:
        assert self.t0 is not None
        return self.clock.time() - self.t0

    def _check(self, method: str) -> float:
        self.calls[method] = self.calls.get(method, 0) + 1
        t = self.rel()
        if self.lost_at_s is not None and t >= self.lost_at_s:
            raise GpuLostError("GPU is lost (simulated)")
        for f in self.faults:
            if f.method in (method, "*") and f.start_s <= t < f.end_s:
                exc = {"lost": GpuLostError, "not_supported": GpuNotSupportedError}.get(
                    f.kind, GpuError
                )
                raise exc(f"simulated {f.kind} in {method}")
        return t

    @staticmethod
    def _last_update(t: float, period: float) -> float:
        return math.floor(t / period + 1e-9) * period

    def true_energy_j(self, t0_unix: float, t1_unix: float) -> float:
        """What the GPU really used between two unix times, in J."""
        assert self.t0 is not None
        return self.trace.energy_j(t1_unix - self.t0) - self.trace.energy_j(t0_unix - self.t0)

    def _mean_w(self, end: float, window: float) -> float:
        return (self.trace.energy_j(end) - self.trace.energy_j(end - window)) / window

    # ------------------------------------------------------------------ GpuDevice
    def uuid(self) -> str:
        return self.uuid_

    def name(self) -> str:
        return self.name_

    def total_energy_mj(self) -> int:
        t = self._check("total_energy_mj")
        if not self.counter_supported:
            raise GpuNotSupportedError("Not Supported (simulated pre-Volta GPU)")
        u = self._last_update(t, self.counter_period_s or self.update_period_s)
        if self.counter_reset_at_s is not None and t >= self.counter_reset_at_s:
            e = self.trace.energy_j(u) - self.trace.energy_j(self.counter_reset_at_s)
            return int(max(e, 0.0) * 1000)
        return self.initial_energy_mj + int(self.trace.energy_j(u) * 1000)

    def power_instant_mw(self) -> int:
        t = self._check("power_instant_mw")
        if not self.instant_supported:
            raise GpuNotSupportedError("Not Supported (simulated)")
        u = self._last_update(t, self.update_period_s)
        return int(round(self._mean_w(u, self.sensor_window_s or self.update_period_s) * 1000))

    def power_usage_mw(self) -> int:
        t = self._check("power_usage_mw")
        u = self._last_update(t, self.update_period_s)
        return int(round(self._mean_w(u, 1.0) * 1000))

    def temperature_c(self) -> float:
        t = self._check("temperature_c")
        return round(30.0 + 0.06 * self.trace.power_w(t))

    def sm_clock_mhz(self) -> float:
        t = self._check("sm_clock_mhz")
        return 1980.0 if self.trace.power_w(t) > 0.3 * self.power_limit_w else 345.0

    def utilization_pct(self) -> float:
        t = self._check("utilization_pct")
        return float(min(100.0, round(100 * self.trace.power_w(t) / self.power_limit_w)))

    def power_limit_mw(self) -> int | None:
        return int(self.power_limit_w * 1000)

    def architecture(self) -> str | None:
        return self.arch

    def mig_enabled(self) -> bool:
        return self.mig


@dataclass
class SimBackend(GpuBackend):
    """A set of simulated GPUs; ``mig`` maps MIG instance UUIDs to their parent GPU's UUID."""

    gpus: list[SimGpu]
    mig: dict[str, str] = field(default_factory=dict)
    driver: str = "550.54.15-sim"
    closed: int = 0

    def driver_version(self) -> str:
        return self.driver

    def devices(self) -> list[GpuDevice]:
        return list(self.gpus)

    def mig_parent_uuid(self, mig_id: str) -> str | None:
        want = mig_id.lower()
        hits = [p for m, p in self.mig.items() if m.lower().startswith(want)]
        return hits[0] if len(hits) == 1 else None

    def close(self) -> None:
        self.closed += 1


# =============================================================================== RAPL
class FakeRaplTree:
    """Builds a powercap tree under ``root`` (e.g. pytest's ``tmp_path``) and drives it.

    ``add_package(socket)`` creates ``intel-rapl:<socket>`` (package-<socket>) with optional
    ``dram``, ``core`` sub-zones; ``add_energy(zone, joules)`` advances a counter, wrapping at
    its ``max_energy_range_uj`` like the kernel does.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "intel-rapl").mkdir(exist_ok=True)  # the control type, no counter

    def _zone(self, zone: str, name: str, max_range_uj: int, energy_uj: int) -> str:
        d = self.root / zone
        d.mkdir(parents=True, exist_ok=True)
        (d / "name").write_text(f"{name}\n")
        (d / "max_energy_range_uj").write_text(f"{max_range_uj}\n")
        (d / "energy_uj").write_text(f"{energy_uj}\n")
        return zone

    def add_package(
        self,
        socket: int = 0,
        *,
        dram: bool = True,
        core: bool = True,
        max_range_uj: int = 262_143_328_850,
        energy_uj: int = 1_000_000,
    ) -> str:
        zone = self._zone(f"intel-rapl:{socket}", f"package-{socket}", max_range_uj, energy_uj)
        if core:
            self._zone(f"intel-rapl:{socket}:0", "core", max_range_uj, energy_uj)
        if dram:
            self._zone(f"intel-rapl:{socket}:1", "dram", 65_712_999_613, energy_uj)
        return zone

    def add_psys(self) -> str:
        return self._zone("intel-rapl:9", "psys", 262_143_328_850, 5)

    def energy_uj(self, zone: str) -> int:
        return int((self.root / zone / "energy_uj").read_text())

    def set_energy_uj(self, zone: str, value: int) -> None:
        (self.root / zone / "energy_uj").write_text(f"{value}\n")

    def add_energy(self, zone: str, joules: float) -> None:
        rng = int((self.root / zone / "max_energy_range_uj").read_text())
        self.set_energy_uj(zone, (self.energy_uj(zone) + int(round(joules * 1e6))) % rng)


class DeniedRaplFs(RaplFs):
    """A :class:`RaplFs` whose ``energy_uj`` reads raise PermissionError (as for non-root users
    since Linux 5.10), for all zones or those in ``zones``; ``after_reads`` lets that many
    reads succeed first."""

    def __init__(self, root: Path, zones: set[str] | None = None, after_reads: int = 0) -> None:
        super().__init__(root)
        self.zones_denied, self.after_reads, self.reads = zones, after_reads, 0

    def read(self, zone: str, file: str) -> str:
        if file == "energy_uj" and (self.zones_denied is None or zone in self.zones_denied):
            self.reads += 1
            if self.reads > self.after_reads:
                raise PermissionError(13, "Permission denied", str(self.root / zone / file))
        return super().read(zone, file)
