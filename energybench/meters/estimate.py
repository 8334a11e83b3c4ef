"""CPU and RAM energy *estimated* with codecarbon's power models, where nothing can be measured.

CPU: codecarbon's TDP database (``cpu_power.csv``, fuzzy-matched on the CPU brand string, with
its fallback of 4 W per thread for unknown CPUs) and its machine-level CPU-load model
(``codecarbon.external.hardware.CPU`` in ``cpu_load`` mode: ``TDP x (0.1 + 0.9 x load^3)``).
RAM: codecarbon's ``RAM`` model (about 5 W per estimated DIMM on x86). The modelled power is
integrated over time by a light poll thread into a software energy counter.

Every figure is labelled with the source ``estimate``. Uncertainty (~1 sigma): CPU +/-50 %
when the TDP was found in codecarbon's table, +/-100 % with its generic per-thread fallback;
RAM +/-50 %.
These are deliberately large: TDP-times-load models are not calibrated per machine and
comparisons against wattmeters (e.g. Jay et al., "An experimental comparison of software-based
power meters", CCGrid 2023) show errors of tens of percent. Estimates are for completeness, not
for ranking.

This module must make no network call and write no file: it never builds codecarbon's
trackers (which write ``emissions.csv`` and may call web APIs); it uses only the model pieces.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, cast

from energybench.meters.base import SYSTEM_CLOCK, Clock, DeviceEnergy, Meter, MeterStatus
from energybench.meters.context import MeterContext
from energybench.meters.plugins import MeterUnavailableError, Source
from energybench.meters.sampler import Poller

CPU_REL_UNCERTAINTY = 0.5
CPU_GENERIC_REL_UNCERTAINTY = 1.0
RAM_REL_UNCERTAINTY = 0.5
ESTIMATE = Source("estimate")

#: Returns (cpu_w, ram_w): mean modelled power over the interval since its previous call.
PowerFn = Callable[[], tuple[float, float]]


@dataclass(frozen=True)
class CpuSpec:
    """What codecarbon knows about this machine's CPU and RAM (W, GB)."""

    cpu_model: str
    tdp_w: float  # per socket when matched; machine-wide for the generic fallback
    sockets: int
    max_power_w: float  # what the load model scales: tdp x sockets (matched) or tdp (generic)
    generic_tdp: bool
    ram_w: float
    ram_gb: float


@lru_cache(maxsize=1)
def codecarbon_spec() -> CpuSpec:
    """Look the CPU up in codecarbon's TDP table and size RAM with its model (~2 s, cached).

    Offline: cpuinfo, psutil, ``lscpu`` and codecarbon's packaged CSV only.
    """
    from codecarbon.core.cpu import DEFAULT_POWER_PER_CORE, TDP
    from codecarbon.core.util import count_cpus, count_physical_cpus, detect_cpu_model
    from codecarbon.external.ram import RAM

    cc_log = logging.getLogger("codecarbon")
    level = cc_log.level
    cc_log.setLevel(logging.ERROR)  # its "unknown CPU" warnings are reported in describe()
    try:
        model = detect_cpu_model() or "Unknown CPU"
        # TDP() would do the same lookup but hide whether the table matched.
        matched = TDP.__new__(TDP)._get_cpu_power_from_registry(model)
        sockets = max(int(count_physical_cpus() or 1), 1)
        if matched:
            tdp, generic, max_power = float(matched), False, float(matched) * sockets
        else:
            tdp = float(count_cpus() * DEFAULT_POWER_PER_CORE)
            generic, max_power = True, tdp
        ram = RAM(tracking_mode="machine")
        ram_w = float(ram.total_power().W)
        ram_gb = float(ram.machine_memory_GB)
    finally:
        cc_log.setLevel(level)
    return CpuSpec(model, tdp, sockets, max_power, generic, ram_w, ram_gb)


def codecarbon_power_fn(spec: CpuSpec) -> PowerFn:
    """A :data:`PowerFn` backed by codecarbon's CPU-load model (machine-wide load via psutil)."""
    from codecarbon.external.hardware import CPU, MODE_CPU_LOAD

    cpu = CPU(
        output_dir="",
        mode=MODE_CPU_LOAD,
        model=spec.cpu_model,
        tdp=cast(int, spec.max_power_w),  # annotated int; codecarbon only multiplies it
        tracking_mode="machine",
    )
    cpu.start()  # baseline for the load meter; writes nothing in cpu_load mode

    def power() -> tuple[float, float]:
        return float(cpu.total_power().W), spec.ram_w

    return power


