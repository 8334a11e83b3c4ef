"""The NVML energy meter: energy of the GPUs (or superchip modules) a run uses.

Two channels per GPU:

* **counter** — ``nvmlDeviceGetTotalEnergyConsumption`` (mJ since driver load, Volta and newer;
  on superchips the module-scope ``NVML_FI_DEV_ENERGY`` field) read at both window edges.
  Primary where supported.
* **integrated** — a background :class:`~energybench.meters.sampler.PowerSampler` reading
  instantaneous power (``NVML_FI_DEV_POWER_INSTANT``; falling back to
  ``nvmlDeviceGetPowerUsage``, a ~1 s average on most Ampere-and-later parts but instantaneous
  on GA100), trapezoid-integrated. Primary before Volta, a cross-check elsewhere.

A GPU in MIG mode, or running compute work of a process other than this one and its children
(checked at window edges and about once a second while sampling), is reported ``shared`` with
the reason. Every device record carries the torch ``cuda_position`` of its GPU.

Device access goes through :mod:`energybench.meters.nvml_device` (GPU selection and the run's
own processes in :mod:`~energybench.meters.gpu_select`, the period probe in
:mod:`~energybench.meters.nvml_probe`, the channels' uncertainty in
:mod:`~energybench.meters.nvml_uncertainty`); the meter is the monitor side of that line and
re-exports their main names. This module only *reads*: it must never change a GPU setting,
and ``NvmlMeter.end`` must never raise (an unmeasurable GPU is ``energy_j=None`` or
``complete=False`` with the reason in ``issues``). Intervals use ``clock.monotonic()``.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from energybench.meters.base import SYSTEM_CLOCK, Clock, DeviceEnergy, Meter
from energybench.meters.gpu_select import (
    GpuTarget,
    run_pids,
    select_gpus,
)
from energybench.meters.nvml_device import (
    POWER_USAGE_AVERAGE_S,
    GpuDevice,
    GpuError,
    GpuLostError,
    GpuNoPermissionError,
    GpuNotSupportedError,
)
from energybench.meters.nvml_probe import UpdatePeriods, probe_update_periods
from energybench.meters.nvml_uncertainty import (
    counter_uncertainty_j,
    integrated_uncertainty_j,
)
from energybench.meters.pidns import PidView, ProcView, pid_view, run_keys
from energybench.meters.plugins import Source
from energybench.meters.sampler import PowerSampler, Reading, WindowStats

__all__ = [
    "GpuError",
    "GpuNotSupportedError",
    "GpuTarget",
    "NvmlMeter",
    "counter_uncertainty_j",
    "integrated_uncertainty_j",
    "probe_update_periods",
    "run_pids",
    "select_gpus",
]

#: Update period assumed when it could not be probed (s); ~100 ms on current GPUs.
ASSUMED_UPDATE_PERIOD_S = 0.1
#: How often the GPU's process list is read while sampling (s).
PROCESS_CHECK_S = 1.0
TRACE_FILE = "power-nvml.csv"
MODULE_LABEL = "GPU + CPU + memory module"
NVML_COUNTER = Source("nvml-counter")  # nvmlDeviceGetTotalEnergyConsumption deltas
NVML_INTEGRATED = Source("nvml-power-integrated")  # sampled power, trapezoid-integrated


# =============================================================================== the meter
def _process_cpus() -> frozenset[int] | None:
    """The CPUs this process may run on (``os.sched_getaffinity``), None where unknown."""
    try:
        return frozenset(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return None


@dataclass
class _Gpu:
    target: GpuTarget
    id: str
    uuid: str
    name: str
    kind: str = "gpu"  # "gpu" | "module"
    counter_ok: bool = False
    power_channel: str | None = None  # "instant" | "average" | None
    usage_average_s: float = POWER_USAGE_AVERAGE_S
    periods: UpdatePeriods = field(default_factory=UpdatePeriods)
    notes: list[str] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)
    aux_off: set[str] = field(default_factory=set)  # extras found unsupported
    procs_ok: bool = True
    procs_checked_s: float | None = None  # monotonic time of the last process check
    foreign: list[tuple[float, tuple[int, ...]]] = field(default_factory=list)
    unknown: list[tuple[float, tuple[int, ...]]] = field(default_factory=list)  # unmatchable
    positions: list[int | None] = field(default_factory=list)  # torch positions it covers
    cpus: frozenset[int] | None = None  # CPUs attached (a superchip's Grace)
    cpu_side: bool = True  # a CPU-only window is charged this module
    counter_gpu_only: bool = False  # a module whose energy counter covers the GPU alone

    def __post_init__(self) -> None:
        if not self.positions:
            self.positions = [self.target.cuda_position]


@dataclass
class _Edge:
    counter_mj: int | None
    error: str | None
    cum_j: float | None
    read_errors: int = 0  # failed power reads of the sampler so far


@dataclass
class _Window:
    t0: float  # monotonic s
    edges: dict[str, _Edge]


def _module(tgt: GpuTarget, uuid: str, name: str, run_cpus: frozenset[int] | None) -> _Gpu:
    """A superchip module. Its scope label follows what its counter really covers: where the
    module energy field is not supported, ``nvmlDeviceGetTotalEnergyConsumption`` counts the
    GPU alone and is not used for the module (module-scope power is integrated instead); where
    no module-scope field works at all the device is a GPU (GPU-only counter, Grace CPU and
    memory not measured). It is charged to CPU-only windows (``cpu_side``) when its Grace CPUs
    are among the CPUs the run may use, or when either is unknown."""
    dev = tgt.device
    cpus = dev.cpu_affinity()
    try:
        counter_scope = dev.counter_scope()
    except GpuError:
        counter_scope = "module"  # lost or failing now: the window edges will say so
    if counter_scope != "module" and not _module_power_works(dev):
        g = _Gpu(tgt, f"gpu:{uuid}", uuid, f"{name} (GPU only)")
        g.notes.append(
            "superchip whose module-scope fields are not supported by this driver: energy is "
            "nvmlDeviceGetTotalEnergyConsumption, the GPU alone; the Grace CPU and memory are "
            "not measured by NVML"
        )
        return g
    g = _Gpu(tgt, f"module:{uuid}", uuid, f"{name} ({MODULE_LABEL})", kind="module", cpus=cpus)
    g.cpu_side = cpus is None or run_cpus is None or bool(cpus & run_cpus)
    g.notes.append(
        f"superchip: NVML reports {MODULE_LABEL} energy (read with NVML_POWER_SCOPE_MODULE), "
        "not the GPU alone; no CPU/RAM figure is added on top of it"
    )
    if counter_scope != "module":
        g.counter_gpu_only = True
        g.notes.append(
            "the module energy field (NVML_FI_DEV_ENERGY, module scope) is not supported by "
            "this driver and nvmlDeviceGetTotalEnergyConsumption counts the GPU only: module "
            "energy is integrated from module-scope power"
        )
    return g


def _module_power_works(dev: GpuDevice) -> bool:
    for fn in (dev.power_instant_mw, dev.power_usage_mw):
        try:
            fn()
            return True
        except GpuError:
            continue
    return False


class NvmlMeter(Meter):
    """Energy of the GPUs a run uses: counter deltas first, integrated power as cross-check.

    ``targets`` are the GPUs to measure (see :func:`select_gpus`). ``sample_period_s`` is the
    power sampling period; ``cross_check_threshold`` the relative disagreement between the two
    channels that sets ``cross_check["flag"]`` (only judged on windows long enough for edge
    effects to stay below the threshold: ``min_window_s = 2 x update period / threshold``).
    ``probe_s`` bounds the update-period probe at :meth:`start` (0 skips it and assumes
    100 ms). ``background=False`` samples only at window edges and when :meth:`poll` is
    called (for virtual-clock tests). The power trace goes to ``trace_dir/power-nvml.csv``.
    ``own_pids`` returns the pids whose GPU work is the run's own (default :func:`run_pids`:
    this process and its children); ``simulated`` marks every record as simulated.
    ``pid_view_`` / ``proc`` say whether the run is in a PID namespace (default: read from
    ``/proc``, see :mod:`~energybench.meters.pidns`); ``cpu_affinity`` returns the CPUs the
    run may use (default ``os.sched_getaffinity(0)``), which decides the superchip modules a
    CPU-only window is charged (:func:`_module`).
    """

    name = "nvml"

    def __init__(
        self,
        targets: Sequence[GpuTarget | GpuDevice],
        *,
        driver_version: str | None = None,
        sample_period_s: float = 0.05,
        cross_check_threshold: float = 0.10,
        trace_dir: Path | None = None,
        clock: Clock | None = None,
        probe_s: float = 1.0,
        background: bool = True,
        on_close: Callable[[], None] | None = None,
        own_pids: Callable[[], set[int]] | None = None,
        simulated: bool = False,
        pid_view_: PidView | None = None,
        proc: ProcView | None = None,
        cpu_affinity: Callable[[], frozenset[int] | None] | None = None,
    ) -> None:
        self.clock: Clock = clock or SYSTEM_CLOCK
        self.sample_period_s = sample_period_s
        self.cross_check_threshold = cross_check_threshold
        self.trace_path = trace_dir / TRACE_FILE if trace_dir is not None else None
        self.probe_s, self.background = probe_s, background
        self.driver_version = driver_version
        self.simulated = simulated
        self._own_pids = own_pids or run_pids
        self._on_close = on_close
        self._pids = pid_view(proc) if pid_view_ is None else pid_view_
        self._proc = proc
        self._gpus: list[_Gpu] = []
        run_cpus = (cpu_affinity or _process_cpus)()
        for t in targets:
            tgt = t if isinstance(t, GpuTarget) else GpuTarget(t)
            uuid = tgt.device.uuid()
            name = tgt.device.name()
            if tgt.device.scope() != "module":
                self._gpus.append(_Gpu(tgt, f"gpu:{uuid}", uuid, name))
                continue
            g = _module(tgt, uuid, name, run_cpus)
            lead = next((x for x in self._gpus if x.cpus and x.cpus == g.cpus), None)
            if g.kind == "module" and lead is not None:  # GB200: one Grace, two GPUs
                lead.positions.append(tgt.cuda_position)
                lead.notes.append(
                    f"GPU {uuid} shares this module (one Grace CPU): the module is read once, "
                    "on this GPU, and charged to a window using either GPU"
                )
                continue
            self._gpus.append(g)
        self.sampler: PowerSampler | None = None
        self._windows: dict[str, _Window] = {}
        self._lock = threading.RLock()
        self._plock = threading.Lock()
        self._closed = False

    @property
    def module_devices(self) -> list[str]:
        """Ids of the superchip modules measured (their figure includes CPU and memory)."""
        return [g.id for g in self._gpus if g.kind == "module"]

    def covers_host(self) -> str | None:
        if not self.module_devices:
            return None
        return "the superchip module counter already includes the Grace CPU and memory"

    def add_note(self, note: str) -> None:
        """Add ``note`` to every module's notes (records' ``issues`` and :meth:`describe`)."""
        for g in self._gpus:
            if g.kind == "module" and note not in g.notes:
                g.notes.append(note)

    # ------------------------------------------------------------------ setup
    def _setup(self) -> None:
        if self.sampler is not None:
            return
        readers: dict[str, Callable[[], Reading]] = {}
        for g in self._gpus:
            dev = g.target.device
            self._probe_channels(g)
            try:
                self._check_procs(g, self.clock.monotonic())
            except GpuError:
                pass
            if self.probe_s > 0:
                g.periods = probe_update_periods(
                    dev.total_energy_mj if g.counter_ok else None,
                    self._power_fn(g) if g.power_channel else None,
                    self.clock,
                    max_s=self.probe_s,
                )
            g.info = self._gpu_info(g)
            if g.power_channel:
                readers[g.id] = self._reader(g)
        self.sampler = PowerSampler(
            readers, period_s=self.sample_period_s, clock=self.clock, trace_path=self.trace_path
        )

    def _probe_channels(self, g: _Gpu) -> None:
        """Which of ``g``'s energy counter and power fields can be read (instant power first,
        then NVML's average), with a note for each one missing."""
        dev = g.target.device
        try:
            if not g.counter_gpu_only:
                dev.total_energy_mj()
                g.counter_ok = True
        except GpuNotSupportedError:
            g.notes.append("no energy counter (needs Volta or newer): energy is integrated power")
        except GpuError as exc:
            g.notes.append(f"energy counter unreadable at start ({exc})")
        for channel, fn in (("instant", dev.power_instant_mw), ("average", dev.power_usage_mw)):
            try:
                fn()
                g.power_channel = channel
                break
            except GpuError:
                continue
        g.usage_average_s = dev.power_usage_average_s()
        if g.power_channel == "average":
            nature = (
                f"a ~{g.usage_average_s:g} s average on this GPU"
                if g.usage_average_s > 0
                else "instantaneous on this GPU"
            )
            g.notes.append(
                f"instantaneous power field not available: sampling "
                f"nvmlDeviceGetPowerUsage ({nature})"
            )
        elif g.power_channel is None:
            g.notes.append("power is not readable: no integrated channel")

    def _gpu_info(self, g: _Gpu) -> dict[str, Any]:
        """``g`` as its records describe it: identity, driver, power limit, channels."""
        dev = g.target.device
        limit = dev.power_limit_mw()
        return {
            "index": dev.index,
            "uuid": g.uuid,
            "name": g.name,
            "kind": g.kind,
            "driver": self.driver_version,
            "architecture": dev.architecture(),
            "cuda_position": g.target.cuda_position,
            "mig": g.target.mig_id,
            "mig_mode": g.target.mig,
            "power_limit_w": limit / 1000 if limit is not None else None,
            "counter_supported": g.counter_ok,
            "power_channel": g.power_channel,
            "power_usage_average_s": g.usage_average_s,
            "simulated": self.simulated,
        }

    def _power_fn(self, g: _Gpu) -> Callable[[], float]:
        dev = g.target.device
        return dev.power_instant_mw if g.power_channel == "instant" else dev.power_usage_mw

    def _check_procs(self, g: _Gpu, now: float) -> None:
        """Record other processes' compute work on ``g`` at monotonic time ``now``.

        A pid that is not the run's is another process's where NVML's pids can be matched
        (outside a PID namespace, or inside one whose host pids are visible); inside a
        container whose host pids are not visible it is *unknown* (sharing not checked).
        A process list NVML does not give (not supported, no permission) is noted once."""
        if not g.procs_ok:
            return
        g.procs_checked_s = now
        try:
            pids = g.target.device.compute_pids()
        except (GpuNotSupportedError, GpuNoPermissionError) as exc:
            g.procs_ok = False
            why = "no permission" if isinstance(exc, GpuNoPermissionError) else "not supported"
            g.notes.append(
                f"the GPU's process list is not readable ({why}: {exc}): sharing not checked"
            )
            return
        me = os.getpid()
        others = [p for p in pids if p != me]
        if others:
            own = run_keys(self._own_pids(), self._pids, self._proc)
            others = [p for p in others if p not in own]
        if others:
            found = (now, tuple(sorted(set(others))))
            with self._plock:
                (g.foreign if self._pids.matchable else g.unknown).append(found)
            note = f"{self._pids.note}: sharing not checked"
            if not self._pids.matchable and note not in g.notes:
                g.notes.append(note)

    def _reader(self, g: _Gpu) -> Callable[[], Reading]:
        power = self._power_fn(g)
        dev = g.target.device
        extras = (
            ("temp", dev.temperature_c),
            ("clock", dev.sm_clock_mhz),
            ("util", dev.utilization_pct),
        )

        def read() -> Reading:
            p_w = power() / 1000.0
            vals: list[float | None] = []
            for key, fn in extras:
                v = None
                if key not in g.aux_off:
                    try:
                        v = fn()
                    except GpuNotSupportedError:
                        g.aux_off.add(key)
                vals.append(v)
            now = self.clock.monotonic()
            if g.procs_checked_s is None or now - g.procs_checked_s >= PROCESS_CHECK_S:
                try:
                    self._check_procs(g, now)
                except GpuError:
                    pass
            return Reading(p_w, *vals)

        return read

    def temperatures_c(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for g in self._gpus:
            try:
                out[g.id] = float(g.target.device.temperature_c())
            except Exception:  # noqa: BLE001 - unsupported or lost: no figure for this GPU
                continue
        return out

    def counter_period_s(self, g: _Gpu) -> float:
        return g.periods.counter_s or ASSUMED_UPDATE_PERIOD_S

    def effective_power_period_s(self, g: _Gpu) -> float:
        """Time resolution of the integrated channel: the slower of sampling and the sensor,
        and the averaging window when sampling a power *average*."""
        sensor = g.periods.power_s or ASSUMED_UPDATE_PERIOD_S
        if g.power_channel == "average":
            sensor = max(sensor, g.usage_average_s)
        return max(sensor, self.sample_period_s)

    # ------------------------------------------------------------------ Meter API
    def start(self) -> None:
        with self._lock:
            self._setup()
            assert self.sampler is not None
            if self.background:
                self.sampler.start()

    def close(self) -> None:
        with self._lock:
            if self.sampler is not None:
                self.sampler.stop()
            if self._on_close is not None and not self._closed:
                self._on_close()
            self._closed = True

    def poll(self) -> None:
        """Take one power sample of every GPU now (what the background thread does)."""
        self._setup()
        assert self.sampler is not None
        self.sampler.poll()

    def _read_counter(self, g: _Gpu) -> tuple[int | None, str | None]:
        if not g.counter_ok:
            return None, None
        try:
            return g.target.device.total_energy_mj(), None
        except GpuLostError as exc:
            return None, f"GPU lost: {exc}"
        except GpuError as exc:
            return None, f"{type(exc).__name__}: {exc}"

    def _edge_procs(self, now: float) -> None:
        for g in self._gpus:
            try:
                self._check_procs(g, now)
            except GpuError:
                continue

    def begin(self, key: str) -> None:
        with self._lock:
            self.poll()
            assert self.sampler is not None
            t0 = self.clock.monotonic()
            edges: dict[str, _Edge] = {}
            for g in self._gpus:
                c0, err = self._read_counter(g)
                cum = None
                if g.power_channel and not self.sampler.failing(g.id):
                    cum = self.sampler.cum_energy_j(g.id, t0)
                errs = self.sampler.errors(g.id) if g.power_channel else 0
                edges[g.id] = _Edge(c0, err, cum, errs)
            self._edge_procs(t0)
            self.sampler.open_window(key)
            self._windows[key] = _Window(t0, edges)

    def end(self, key: str) -> list[DeviceEnergy]:
        with self._lock:
            try:
                self.poll()
            except Exception:  # never raise out of end()
                pass
            t1 = self.clock.monotonic()
            self._edge_procs(t1)
            win = self._windows.pop(key, None)
            stats = self.sampler.close_window(key) if self.sampler else {}
            out: list[DeviceEnergy] = []
            for g in self._gpus:
                try:
                    if win is None:
                        raise KeyError(f"window '{key}' was not opened on the NVML meter")
                    out.append(self._energy(g, win, t1, stats.get(g.id)))
                except Exception as exc:
                    out.append(
                        DeviceEnergy(
                            device=g.id,
                            kind=g.kind,
                            name=g.name,
                            source=NVML_COUNTER,
                            energy_j=None,
                            complete=False,
                            issues=[*g.target.issues, *g.notes, f"measurement failed: {exc!r}"],
                            simulated=self.simulated,
                            cuda_position=g.target.cuda_position,
                            cuda_positions=[p for p in g.positions if p is not None],
                            cpu_side=g.cpu_side,
                        )
                    )
            self._prune_foreign()
            return out

    def _prune_foreign(self) -> None:
        oldest = min((w.t0 for w in self._windows.values()), default=math.inf)
        with self._plock:
            for g in self._gpus:
                g.foreign = [(t, p) for t, p in g.foreign if t >= oldest]
                g.unknown = [(t, p) for t, p in g.unknown if t >= oldest]

    def _sharing(self, g: _Gpu, t0: float, t1: float) -> tuple[list[str], list[str]]:
        """Why ``g``'s energy in [t0, t1] is not the run's alone, and why that could not be
        checked (both empty: it is the run's alone)."""
        reasons: list[str] = []
        if g.target.mig:
            reasons.append(
                "shared device: MIG mode is on; NVML energy is the whole GPU's, shared by "
                "every instance on it"
            )
        with self._plock:
            pids = sorted({p for t, ps in g.foreign if t0 <= t <= t1 for p in ps})
            unknown = sorted({p for t, ps in g.unknown if t0 <= t <= t1 for p in ps})
        if pids:
            reasons.append(
                "shared device: other processes ran compute work on this GPU during the window "
                f"(pids {', '.join(map(str, pids))}); its energy is not this run's alone"
            )
        unchecked: list[str] = []  # an unreadable process list is in the GPU's notes already
        if unknown:
            unchecked.append(
                f"sharing not checked: NVML pids {', '.join(map(str, unknown))} seen in this "
                "window may be this run's own (PID namespace)"
            )
        return reasons, unchecked

    def _integrated_j(
        self, g: _Gpu, win: _Window, t1: float, issues: list[str]
    ) -> tuple[float | None, bool]:
        """Integrated sampled power over the window (None: no power channel), and whether the
        sampling failed during it (the figure then covers only the part before)."""
        assert self.sampler is not None
        edge = win.edges[g.id]
        if not g.power_channel or edge.cum_j is None:
            return None, False
        cum1 = self.sampler.cum_energy_j(g.id, t1)
        integrated = max(cum1 - edge.cum_j, 0.0) if cum1 is not None else None
        if self.sampler.failing(g.id):
            last = self.sampler.last_sample(g.id)
            when = f" after {last[0] - win.t0:.3f} s" if last else ""
            issues.append(
                f"power sampling failed{when} ({self.sampler.last_error(g.id)}): integrated "
                "energy covers only the part of the window before that"
            )
            return integrated, True
        if self.sampler.errors(g.id) > edge.read_errors:
            issues.append(
                f"{self.sampler.errors(g.id) - edge.read_errors} power read(s) failed "
                f"during the window ({self.sampler.last_error(g.id)}); the integrated "
                "channel bridges the gaps linearly"
            )
        return integrated, False

    def _counter_j(self, g: _Gpu, win: _Window, issues: list[str]) -> tuple[float | None, bool]:
        """The energy counter's advance over the window (None: not read or not usable), and
        whether it was read cleanly at both edges without going backwards."""
        if not g.counter_ok:
            return None, True
        edge = win.edges[g.id]
        c1, err1 = self._read_counter(g)
        if edge.error or err1:
            issues.append(
                f"energy counter unreadable at window {'start' if edge.error else 'end'} "
                f"({edge.error or err1})"
            )
            return None, False
        if edge.counter_mj is None or c1 is None:
            return None, True
        if c1 < edge.counter_mj:
            issues.append(
                f"energy counter went backwards ({edge.counter_mj} -> {c1} mJ): counter "
                "reset (driver reload or GPU reset?); energy from integrated power"
            )
            return None, False
        return (c1 - edge.counter_mj) / 1000.0, True

    def _chosen(
        self,
        g: _Gpu,
        counter: float | None,
        integrated: float | None,
        duration: float,
        stats: WindowStats | None,
        issues: list[str],
    ) -> tuple[Source, float | None, float | None]:
        """The figure the window reports: the counter when it advanced, else integrated power
        (uncertainty >= 100 % when the counter stood still), else none; its source and sigma."""
        t_counter = self.counter_period_s(g)
        if counter is not None and counter > 0:
            return NVML_COUNTER, counter, counter_uncertainty_j(counter, duration, t_counter)
        if integrated is not None:
            t_power = self.effective_power_period_s(g)
            sigma = integrated_uncertainty_j(integrated, duration, t_power, stats)
            if counter == 0.0 and duration > 0:
                issues.append(
                    f"energy counter did not advance in {duration:.3f} s (update period "
                    f"{t_counter:.3f} s): energy from sampled power, uncertainty >= 100 %"
                )
                sigma = max(sigma, integrated)
            return NVML_INTEGRATED, integrated, sigma
        if counter == 0.0:
            issues.append("energy counter did not advance and no power samples: not measured")
        else:
            issues.append("no usable channel for this window: not measured")
        return NVML_COUNTER, None, None

    def _cross_check(
        self, g: _Gpu, counter: float | None, integrated: float | None, duration: float
    ) -> dict[str, Any] | None:
        """Counter against integrated power (both usable): their relative difference, flagged
        above the threshold in windows long enough for it to mean something."""
        if counter is None or counter <= 0 or integrated is None:
            return None
        rel = abs(integrated - counter) / counter
        t_counter, t_power = self.counter_period_s(g), self.effective_power_period_s(g)
        min_s = 2 * max(t_counter, t_power) / self.cross_check_threshold
        return {
            "integrated_j": integrated,
            "counter_j": counter,
            "rel_diff": rel,
            "flag": bool(rel > self.cross_check_threshold and duration >= min_s),
            "min_window_s": min_s,
        }

    def _energy(self, g: _Gpu, win: _Window, t1: float, stats: WindowStats | None) -> DeviceEnergy:
        duration = max(t1 - win.t0, 0.0)
        issues = [*g.target.issues, *g.notes]
        integrated, lost_sampling = self._integrated_j(g, win, t1, issues)
        counter, counter_clean = self._counter_j(g, win, issues)
        t_counter = self.counter_period_s(g)
        if duration < t_counter and g.counter_ok:
            issues.append(
                f"window of {duration:.3f} s is shorter than the counter update period "
                f"({t_counter:.3f} s): the figure is mostly edge effects"
            )
        source, energy, sigma = self._chosen(g, counter, integrated, duration, stats, issues)
        complete = not lost_sampling and counter_clean and energy is not None
        cross = None if lost_sampling else self._cross_check(g, counter, integrated, duration)
        sharing, unchecked = self._sharing(g, win.t0, t1)
        return DeviceEnergy(
            device=g.id,
            kind=g.kind,
            name=g.name,
            source=source,
            energy_j=energy,
            uncertainty_j=sigma,
            mean_power_w=(energy / duration) if energy is not None and duration > 0 else None,
            peak_power_w=stats.peak_w if stats else None,
            samples=stats.samples if stats else 0,
            complete=complete,
            issues=issues + sharing + unchecked,
            cross_check=cross,
            shared=bool(sharing),
            sharing_checked=g.procs_ok and not unchecked,
            simulated=self.simulated,
            cuda_position=g.target.cuda_position,
            cuda_positions=[p for p in g.positions if p is not None],
            cpu_side=g.cpu_side,
        )

    def live_power_w(self) -> float | None:
        if self.sampler is None:
            return None
        vals = []
        for g in self._gpus:
            if g.power_channel and not self.sampler.failing(g.id):
                last = self.sampler.last_sample(g.id)
                if last is not None:
                    vals.append(last[1])
        return sum(vals) if vals else None

    def update_period_s(self) -> float | None:
        if not self._gpus:
            return None
        return max(
            self.counter_period_s(g) if g.counter_ok else self.effective_power_period_s(g)
            for g in self._gpus
        )

    def describe(self) -> list[dict[str, Any]]:
        out = []
        for g in self._gpus:
            d: dict[str, Any] = {
                "device": g.id,
                "index": g.target.device.index,
                "uuid": g.uuid,
                "name": g.name,
                "kind": g.kind,
                "driver": self.driver_version,
                "cuda_position": g.target.cuda_position,
                "mig": g.target.mig_id,
                **g.info,
            }
            d.update(
                counter_update_period_s=g.periods.counter_s,
                power_update_period_s=g.periods.power_s,
                update_period_probe_s=g.periods.probe_s,
                assumed_update_period_s=ASSUMED_UPDATE_PERIOD_S,
                sample_period_s=self.sample_period_s,
                trace=str(self.trace_path) if self.trace_path else None,
                notes=[*g.target.issues, *g.notes],
            )
            out.append(d)
        return out
