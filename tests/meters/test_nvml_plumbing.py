"""Plumbing errors in the NVML path that must turn a test red.

Each test names the wrong line it catches; each was checked by applying that mutation by hand
(see docs/validation/mutation-meters.md). All run the real adapter on the fake NVML module.
"""

from __future__ import annotations

import pytest

from energybench.meters.base import EnergyMonitor, Source
from energybench.meters.nvml_device import GpuNotSupportedError, GpuReadError, PynvmlBackend
from energybench.meters.sim.fakenvml import FakeGpu, FakeNvml, PowerTrace
from tests.helpers.nvml import nvml_meter, run_for


def test_window_edges_synchronise_queued_gpu_work(sim_monitor, clock):
    """Catches: removing the synchronise at either window edge (``EnergyMonitor.sync``)."""
    mon, meter, fake = sim_monitor(power=60.0)
    fake.submit(0, 2.0, 400.0)  # earlier work, still queued when the window opens
    mon.begin_window("w")
    t0 = clock.monotonic()
    fake.submit(0, 3.0, 500.0)  # the window's work: asynchronous, as CUDA kernels are
    m = mon.end_window("w")
    d = m.devices[0]
    assert clock.monotonic() - t0 == pytest.approx(3.0)
    assert m.duration_s == pytest.approx(3.0)
    assert d.source is Source("nvml-counter")
    assert d.energy_j == pytest.approx(1500.0, rel=0.03)
    assert d.energy_j == pytest.approx(fake.true_energy_j(0, t0, clock.monotonic()), rel=0.03)


def test_each_gpu_keeps_its_own_start_reading(clock):
    """Catches: every GPU given the first GPU's start counter (or start integral)."""
    gpus = [
        FakeGpu(power=100.0, counter_offset_mj=5_000_000_000),
        FakeGpu(power=300.0, counter_offset_mj=9_000_000_000),
    ]
    fake = FakeNvml(gpus, clock)
    meter = nvml_meter(fake, clock)
    mon = EnergyMonitor([meter], sync=fake.synchronize, clock=clock)
    mon.start()
    run_for(clock, meter, 1.0)
    mon.begin_window("w", gpus=[1])
    run_for(clock, meter, 4.0)
    m = mon.end_window("w")
    a, b = m.devices
    assert (a.cuda_position, b.cuda_position) == (0, 1)
    assert a.energy_j == pytest.approx(400.0, rel=0.03)
    assert b.energy_j == pytest.approx(1200.0, rel=0.03)
    assert a.cross_check["integrated_j"] == pytest.approx(400.0, rel=0.03)
    assert b.cross_check["integrated_j"] == pytest.approx(1200.0, rel=0.03)
    assert not a.charged and b.charged and m.energy_j == pytest.approx(1200.0, rel=0.03)


def test_instant_power_is_the_instant_field_not_the_1s_average(clock):
    """Catches: ``power_instant_mw`` returning ``nvmlDeviceGetPowerUsage`` (a 1 s average)."""
    fake = FakeNvml([FakeGpu(power=PowerTrace([(0, 60), (1.0, 400)]))], clock)
    dev = PynvmlBackend(fake).devices()[0]
    clock.sleep(1.2)
    assert dev.power_instant_mw() == 400_000
    assert dev.power_usage_mw() < 200_000  # the average still lags
    # and so the integrated channel follows a step without a ~0.5 s lag
    meter = nvml_meter(fake, clock)
    meter.start()
    clock.sleep(0.8)  # t = 2.0 s: a second step comes
    fake.gpus[0].power = PowerTrace([(0, 60), (1.0, 400), (2.05, 100)])
    meter.begin("w")
    t0 = clock.monotonic()
    run_for(clock, meter, 2.0)
    d = meter.end("w")[0]
    truth = fake.true_energy_j(0, t0, clock.monotonic())
    assert d.cross_check["integrated_j"] == pytest.approx(truth, rel=0.05)


