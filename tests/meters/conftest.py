"""Shared fixtures for meter tests: a virtual clock and meters on the fake NVML module."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from energybench.meters.base import EnergyMonitor
from energybench.meters.nvml import NvmlMeter
from energybench.meters.sim.doubles import ManualClock
from energybench.meters.sim.fakenvml import FakeGpu, FakeNvml
from tests.helpers.nvml import nvml_meter


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


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
