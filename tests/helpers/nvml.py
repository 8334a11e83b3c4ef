"""Helpers for meter tests: meters on the fake NVML module, driven by a virtual clock."""

from __future__ import annotations

from typing import Any

from energybench.meters.gpu_select import GpuTarget
from energybench.meters.nvml import NvmlMeter
from energybench.meters.nvml_device import PynvmlBackend
from energybench.meters.sim.doubles import ManualClock
from energybench.meters.sim.fakenvml import FakeNvml


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
