"""Shared fixtures for meter tests: a virtual clock and simulated-GPU meters."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from energybench.meters.base import EnergyMonitor
from energybench.meters.nvml import NvmlMeter
from energybench.meters.sim import ManualClock, SimGpu


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


def run_for(clock: ManualClock, meter: NvmlMeter, seconds: float, period: float = 0.05) -> None:
    """Advance virtual time by ``seconds``, sampling like the background thread would."""
    end = clock.time() + seconds
    while clock.time() + period <= end + 1e-9:
        clock.sleep(period)
        meter.poll()
    clock.sleep(max(end - clock.time(), 0.0))


@pytest.fixture
def sim_monitor(clock: ManualClock) -> Callable[..., tuple[EnergyMonitor, NvmlMeter, SimGpu]]:
    """``sim_monitor(trace=..., **simgpu_kwargs)`` -> (monitor, meter, gpu) on virtual time."""

    def make(meter_kw: dict[str, Any] | None = None, **gpu_kw: Any):
        gpu = SimGpu(clock, **gpu_kw)
        meter = NvmlMeter([gpu], clock=clock, background=False, **(meter_kw or {}))
        mon = EnergyMonitor([meter], clock=clock)
        mon.start()
        return mon, meter, gpu

    return make
