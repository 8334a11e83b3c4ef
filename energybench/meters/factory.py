"""Builds the :class:`EnergyMonitor` a run uses, and probes meters for ``energybench meters``.

Which meters run comes from the meter table (:data:`energybench.meters.plugins.METERS`) alone:
``auto`` means the first GPU meter that works (NVML) for exactly the GPUs the run uses, and the
first host meter that works (RAPL, else codecarbon's estimate) for the CPU and memory. A GPU
meter whose figures already cover the host (a GH200/GB200 module counter) gets no host meter
or estimate on top of it (the reason is in its notes). Meters named explicitly are forced and
fail with a clear :class:`MeterUnavailableError` if they cannot work. ``simulate`` swaps NVML for
a named simulated server (:mod:`energybench.meters.sim.profiles`). This module decides *which*
meters run; it must not measure anything itself or change any device setting.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from energybench.meters.base import (
    SYSTEM_CLOCK,
    Clock,
    DeviceEnergy,
    EnergyMonitor,
    Meter,
    MeterStatus,
)
from energybench.meters.context import MeterContext
from energybench.meters.nvml_device import GpuBackend, PynvmlBackend
from energybench.meters.pidns import ProcView
from energybench.meters.plugins import (
    METERS,
    MeterPlugin,
    MeterUnavailableError,
    Source,
)
from energybench.meters.rapl import RaplFs
from energybench.meters.sim.profiles import (
    SIMULATE_PROFILES,
    BusyGpus,
    UnknownProfileError,
    simulated_gpu_count,
    simulated_host,
    simulated_nvml,
)
from energybench.suite.schema import EnergySettings

__all__ = [
    "SIMULATE_PROFILES",
    "MeterUnavailableError",
    "UnknownProfileError",
    "UnmeasuredMeter",
    "build_monitor",
    "probe_meters",
    "simulated_gpu_count",
]


class UnmeasuredMeter(Meter):
    """Stands in for GPUs that are used but cannot be measured: every window reports them with
    ``energy_j=None``, ``complete=False`` and the reason, so the gap is never a silent zero."""

    name = "unmeasured"

    def __init__(
        self,
        devices: Sequence[str],
        reason: str,
        cuda_positions: Sequence[int | None] | None = None,
        simulated: bool = False,
    ) -> None:
        self.devices, self.reason = list(devices), reason
        self.cuda_positions = list(cuda_positions or [None] * len(self.devices))
        self.simulated = simulated

    def begin(self, key: str) -> None:
        return None

    def end(self, key: str) -> list[DeviceEnergy]:
        return [
            DeviceEnergy(
                device=d,
                kind="gpu",
                name=d,
                source=Source("unmeasured"),
                energy_j=None,
                complete=False,
                issues=[self.reason],
                cuda_position=pos,
                simulated=self.simulated,
            )
            for d, pos in zip(self.devices, self.cuda_positions, strict=True)
        ]

    def describe(self) -> list[dict[str, Any]]:
        return [{"device": d, "reason": self.reason} for d in self.devices]


def _cuda_sync(cuda_devices: Sequence[int]) -> Callable[[], None] | None:
    try:
        import torch
    except ImportError:
        return None
    if not torch.cuda.is_available():
        return None
    devices = list(cuda_devices)

    def sync() -> None:
        for d in devices:
            torch.cuda.synchronize(d)

    return sync


class _Simulated:
    """The seams of a ``--simulate`` profile: the fake NVML behind the real adapter (its
    ``busy`` state charged by the windows), its ``CUDA_VISIBLE_DEVICES``, its ``/proc`` view and
    CPU affinity, and the window synchronisation of its streams."""

    def __init__(self, profile: str, clock: Clock | None) -> None:
        host = simulated_host(profile)
        self.proc: ProcView | None = host.proc
        affinity = host.cpus
        self.cpus = (lambda: affinity) if affinity is not None else None
        self.busy = BusyGpus()
        fake = simulated_nvml(profile, clock or SYSTEM_CLOCK, busy=self.busy)
        self.gpu_backend: GpuBackend = PynvmlBackend(fake)
        self.env = ",".join(str(i) for i in range(simulated_gpu_count(profile)))
        self.sync: Callable[[], None] = fake.synchronize


def build_monitor(
    settings: EnergySettings,
    cuda_devices: list[int] | None,
    trace_dir: Path | None,
    *,
    simulate: str | None = None,
    gpu_backend: GpuBackend | None = None,
    rapl_fs: RaplFs | None = None,
    clock: Clock | None = None,
    torch_uuids: Sequence[str] | None = None,
    probe_s: float = 1.0,
    background: bool = True,
    sync: Callable[[], None] | None = None,
    own_pids: Callable[[], set[int]] | None = None,
    host: bool = True,
) -> EnergyMonitor:
    """The monitor for one run.

    ``cuda_devices`` are torch device indices (positions in ``CUDA_VISIBLE_DEVICES``) the run
    uses; None means no GPU. ``trace_dir`` receives ``power-nvml.csv`` (None: no trace).
    ``simulate`` names a profile of :data:`SIMULATE_PROFILES`: NVML is then the fake module of
    that profile behind the real adapter, windows synchronise with its streams, and every GPU
    record is ``simulated`` (positions ``0..simulated_gpu_count(profile)-1``). The other keyword
    arguments are seams for tests and the benchmark (an NVML backend, a fake powercap tree, a
    virtual clock, the window ``sync``, the run's own pids). Without ``sync``, windows are
    synchronised with ``torch.cuda.synchronize`` on the used GPUs. On a superchip, no CPU/RAM
    meter is added on top of the module counter, even when ``estimate`` is named. Raises
    :class:`MeterUnavailableError` for an explicitly named meter that cannot work, and
    :class:`~energybench.meters.sim.profiles.UnknownProfileError` (a ValueError listing the
    profiles) for an unknown ``simulate``. ``host=False`` adds no CPU/RAM meter (another process
    of the node meters the host: the ranks of a distributed phase other than local rank 0).
    """
    names = set(settings.meters)
    auto = "auto" in names
    busy: BusyGpus | None = None
    env: str | None = None
    proc: ProcView | None = None
    cpus: Callable[[], frozenset[int] | None] | None = None
    if simulate is not None:
        sim = _Simulated(simulate, clock)
        busy, env, proc, cpus = sim.busy, sim.env, sim.proc, sim.cpus
        gpu_backend, sync, torch_uuids = sim.gpu_backend, sync or sim.sync, None
    ctx = MeterContext(
        settings=settings,
        cuda_devices=tuple(cuda_devices or ()),
        trace_dir=trace_dir,
        host=host,
        background=background,
        probe_s=probe_s,
        clock=clock,
        gpu_backend=gpu_backend,
        env=env,
        rapl_fs=rapl_fs,
        torch_uuids=torch_uuids,
        own_pids=own_pids,
        simulated=simulate is not None,
        proc=proc,
        cpu_affinity=cpus,
    )
    meters = _meters(ctx, names, auto)
    if sync is None and cuda_devices and gpu_backend is None:
        sync = _cuda_sync(cuda_devices)
    return EnergyMonitor(
        meters,
        sync=sync,
        clock=clock,
        min_window_s=settings.min_window_s,
        on_charging=busy.set if busy is not None else None,
    )


def _meters(ctx: MeterContext, names: set[str], auto: bool) -> list[Meter]:
    """The GPU meter (if any), then the CPU/RAM meters unless ``ctx.host`` is off or the GPU
    meter's counter already covers the host (a superchip module: noted on the GPU meter)."""
    meters: list[Meter] = []
    gpu = _gpu_meter(ctx, names, auto)
    covered = gpu.covers_host() if gpu is not None else None
    if gpu is not None:
        meters.append(gpu)
        if covered is not None:
            skipped = sorted(names & {p.name for p in METERS.role("host")})
            gpu.add_note(
                f"no CPU/RAM meter added: {covered}"
                + (f" (energy.meters names {', '.join(skipped)}: not added)" if skipped else "")
            )
    if ctx.host and covered is None:
        meters.extend(_host_meters(ctx, names, auto))
    return meters


def _forced(plugin: MeterPlugin, ctx: MeterContext) -> Meter:
    try:
        return plugin.make(ctx.with_forced(True))
    except MeterUnavailableError as exc:
        raise MeterUnavailableError(f"energy.meters asks for '{plugin.name}', but {exc}") from exc


def _gpu_meter(ctx: MeterContext, names: set[str], auto: bool) -> Meter | None:
    """The named GPU meter, or under ``auto`` the first that works (for a run that uses no GPU:
    one whose figures cover the host, if any). Used GPUs no meter can read are unmeasured."""
    plugins = METERS.role("gpu")
    named = [p for p in plugins if p.name in names]
    if named:
        return _forced(named[0], ctx)
    if not auto or not (ctx.cuda_devices or ctx.host):
        return None
    reasons = []
    for plugin in (p for p in plugins if p.auto):
        try:
            return plugin.make(ctx)
        except MeterUnavailableError as exc:
            reasons.append(str(exc))
    if not ctx.cuda_devices:
        return None
    positions = list(ctx.cuda_devices)
    why = "; ".join(reasons) or "no GPU meter is registered"
    return UnmeasuredMeter(
        [f"gpu:cuda:{i}" for i in positions],
        f"GPU energy not measured: {why}",
        positions,
        simulated=ctx.simulated,
    )


def _host_meters(ctx: MeterContext, names: set[str], auto: bool) -> list[Meter]:
    """Every named host meter, or under ``auto`` (none named) the first that works."""
    plugins = METERS.role("host")
    named = [p for p in plugins if p.name in names]
    if named or not auto:
        return [_forced(p, ctx) for p in named]
    reasons = []
    for plugin in (p for p in plugins if p.auto):
        try:
            return [plugin.make(ctx)]
        except MeterUnavailableError as exc:
            reasons.append(f"{plugin.name}: {exc}")
    raise MeterUnavailableError(
        "no meter can measure or estimate the CPU and memory here (" + "; ".join(reasons) + ")"
    )


def probe_meters(
    *,
    gpu_backend: GpuBackend | None = None,
    rapl_fs: RaplFs | None = None,
    probe_s: float = 0.5,
    simulate: str | None = None,
) -> list[MeterStatus]:
    """Each meter, what it sees, and for each one that does not work why and how to fix it.

    ``simulate`` probes the simulated server of that profile instead of NVML (the details say
    ``simulated``). Where a GPU meter covers the host (a superchip), host meters are reported
    as not used.
    """
    proc: ProcView | None = None
    if simulate is not None:
        gpu_backend = PynvmlBackend(simulated_nvml(simulate))
        proc = simulated_host(simulate).proc
    ctx = MeterContext(
        probe_s=probe_s,
        gpu_backend=gpu_backend,
        rapl_fs=rapl_fs,
        simulated=simulate is not None,
        proc=proc,
    )
    gpus = [p.status(ctx) for p in METERS.role("gpu")]
    if simulate is not None:
        for st in gpus:
            st.name = f"{st.name} (simulated: {simulate})"
    hosts = [p.status(ctx) for p in METERS.role("host")]
    if any(d.get("kind") == "module" for st in gpus for d in st.details):
        why = (
            "not used here: the superchip module counter (NVML) already includes the Grace CPU "
            "and memory"
        )
        for st in hosts:
            st.fix = f"{why}; {st.fix}" if st.fix else why
    return [*gpus, *hosts]
