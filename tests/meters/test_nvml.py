"""NVML meter through the real adapter on the fake NVML module (virtual clock): channels,
short windows, resets, lost GPUs, pre-Volta, fallbacks, probing, the background thread."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from energybench.meters.base import SYSTEM_CLOCK, EnergyMonitor, Source
from energybench.meters.sampler import integrate_trace
from energybench.meters.sim.doubles import ManualClock
from energybench.meters.sim.fakenvml import NVML_ERROR_UNKNOWN, FakeGpu, FakeNvml, Fault, PowerTrace
from tests.helpers.nvml import nvml_meter, run_for


def wavy(t: float) -> float:
    return 250 + 150 * math.sin(2 * math.pi * t / 3.0) + (100 if int(t) % 4 == 0 else 0)


def test_counter_and_integrated_agree_on_replayed_trace(sim_monitor, clock):
    mon, meter, fake = sim_monitor(power=PowerTrace.from_function(wavy, 60, 0.01))
    run_for(clock, meter, 1.0)
    mon.begin_window("train")
    t0 = clock.monotonic()
    run_for(clock, meter, 30.0)
    m = mon.end_window("train")
    truth = fake.true_energy_j(0, t0, clock.monotonic())
    d = m.devices[0]
    assert d.source is Source("nvml-counter") and d.complete
    assert d.energy_j == pytest.approx(truth, rel=0.01)
    assert d.cross_check is not None and not d.cross_check["flag"]
    assert d.cross_check["integrated_j"] == pytest.approx(truth, rel=0.02)
    assert d.cross_check["rel_diff"] < 0.02
    assert abs(d.energy_j - truth) < d.uncertainty_j
    assert d.samples >= 590 and d.peak_power_w >= 400
    assert d.kind == "gpu" and d.cuda_position == 0 and not d.shared and not d.simulated
    assert m.flags == [] and m.complete and not m.is_estimate


def test_short_window_is_flagged_not_zero(sim_monitor, clock):
    mon, meter, _ = sim_monitor(power=200.0)
    run_for(clock, meter, 1.02)  # just after a counter update
    mon.begin_window("tiny")
    clock.sleep(0.03)
    m = mon.end_window("tiny")
    d = m.devices[0]
    assert "short-window" in m.flags
    assert d.energy_j is not None and d.energy_j > 0
    assert d.energy_j == pytest.approx(200 * 0.03, rel=0.05)
    assert d.source is Source("nvml-power-integrated")
    assert d.uncertainty_j >= d.energy_j
    assert any("did not advance" in i for i in d.issues)


def test_window_shorter_than_min_window_is_flagged(sim_monitor, clock):
    mon, meter, _ = sim_monitor(power=200.0)
    mon.min_window_s = 5.0
    mon.begin_window("w")
    run_for(clock, meter, 1.0)
    m = mon.end_window("w")
    assert "below-min-window" in m.flags and "short-window" not in m.flags


def test_counter_reset_mid_window(sim_monitor, clock):
    mon, meter, fake = sim_monitor(power=300.0, counter_resets_s=[5.0])
    run_for(clock, meter, 1.0)
    t0 = clock.monotonic()
    mon.begin_window("w")
    run_for(clock, meter, 10.0)
    m = mon.end_window("w")
    d = m.devices[0]
    assert not d.complete and not m.complete
    assert any("went backwards" in i for i in d.issues)
    assert d.source is Source("nvml-power-integrated")
    assert d.energy_j == pytest.approx(fake.true_energy_j(0, t0, clock.monotonic()), rel=0.02)
    assert f"incomplete:{d.device}" in m.flags
    # the next window is whole again: the counter is monotonic after the reset
    mon.begin_window("after")
    run_for(clock, meter, 2.0)
    d2 = mon.end_window("after").devices[0]
    assert d2.complete and d2.source is Source("nvml-counter")
    assert d2.energy_j == pytest.approx(600, rel=0.02)


def test_gpu_lost_mid_window_run_continues(sim_monitor, clock):
    mon, meter, fake = sim_monitor(power=250.0, lost_at_s=6.0)
    run_for(clock, meter, 1.0)
    mon.begin_window("w")
    seen_s = 6.0 - fake.now()  # the part of the window before the GPU is lost
    run_for(clock, meter, 10.0)
    m = mon.end_window("w")  # must not raise
    d = m.devices[0]
    assert not d.complete
    assert d.source is Source("nvml-power-integrated")
    assert d.energy_j == pytest.approx(250 * seen_s, rel=0.03)
    assert any("lost" in i.lower() for i in d.issues)
    assert mon.live_power_w() is None
    mon.begin_window("later")
    run_for(clock, meter, 1.0)
    d2 = mon.end_window("later").devices[0]
    assert d2.energy_j is None and not d2.complete


def test_counter_error_is_recorded_not_raised(sim_monitor, clock):
    mon, meter, fake = sim_monitor(power=100.0)
    run_for(clock, meter, 0.5)
    mon.begin_window("w")
    run_for(clock, meter, 2.0)
    fake.gpus[0].faults.append(
        Fault("nvmlDeviceGetTotalEnergyConsumption", fake.now(), code=NVML_ERROR_UNKNOWN)
    )
    d = mon.end_window("w").devices[0]
    assert not d.complete and d.energy_j == pytest.approx(200, rel=0.05)
    assert any("unreadable at window end" in i for i in d.issues)


def test_pre_volta_uses_integrated_power(sim_monitor, clock):
    mon, meter, fake = sim_monitor(
        power=PowerTrace([(0, 80), (3, 220)]),
        counter_supported=False,
        name="Tesla P100-PCIE-16GB",
        arch="pascal",
        power_usage_average_s=0.0,
    )
    run_for(clock, meter, 0.5)
    t0 = clock.monotonic()
    mon.begin_window("w")
    run_for(clock, meter, 8.0)
    d = mon.end_window("w").devices[0]
    assert d.source is Source("nvml-power-integrated") and d.complete and d.cross_check is None
    assert d.energy_j == pytest.approx(fake.true_energy_j(0, t0, clock.monotonic()), rel=0.02)
    assert any("Volta" in i for i in d.issues)
    assert meter.describe()[0]["counter_supported"] is False


def test_instant_power_unsupported_falls_back_to_average(sim_monitor, clock):
    mon, meter, _ = sim_monitor(power=150.0, instant_supported=False)
    mon.begin_window("w")
    run_for(clock, meter, 6.0)
    d = mon.end_window("w").devices[0]
    assert meter.describe()[0]["power_channel"] == "average"
    assert d.cross_check["integrated_j"] == pytest.approx(900, rel=0.02)
    assert any("PowerUsage" in i and "1 s average" in i for i in d.issues)


def bursts(t: float) -> float:
    """400 W for 50 ms of every 100 ms, idle while the 25 ms sensor window looks."""
    return 400.0 if (t % 0.1) < 0.05 else 60.0


def test_channels_disagree_is_flagged(sim_monitor, clock):
    trace = PowerTrace.from_function(bursts, 30, 0.005)
    mon, meter, _ = sim_monitor(power=trace, instant_window_s=0.025)
    run_for(clock, meter, 0.5)
    mon.begin_window("w")
    run_for(clock, meter, 10.0)
    m = mon.end_window("w")
    d = m.devices[0]
    assert d.cross_check["flag"] and d.cross_check["rel_diff"] > 0.5
    assert f"channels-disagree:{d.device}" in m.flags
    assert d.energy_j == pytest.approx(d.cross_check["counter_j"])  # the counter stays primary


def test_update_periods_are_probed(clock):
    gpu = FakeGpu(
        power=PowerTrace.from_function(wavy, 30, 0.001),
        sensor_period_s=0.02,
        instant_window_s=0.02,
        counter_period_s=0.1,
    )
    meter = nvml_meter(FakeNvml([gpu], clock), clock, probe_s=1.0)
    meter.start()
    info = meter.describe()[0]
    assert info["counter_update_period_s"] == pytest.approx(0.1, abs=0.005)
    assert info["power_update_period_s"] == pytest.approx(0.02, abs=0.003)
    assert meter.update_period_s() == pytest.approx(0.1, abs=0.005)


def test_unopened_window_does_not_raise(sim_monitor):
    _, meter, _ = sim_monitor(power=100.0)
    recs = meter.end("never-opened")
    assert recs[0].energy_j is None and not recs[0].complete and recs[0].cuda_position == 0


def test_background_thread_and_trace_csv(tmp_path):
    gpu = FakeGpu(
        power=PowerTrace([(0, 120), (0.2, 320)]),
        sensor_period_s=0.01,
        counter_period_s=0.01,
        instant_window_s=0.01,
    )
    fake = FakeNvml([gpu], SYSTEM_CLOCK)
    meter = nvml_meter(
        fake, SYSTEM_CLOCK, sample_period_s=0.01, trace_dir=tmp_path, probe_s=0.05, background=True
    )
    mon = EnergyMonitor([meter])
    with mon:
        t0 = SYSTEM_CLOCK.monotonic()
        with mon.window("serve") as w:
            SYSTEM_CLOCK.sleep(0.4)
        t1 = SYSTEM_CLOCK.monotonic()
    d = w.measurement.devices[0]
    assert d.samples >= 10
    assert d.energy_j == pytest.approx(fake.true_energy_j(0, t0, t1), rel=0.1)
    df = pd.read_csv(tmp_path / "power-nvml.csv")
    assert list(df.columns)[:6] == [
        "unix_s",
        "device",
        "power_w",
        "temp_c",
        "sm_clock_mhz",
        "util_pct",
    ]
    assert set(df.device) == {d.device}
    assert df.unix_s.is_monotonic_increasing and df.power_w.max() == pytest.approx(320)
    assert abs(df.unix_s.iloc[0] - w.measurement.start_unix_s) < 60  # unix time, for humans
    # run-length dedup keeps the ends of constant stretches: the file integrates like the sampler
    last_t, _ = meter.sampler.last_sample(d.device)
    assert integrate_trace(df.unix_s, df.power_w) == pytest.approx(
        meter.sampler.cum_energy_j(d.device, last_t), rel=1e-2
    )
    assert len(df) < d.samples / 2


def test_virtual_clock_differs_from_wall():
    c = ManualClock()
    assert c.time() != c.monotonic()
