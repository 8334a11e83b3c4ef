"""A GPU in MIG mode or running another process's compute work is reported shared."""

from __future__ import annotations

import math
import os

import pytest

from energybench.meters.base import FLAG_SHARED_DEVICE, EnergyMonitor
from energybench.meters.gpu_select import select_gpus
from energybench.meters.nvml import NvmlMeter
from energybench.meters.nvml_device import PynvmlBackend
from energybench.meters.sim.fakenvml import FakeGpu, FakeNvml
from tests.helpers.nvml import nvml_meter, run_for

ME = os.getpid()
CHILD = ME + 1 if ME + 1 != 99 else ME + 2


def monitor(clock, **gpu_kw) -> tuple[EnergyMonitor, NvmlMeter, FakeNvml]:
    fake = FakeNvml([FakeGpu(power=200.0, **gpu_kw)], clock)
    meter = nvml_meter(fake, clock, own_pids=lambda: {ME, CHILD})
    mon = EnergyMonitor([meter], sync=fake.synchronize, clock=clock)
    mon.start()
    return mon, meter, fake


def window(mon, meter, clock, seconds: float = 10.0):
    mon.begin_window("w")
    run_for(clock, meter, seconds)
    return mon.end_window("w")


def test_own_process_and_children_are_not_sharing(clock):
    mon, meter, _ = monitor(clock, processes=[(ME, 0, math.inf), (CHILD, 0, math.inf)])
    m = window(mon, meter, clock)
    d = m.devices[0]
    assert not d.shared and not m.is_shared and m.flags == []
    assert d.energy_j == pytest.approx(2000.0, rel=0.02)  # measured all the same


def test_another_process_at_the_window_edges_makes_it_shared(clock):
    mon, meter, _ = monitor(clock, processes=[(ME, 0, math.inf), (99, 0, math.inf)])
    m = window(mon, meter, clock, 1.0)
    d = m.devices[0]
    assert d.shared and m.is_shared and f"{FLAG_SHARED_DEVICE}:{d.device}" in m.flags
    assert any("pids 99" in i and "other processes" in i for i in d.issues)
    assert d.energy_j is not None  # still reported, with the reason


def test_another_process_between_the_edges_is_caught_while_sampling(clock):
    """Catches: checking the process list only at window edges."""
    mon, meter, _ = monitor(clock, processes=[(99, 4.0, 6.5)])
    run_for(clock, meter, 1.0)
    m = window(mon, meter, clock, 10.0)  # device time 1..11; pid 99 ran from 4 to 6.5 s
    assert m.devices[0].shared and any("pids 99" in i for i in m.devices[0].issues)
    m2 = window(mon, meter, clock, 3.0)  # it is gone: the next window is the run's alone
    assert not m2.devices[0].shared and m2.flags == []


def test_mig_mode_makes_it_shared(clock):
    fake = FakeNvml([FakeGpu(power=200.0, mig=(1, 1))], clock)
    backend = PynvmlBackend(fake)
    targets = select_gpus(backend, [0], env="0")
    meter = NvmlMeter(targets, clock=clock, background=False, probe_s=0)
    mon = EnergyMonitor([meter], clock=clock)
    m = window(mon, meter, clock, 2.0)
    d = m.devices[0]
    assert d.shared and any("MIG" in i for i in d.issues)
    assert f"{FLAG_SHARED_DEVICE}:{d.device}" in m.flags
    assert meter.describe()[0]["mig_mode"] is True


def test_unreadable_process_list_is_noted_not_fatal(clock):
    from energybench.meters.sim.fakenvml import NVML_ERROR_NOT_SUPPORTED, Fault

    mon, meter, _ = monitor(
        clock,
        faults=[Fault("nvmlDeviceGetComputeRunningProcesses", 0.0, code=NVML_ERROR_NOT_SUPPORTED)],
    )
    d = window(mon, meter, clock, 2.0).devices[0]
    assert not d.shared and d.complete
    assert any("sharing not checked" in i for i in d.issues)
