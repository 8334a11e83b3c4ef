"""Builds the :class:`EnergyMonitor` a run uses, and probes meters for ``energybench meters``.

``auto`` means: NVML for exactly the GPUs the run uses, RAPL for the CPU if readable, otherwise
codecarbon's estimate for CPU and RAM. On a superchip (GH200/GB200) the NVML module counter
already covers the Grace CPU and memory, so no CPU/RAM meter or estimate is ever added on top of
it (the reason is in the NVML meter's notes). Meters named explicitly are forced and fail with a
clear :class:`MeterUnavailableError` if they cannot work. ``simulate`` swaps NVML for a named
simulated server (:mod:`energybench.meters.simulate`). This module decides *which* meters run;
it must not measure anything itself or change any device setting.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from energybench.errors import UserError
from energybench.meters.base import (
    SYSTEM_CLOCK,
    Clock,
    DeviceEnergy,
    EnergyMonitor,
    Meter,
    MeterStatus,
    Source,
)
from energybench.meters.estimate import EstimateMeter, codecarbon_spec
from energybench.meters.gpu_select import GpuTarget, run_pids, select_gpus, visible_gpus
from energybench.meters.nvml import NvmlMeter
from energybench.meters.nvml_device import (
    GpuBackend,
    GpuError,
    GpuNotSupportedError,
    NvmlUnavailableError,
    PynvmlBackend,
)
from energybench.meters.nvml_probe import probe_update_periods
from energybench.meters.rapl import RaplFs, RaplMeter, RaplUnavailableError, rapl_status
from energybench.meters.simulate import (
    SIMULATE_PROFILES,
    BusyGpus,
    UnknownProfileError,
    simulated_gpu_count,
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


class MeterUnavailableError(UserError, RuntimeError):
    """A meter named in ``energy.meters`` cannot work here; ``str()`` says why and what to do."""


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
                source=Source.UNMEASURED,
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


def _torch_uuids() -> list[str] | None:
    """UUIDs of the GPUs CUDA opened, by torch position (None if torch/CUDA can't say)."""
    try:
        import torch

        if not torch.cuda.is_available():
            return None
        return [
            str(torch.cuda.get_device_properties(i).uuid) for i in range(torch.cuda.device_count())
        ]
    except Exception:
        return None


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
    :class:`~energybench.meters.simulate.UnknownProfileError` (a ValueError listing the
    profiles) for an unknown ``simulate``. ``host=False`` adds no CPU/RAM meter (another process
    of the node meters the host: the ranks of a distributed phase other than local rank 0).
    """
    names = set(settings.meters)
    auto = "auto" in names
    clock_kw: dict[str, Any] = {"clock": clock} if clock is not None else {}
    meters: list[Meter] = []
    env: str | None = None
    busy: BusyGpus | None = None
    if simulate is not None:
        busy = BusyGpus()
        fake = simulated_nvml(simulate, clock or SYSTEM_CLOCK, busy=busy)
        gpu_backend = PynvmlBackend(fake)
        env = ",".join(str(i) for i in range(simulated_gpu_count(simulate)))
        sync = sync or fake.synchronize
        torch_uuids = None

    gpu: Meter | None = None
    if "nvml" in names or (auto and cuda_devices):
        gpu = _gpu_meter(
            settings,
            cuda_devices,
            trace_dir,
            forced="nvml" in names,
            backend=gpu_backend,
            torch_uuids=torch_uuids,
            probe_s=probe_s,
            background=background,
            clock=clock,
            env=env,
            simulated=simulate is not None,
            own_pids=own_pids,
        )
    elif auto and host:  # a CPU-only run: on a superchip the module counter is the CPU's only meter
        gpu = _superchip_meter(
            settings,
            trace_dir,
            backend=gpu_backend,
            probe_s=probe_s,
            background=background,
            clock=clock,
            env=env,
            simulated=simulate is not None,
            own_pids=own_pids,
        )
    if gpu is not None:
        meters.append(gpu)

    modules = gpu.module_devices if isinstance(gpu, NvmlMeter) else []
    if modules and isinstance(gpu, NvmlMeter):
        skipped = sorted(names & {"rapl", "estimate"})
        gpu.add_note(
            "no CPU/RAM meter added: the superchip module counter already includes the Grace "
            "CPU and memory"
            + (f" (energy.meters names {', '.join(skipped)}: not added)" if skipped else "")
        )
    elif host:
        cpu_forced = names & {"rapl", "estimate"}
        if "rapl" in names or (auto and not cpu_forced):
            try:
                meters.append(RaplMeter(rapl_fs, background=background, **clock_kw))
            except RaplUnavailableError as exc:
                if "rapl" in names:
                    raise MeterUnavailableError(
                        f"energy.meters asks for 'rapl', but {exc.reason}. {exc.fix}"
                    ) from exc
                meters.append(EstimateMeter(background=background, **clock_kw))
        if "estimate" in names:
            meters.append(EstimateMeter(background=background, **clock_kw))

    if sync is None and cuda_devices and gpu_backend is None:
        sync = _cuda_sync(cuda_devices)
    return EnergyMonitor(
        meters,
        sync=sync,
        clock=clock,
        min_window_s=settings.min_window_s,
        on_charging=busy.set if busy is not None else None,
    )


def _nvml_meter(
    settings: EnergySettings,
    targets: list[GpuTarget],
    backend: GpuBackend,
    trace_dir: Path | None,
    **kw: Any,
) -> NvmlMeter:
    return NvmlMeter(
        targets,
        driver_version=backend.driver_version(),
        sample_period_s=settings.sample_period_s,
        cross_check_threshold=settings.cross_check_threshold,
        trace_dir=trace_dir,
        on_close=backend.close,
        **kw,
    )


def _superchip_meter(
    settings: EnergySettings,
    trace_dir: Path | None,
    *,
    backend: GpuBackend | None,
    env: str | None,
    **kw: Any,
) -> NvmlMeter | None:
    """An NVML meter over the visible superchip modules, or None (none, or no NVML)."""
    try:
        backend = backend or PynvmlBackend()
    except NvmlUnavailableError:
        return None
    try:
        targets = [t for t in select_gpus(backend, None, env=env) if t.device.scope() == "module"]
        if targets:
            return _nvml_meter(settings, targets, backend, trace_dir, **kw)
    except GpuError:
        pass
    backend.close()
    return None


def _gpu_meter(
    settings: EnergySettings,
    cuda_devices: list[int] | None,
    trace_dir: Path | None,
    *,
    forced: bool,
    backend: GpuBackend | None,
    torch_uuids: Sequence[str] | None,
    env: str | None,
    simulated: bool,
    **kw: Any,
) -> Meter:
    positions = list(cuda_devices or [])
    used = [f"gpu:cuda:{i}" for i in positions]

    def unmeasured(why: str) -> UnmeasuredMeter:
        return UnmeasuredMeter(used, why, positions, simulated=simulated)

    try:
        if backend is None:
            backend = PynvmlBackend()
            if torch_uuids is None and cuda_devices:
                torch_uuids = _torch_uuids()
    except NvmlUnavailableError as exc:
        if forced:
            raise MeterUnavailableError(f"energy.meters asks for 'nvml', but {exc}") from exc
        return unmeasured(f"GPU energy not measured: {exc}")
    try:
        targets = select_gpus(backend, cuda_devices, env=env, torch_uuids=torch_uuids)
        if not targets:
            raise GpuError(
                "no GPU is visible to this process (CUDA_VISIBLE_DEVICES="
                f"{os.environ.get('CUDA_VISIBLE_DEVICES')!r})"
            )
        return _nvml_meter(settings, targets, backend, trace_dir, simulated=simulated, **kw)
    except GpuError as exc:
        backend.close()
        if forced:
            raise MeterUnavailableError(f"energy.meters asks for 'nvml', but {exc}") from exc
        return unmeasured(f"GPU energy not measured: {exc}")


# =============================================================================== probing
def _probe_nvml(backend: GpuBackend | None, probe_s: float) -> MeterStatus:
    try:
        backend = backend or PynvmlBackend()
    except NvmlUnavailableError as exc:
        return MeterStatus("nvml", ok=False, reason=exc.reason, fix=exc.fix)
    try:
        driver = backend.driver_version()
        gpus = backend.devices()
        env = os.environ.get("CUDA_VISIBLE_DEVICES")
        visible, notes = visible_gpus(env, backend, os.environ.get("CUDA_DEVICE_ORDER"))
        visible_uuids = {d.uuid() for d, _ in visible}
        details: list[dict[str, Any]] = []
        fixes: list[str] = []
        for g in gpus:
            scope = g.scope()
            d: dict[str, Any] = {
                "index": g.index,
                "uuid": g.uuid(),
                "name": g.name(),
                "kind": scope,
                "driver": driver,
                "architecture": g.architecture(),
                "visible": g.uuid() in visible_uuids,
                "mig": g.mig_enabled(),
            }
            if scope == "module":
                fixes.append(
                    f"GPU {g.index} is a superchip: NVML reports GPU + CPU + memory module "
                    "energy (module scope); no CPU/RAM meter or estimate is added on top of it"
                )
            if d["mig"]:
                fixes.append(
                    f"GPU {g.index} is in MIG mode: its energy is shared by every instance and "
                    "windows on it are marked shared"
                )
            limit = g.power_limit_mw()
            d["power_limit_w"] = limit / 1000 if limit is not None else None
            d["power_usage_average_s"] = g.power_usage_average_s()
            try:
                others = sorted(set(g.compute_pids()) - run_pids())
                d["other_processes"] = others
                if others:
                    fixes.append(
                        f"GPU {g.index} runs other processes' compute work (pids "
                        f"{', '.join(map(str, others))}): windows on it would be marked shared"
                    )
            except GpuError:
                d["other_processes"] = None
            counter: Callable[[], float] | None = g.total_energy_mj
            power: Callable[[], float] | None = g.power_instant_mw
            for key, fn in (("counter", g.total_energy_mj), ("instant_power", g.power_instant_mw)):
                try:
                    fn()
                    d[f"{key}_supported"] = True
                except GpuNotSupportedError:
                    d[f"{key}_supported"] = False
                    if key == "counter":
                        counter = None
                        fixes.append(
                            f"GPU {g.index} has no energy counter (pre-Volta): energy "
                            "will be integrated from sampled power (less accurate)"
                        )
                    else:
                        power = g.power_usage_mw
            periods = probe_update_periods(counter, power, max_s=probe_s)
            d["counter_update_period_s"] = periods.counter_s
            d["power_update_period_s"] = periods.power_s
            details.append(d)
        if not gpus:
            return MeterStatus(
                "nvml", ok=False, reason="NVML works but sees no GPU", fix="check `nvidia-smi`"
            )
        if env is not None and not visible:
            fixes.append(f"CUDA_VISIBLE_DEVICES={env!r} hides every GPU")
        return MeterStatus("nvml", ok=True, fix="; ".join(fixes + notes), details=details)
    except GpuError as exc:
        return MeterStatus(
            "nvml",
            ok=False,
            reason=f"NVML query failed: {exc}",
            fix="check the GPU with `nvidia-smi`; a lost GPU needs a reset/reboot",
        )
    finally:
        backend.close()


def _probe_estimate() -> MeterStatus:
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


def probe_meters(
    *,
    gpu_backend: GpuBackend | None = None,
    rapl_fs: RaplFs | None = None,
    probe_s: float = 0.5,
    simulate: str | None = None,
) -> list[MeterStatus]:
    """Each meter, what it sees, and for each one that does not work why and how to fix it.

    ``simulate`` probes the simulated server of that profile instead of NVML (the details say
    ``simulated``). On a superchip, RAPL and the estimate are reported as not used.
    """
    if simulate is not None:
        gpu_backend = PynvmlBackend(simulated_nvml(simulate))
    nvml = _probe_nvml(gpu_backend, probe_s)
    if simulate is not None:
        nvml.name = f"nvml (simulated: {simulate})"
        for d in nvml.details:
            d["simulated"] = True
    cpu = [rapl_status(rapl_fs), _probe_estimate()]
    if any(d.get("kind") == "module" for d in nvml.details):
        why = (
            "not used here: the superchip module counter (NVML) already includes the Grace CPU "
            "and memory"
        )
        for st in cpu:
            st.fix = f"{why}; {st.fix}" if st.fix else why
    return [nvml, *cpu]
