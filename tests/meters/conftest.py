"""Shared fixtures for meter tests: a virtual clock and meters on the fake NVML module."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from energybench.meters.base import EnergyMonitor
from energybench.meters.gpu_select import GpuTarget
from energybench.meters.nvml import NvmlMeter
from energybench.meters.nvml_device import PynvmlBackend
from energybench.meters.sim.doubles import ManualClock
from energybench.meters.sim.fakenvml import FakeGpu, FakeNvml


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


def run_for(clock: ManualClock, meter: NvmlMeter, seconds: float, period: float = 0.05) -> None:
    """Advance virtual time by ``seconds``, sampling like the background thread would."""
    end = clock.monotonic() + seconds
    while clock.monotonic() + period <= end + 1e-9:
        clock.sleep(period)
        meter.poll()
    clock.sleep(max(end - clock.monotonic(), 0.0))


def nvml_meter(
    fake: FakeNvml, clock: ManualClock, positions: list[int] | None = None, **meter_kw: Any
) -> NvmlMeter:
    """An NvmlMeter over every GPU of ``fake`` through the real adapter (virtual time)."""
    backend = PynvmlBackend(fake)
    devs = backend.devices()
    positions = positions if positions is not None else list(range(len(devs)))
    targets = [GpuTarget(d, cuda_position=p) for d, p in zip(devs, positions, strict=True)]
    kw: dict[str, Any] = {"clock": clock, "background": False, "probe_s": 0, **meter_kw}
    return NvmlMeter(targets, driver_version=backend.driver_version(), **kw)


@pytest.fixture
def sim_monitor(clock: ManualClock) -> Callable[..., tuple[EnergyMonitor, NvmlMeter, FakeNvml]]:
    """``sim_monitor(power=..., **fakegpu_kwargs)`` -> (monitor, meter, fake NVML) on virtual
    time; the monitor synchronises with the fake's streams at window edges."""

    def make(meter_kw: dict[str, Any] | None = None, gpus: int = 1, **gpu_kw: Any):
        fake = FakeNvml([FakeGpu(**gpu_kw) for _ in range(gpus)], clock)
        meter = nvml_meter(fake, clock, **(meter_kw or {}))
        mon = EnergyMonitor([meter], sync=fake.synchronize, clock=clock)
        mon.start()
        return mon, meter, fake

    return make