@dataclass
class _Cum:
    cpu_j: float = 0.0
    ram_j: float = 0.0
    last_t: float | None = None
    cpu_w: float | None = None
    ram_w: float | None = None
    errors: list[str] = field(default_factory=list)


class EstimateMeter(Meter):
    """Modelled CPU and RAM energy (source ``estimate``) for machines without RAPL.

    ``power_fn`` defaults to codecarbon's model for this machine (:func:`codecarbon_power_fn`);
    tests inject their own. ``poll_s`` is how often the model is re-evaluated in the background
    (load changes between polls are averaged). ``info`` describes the model for the manifest.
    """

    name = "estimate"

    def __init__(
        self,
        power_fn: PowerFn | None = None,
        *,
        spec: CpuSpec | None = None,
        cpu_rel_uncertainty: float | None = None,
        ram_rel_uncertainty: float = RAM_REL_UNCERTAINTY,
        poll_s: float = 1.0,
        clock: Clock | None = None,
        background: bool = True,
    ) -> None:
        if power_fn is None:
            spec = spec or codecarbon_spec()
            power_fn = codecarbon_power_fn(spec)
        self.spec = spec
        self.power_fn = power_fn
        if cpu_rel_uncertainty is None:
            generic = spec.generic_tdp if spec else False
            cpu_rel_uncertainty = CPU_GENERIC_REL_UNCERTAINTY if generic else CPU_REL_UNCERTAINTY
        self.cpu_rel, self.ram_rel = cpu_rel_uncertainty, ram_rel_uncertainty
        self.clock: Clock = clock or SYSTEM_CLOCK
        self.background = background
        self._cum = _Cum()
        self._lock = threading.Lock()
        self._windows: dict[str, tuple[float, float, float, int]] = {}
        self._poller = Poller(self.poll, poll_s, name="energybench-estimate")
        self.poll()

    def poll(self) -> float:
        """Evaluate the model now and add power x elapsed time to the software counters.

        Returns the time the poll stands for (read before the model is evaluated)."""
        with self._lock:
            t = self.clock.monotonic()
            try:
                cpu_w, ram_w = self.power_fn()
            except Exception as exc:
                self._cum.errors.append(f"{type(exc).__name__}: {exc}")
                return t
            c = self._cum
            if c.last_t is not None and t > c.last_t:
                c.cpu_j += cpu_w * (t - c.last_t)
                c.ram_j += ram_w * (t - c.last_t)
            c.last_t, c.cpu_w, c.ram_w = t, cpu_w, ram_w
            return t

    def start(self) -> None:
        if self.background:
            self._poller.start()

    def close(self) -> None:
        self._poller.stop()

    def _energy_at(self, t: float) -> tuple[float, float]:
        """Cumulative (cpu, ram) joules at ``t``: the counters plus the latest power since the
        last poll, so a window's figure covers its own span exactly, not from poll to poll.

        ``t`` may precede the last poll (the poll thread ticked between :meth:`begin`'s model
        evaluation and its reading of the counters): the latest power, which covers that span,
        is then taken back out."""
        c = self._cum
        if c.last_t is None or c.cpu_w is None or c.ram_w is None:
            return c.cpu_j, c.ram_j
        return c.cpu_j + c.cpu_w * (t - c.last_t), c.ram_j + c.ram_w * (t - c.last_t)

    def begin(self, key: str) -> None:
        t0 = self.poll()  # the window opens when the monitor asked, not after the model ran
        with self._lock:
            cpu0, ram0 = self._energy_at(t0)
            self._windows[key] = (t0, cpu0, ram0, len(self._cum.errors))

    def _names(self) -> tuple[str, str]:
        if self.spec is None:
            return "CPU (power model)", "RAM (power model)"
        s = self.spec
        tdp = f"{s.tdp_w:g} W{' generic' if s.generic_tdp else ''} TDP"
        return (
            f"{s.cpu_model} ({tdp}, codecarbon cpu-load model)",
            f"{s.ram_gb:.0f} GB RAM (codecarbon model)",
        )

    def end(self, key: str) -> list[DeviceEnergy]:
        self.poll()
        with self._lock:
            t1 = self.clock.monotonic()
            cpu_name, ram_name = self._names()
            win = self._windows.pop(key, None)
            recs = [
                DeviceEnergy("cpu:estimate", "cpu", cpu_name, ESTIMATE, None, complete=False),
                DeviceEnergy(
                    "ram:estimate",
                    "ram",
                    ram_name,
                    ESTIMATE,
                    None,
                    complete=False,
                    constant_power=True,
                ),
            ]
            if win is None:
                for r in recs:
                    r.issues.append(f"window '{key}' was not opened on the estimate meter")
                return recs
            t0, cpu0, ram0, nerr = win
            duration = max(t1 - t0, 0.0)
            failed = self._cum.errors[nerr:]
            cpu1, ram1 = self._energy_at(t1)
            for rec, e, rel in (
                (recs[0], cpu1 - cpu0, self.cpu_rel),
                (recs[1], ram1 - ram0, self.ram_rel),
            ):
                rec.energy_j = e
                rec.uncertainty_j = rel * e
                rec.mean_power_w = e / duration if duration > 0 else None
                rec.complete = not failed
                rec.issues.append(f"estimate from a power model, not a measurement (+/-{rel:.0%})")
                if failed:
                    rec.issues.append(f"power model failed {len(failed)} time(s): {failed[-1]}")
            return recs

    def live_power_is_estimate(self) -> bool:
        return True

    def live_power_w(self) -> float | None:
        c = self._cum
        if c.cpu_w is None or c.ram_w is None:
            return None
        return c.cpu_w + c.ram_w

    def describe(self) -> list[dict[str, Any]]:
        s = self.spec
        base: dict[str, Any] = {
            "model": "codecarbon cpu_load (machine)" if s else "injected power function",
            "source": ESTIMATE.value,
        }
        cpu: dict[str, Any] = {"device": "cpu:estimate", **base, "rel_uncertainty": self.cpu_rel}
        ram: dict[str, Any] = {"device": "ram:estimate", **base, "rel_uncertainty": self.ram_rel}
        if s is not None:
            cpu.update(
                cpu_model=s.cpu_model,
                tdp_w=s.tdp_w,
                sockets=s.sockets,
                max_power_w=s.max_power_w,
                generic_tdp=s.generic_tdp,
            )
            if s.generic_tdp:
                cpu["note"] = (
                    f"'{s.cpu_model}' is not in codecarbon's TDP table: using its fallback of "
                    "4 W per thread"
                )
            ram.update(ram_gb=s.ram_gb, ram_w=s.ram_w)
        return [cpu, ram]