def test_the_last_power_sample_is_integrated(clock):
    """Catches: dropping the window-end sample (the poll in ``NvmlMeter.end``) or the last
    trapezoid segment. No background samples: only the two edge samples exist (the start
    sample precedes the window, so its statistics hold one)."""
    gpu = FakeGpu(
        power=PowerTrace([(0, 100), (3.0, 300)]),
        counter_supported=False,
        name="Tesla P100-PCIE-16GB",
        arch="pascal",
        sensor_period_s=0.01,
        instant_window_s=0.01,
    )
    fake = FakeNvml([gpu], clock)
    meter = nvml_meter(fake, clock)
    meter.start()
    clock.sleep(1.0)
    meter.begin("w")
    clock.sleep(4.0)  # 2 s at 100 W, then 2 s at 300 W
    d = meter.end("w")[0]
    assert d.samples == 1 and d.peak_power_w == pytest.approx(300.0)  # the end sample
    assert d.source is Source("nvml-power-integrated")
    assert d.energy_j == pytest.approx(800.0, rel=0.01)  # trapezoid of (100 W, 300 W) over 4 s


def test_per_field_return_codes_are_checked(clock):
    """Catches: reading a field value without checking its own ``nvmlReturn``."""
    fake = FakeNvml([FakeGpu(instant_supported=False, power=150.0)], clock)
    dev = PynvmlBackend(fake).devices()[0]
    with pytest.raises(GpuNotSupportedError):
        dev.power_instant_mw()  # the call succeeds; only the field says NOT_SUPPORTED
    assert dev.power_usage_mw() == 150_000


def test_power_of_zero_is_a_failed_read_not_a_figure(sim_monitor, clock):
    """Catches: accepting 0 mW (a sensor glitch) as a power reading."""
    mon, meter, fake = sim_monitor(
        power=200.0, counter_supported=False, arch="pascal", zero_power_s=[(3.0, 4.0)]
    )
    dev = PynvmlBackend(fake).devices()[0]
    run_for(clock, meter, 1.0)
    t0 = clock.monotonic()
    mon.begin_window("w")
    run_for(clock, meter, 2.5)
    with pytest.raises(GpuReadError):
        dev.power_instant_mw()
    run_for(clock, meter, 3.5)
    d = mon.end_window("w").devices[0]
    assert d.energy_j == pytest.approx(fake.true_energy_j(0, t0, clock.monotonic()), rel=0.01)
    assert any("power read(s) failed" in i and "bridges" in i for i in d.issues)


def test_power_lost_at_the_window_end_is_incomplete(sim_monitor, clock):
    mon, meter, fake = sim_monitor(power=200.0, counter_supported=False, arch="pascal")
    run_for(clock, meter, 1.0)
    mon.begin_window("w")
    run_for(clock, meter, 2.0)
    fake.gpus[0].zero_power_s.append((fake.now(), 1e9))
    run_for(clock, meter, 1.0)
    d = mon.end_window("w").devices[0]
    assert not d.complete and d.energy_j == pytest.approx(400.0, rel=0.03)
    assert any("power sampling failed" in i for i in d.issues)


def test_intervals_use_the_monotonic_clock(sim_monitor, clock):
    """Catches: ``clock.time()`` used for window or sampling intervals (an NTP step back by an
    hour in the middle of the window must change nothing)."""
    mon, meter, _ = sim_monitor(power=PowerTrace([(0, 250), (5.0, 500)]))
    run_for(clock, meter, 1.0)
    wall0 = clock.time()
    mon.begin_window("w")
    run_for(clock, meter, 4.0)
    clock.jump_wall(-3600.0)  # and the power doubles
    run_for(clock, meter, 6.0)
    m = mon.end_window("w")
    d = m.devices[0]
    assert m.start_unix_s == wall0 and m.duration_s == pytest.approx(10.0)
    assert d.energy_j == pytest.approx(4000.0, rel=0.02)
    assert d.cross_check["integrated_j"] == pytest.approx(4000.0, rel=0.02)
    assert d.mean_power_w == pytest.approx(400.0, rel=0.02)
    assert not d.cross_check["flag"] and d.samples >= 199


def test_counter_reset_between_edges_is_not_a_negative_or_huge_figure(sim_monitor, clock):
    mon, meter, fake = sim_monitor(power=100.0)
    run_for(clock, meter, 1.0)
    mon.begin_window("w")
    run_for(clock, meter, 2.0)
    fake.reset_counter(0)
    run_for(clock, meter, 2.0)
    d = mon.end_window("w").devices[0]
    assert d.source is Source("nvml-power-integrated") and not d.complete
    assert d.energy_j == pytest.approx(400.0, rel=0.02)
