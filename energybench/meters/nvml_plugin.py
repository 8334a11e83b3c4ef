"""The NVML meter plug-in: which GPUs to meter (:func:`build`) and what NVML sees (:func:`probe`).

Named in ``energy.meters`` (forced), it meters every GPU the run uses, or every visible GPU when
the run uses none, and fails with the reason when NVML cannot. On a superchip node (GH200/GB200)
it also meters every visible module, whatever GPUs the run uses: their counters cover the Grace
CPUs and memory (the monitor then adds no host meter), and CPU-side work is charged the modules
whose Grace CPUs the process may use (:func:`energybench.meters.base._charged`), the same in
every suite. Chosen by ``auto`` for a run that uses no GPU, it meters only those modules. It
never changes a device setting.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from energybench.meters.base import MeterStatus
from energybench.meters.context import MeterContext
from energybench.meters.gpu_select import GpuTarget, run_pids, select_gpus, visible_gpus
from energybench.meters.nvml import NvmlMeter
from energybench.meters.nvml_device import (
    GpuBackend,
    GpuDevice,
    GpuError,
    GpuNotSupportedError,
    NvmlUnavailableError,
    PynvmlBackend,
)
from energybench.meters.nvml_probe import probe_update_periods
from energybench.meters.pidns import PidView, pid_view, run_keys
from energybench.meters.plugins import MeterUnavailableError


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


def _meter(ctx: MeterContext, targets: list[GpuTarget], backend: GpuBackend) -> NvmlMeter:
    assert ctx.settings is not None, "a meter is built for a run's energy settings"
    return NvmlMeter(
        targets,
        driver_version=backend.driver_version(),
        sample_period_s=ctx.settings.sample_period_s,
        cross_check_threshold=ctx.settings.cross_check_threshold,
        trace_dir=ctx.trace_dir,
        on_close=backend.close,
        clock=ctx.clock,
        probe_s=ctx.probe_s,
        background=ctx.background,
        own_pids=ctx.own_pids,
        simulated=ctx.simulated,
        proc=ctx.proc,
        cpu_affinity=ctx.cpu_affinity,
    )


def build(ctx: MeterContext) -> NvmlMeter:
    """The NVML meter for ``ctx`` (:class:`MeterUnavailableError` with NVML's reason)."""
    try:
        backend: GpuBackend = ctx.gpu_backend or PynvmlBackend()
    except NvmlUnavailableError as exc:
        raise MeterUnavailableError(exc.reason, exc.fix) from exc
    torch_uuids = ctx.torch_uuids
    if ctx.gpu_backend is None and torch_uuids is None and ctx.cuda_devices:
        torch_uuids = _torch_uuids()
    try:
        if ctx.forced or ctx.cuda_devices:
            targets = select_gpus(
                backend, list(ctx.cuda_devices) or None, env=ctx.env, torch_uuids=torch_uuids
            )
            if not targets:
                raise GpuError(
                    "no GPU is visible to this process (CUDA_VISIBLE_DEVICES="
                    f"{os.environ.get('CUDA_VISIBLE_DEVICES')!r})"
                )
        else:
            targets = []
        seen = {t.device.uuid() for t in targets}
        targets += [  # every module: CPU-side work is charged by the process's CPUs
            t
            for t in select_gpus(backend, None, env=ctx.env)
            if t.device.scope() == "module" and t.device.uuid() not in seen
        ]
        if not targets:
            raise GpuError("no superchip module is visible and the run uses no GPU")
        return _meter(ctx, targets, backend)
    except GpuError as exc:
        backend.close()
        raise MeterUnavailableError(str(exc)) from exc


def _sharing_details(
    g: GpuDevice, d: dict[str, Any], ctx: MeterContext, view: PidView
) -> list[str]:
    """Other processes' compute work on GPU ``g`` (``d["other_processes"]``; None when it
    cannot be told apart from this run's), and what that means for its windows."""
    try:
        others = sorted(set(g.compute_pids()) - run_keys(run_pids(), view, ctx.proc))
    except GpuError as exc:
        d["other_processes"] = None
        return [f"GPU {g.index}: process list not readable ({exc}): sharing not checked"]
    d["other_processes"] = others
    if others and not view.matchable:
        d["other_processes"] = None
        return [f"GPU {g.index}: {view.note}; windows on it are marked sharing not checked"]
    if others:
        return [
            f"GPU {g.index} runs other processes' compute work (pids "
            f"{', '.join(map(str, others))}): windows on it would be marked shared"
        ]
    return []


def _channel_details(g: GpuDevice, d: dict[str, Any], ctx: MeterContext) -> list[str]:
    """Which energy channels GPU ``g`` supports and how often they update (measured now)."""
    fixes: list[str] = []
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
    periods = probe_update_periods(counter, power, max_s=ctx.probe_s)
    d["counter_update_period_s"] = periods.counter_s
    d["power_update_period_s"] = periods.power_s
    return fixes


def _gpu_details(
    g: GpuDevice, driver: str, visible_uuids: set[str], ctx: MeterContext, view: PidView
) -> tuple[dict[str, Any], list[str]]:
    """What ``probe`` reports of one GPU, and the notes for the user about it."""
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
    if ctx.simulated:
        d["simulated"] = True
    fixes: list[str] = []
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
    fixes += _sharing_details(g, d, ctx, view)
    fixes += _channel_details(g, d, ctx)
    return d, fixes


def probe(ctx: MeterContext) -> MeterStatus:
    """Each GPU NVML sees: kind, counters, update periods, MIG and other processes."""
    name = "nvml"
    try:
        backend: GpuBackend = ctx.gpu_backend or PynvmlBackend()
    except NvmlUnavailableError as exc:
        return MeterStatus(name, ok=False, reason=exc.reason, fix=exc.fix)
    try:
        driver = backend.driver_version()
        gpus = backend.devices()
        env = os.environ.get("CUDA_VISIBLE_DEVICES")
        visible, notes = visible_gpus(env, backend, os.environ.get("CUDA_DEVICE_ORDER"))
        visible_uuids = {d.uuid() for d, _ in visible}
        details: list[dict[str, Any]] = []
        fixes: list[str] = []
        view = pid_view(ctx.proc)
        for g in gpus:
            d, found = _gpu_details(g, driver, visible_uuids, ctx, view)
            details.append(d)
            fixes += found
        if not gpus:
            return MeterStatus(
                name, ok=False, reason="NVML works but sees no GPU", fix="check `nvidia-smi`"
            )
        if env is not None and not visible:
            fixes.append(f"CUDA_VISIBLE_DEVICES={env!r} hides every GPU")
        return MeterStatus(name, ok=True, fix="; ".join(fixes + notes), details=details)
    except GpuError as exc:
        return MeterStatus(
            name,
            ok=False,
            reason=f"NVML query failed: {exc}",
            fix="check the GPU with `nvidia-smi`; a lost GPU needs a reset/reboot",
        )
    finally:
        backend.close()