def build(ctx: MeterContext) -> EstimateMeter:
    """The estimate plug-in's meter (:class:`MeterUnavailableError` without codecarbon's model)."""
    try:
        spec = codecarbon_spec()
    except Exception as exc:  # codecarbon missing or broken
        raise MeterUnavailableError(
            f"codecarbon's model is unavailable ({exc!r})", "pip install codecarbon"
        ) from exc
    return EstimateMeter(spec=spec, clock=ctx.clock, background=ctx.background)


def probe(ctx: MeterContext) -> MeterStatus:
    """The estimate plug-in's status: the CPU and RAM model codecarbon has for this machine."""
    try:
        s = codecarbon_spec()
    except Exception as exc:  # codecarbon missing or broken
        return MeterStatus(
            "estimate",
            ok=False,
            reason=f"codecarbon model unavailable: {exc!r}",
            fix="pip install codecarbon",
        )
    fix = "this is a model, not a measurement (+/-50 % or worse); use RAPL where possible"
    if s.generic_tdp:
        fix = (
            f"'{s.cpu_model}' is not in codecarbon's TDP table (generic 4 W/thread used, "
            "+/-100 %); " + fix
        )
    return MeterStatus(
        "estimate",
        ok=True,
        fix=fix,
        details=[
            {
                "device": "cpu:estimate",
                "cpu_model": s.cpu_model,
                "tdp_w": s.tdp_w,
                "sockets": s.sockets,
                "generic_tdp": s.generic_tdp,
            },
            {"device": "ram:estimate", "ram_gb": s.ram_gb, "ram_w": s.ram_w},
        ],
    )
