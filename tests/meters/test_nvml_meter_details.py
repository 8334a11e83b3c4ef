"""The NVML meter in detail: exact figures, uncertainties, messages, describe(), edge cases."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time

import pandas as pd
import pytest

from energybench.meters.base import EnergyMonitor, Source
from energybench.meters.nvml import (
    ASSUMED_UPDATE_PERIOD_S,
    NvmlMeter,
    counter_uncertainty_j,
    integrated_uncertainty_j,
    run_pids,
)
from energybench.meters.nvml_device import PynvmlBackend
from energybench.meters.sampler import WindowStats
from energybench.meters.sim.fakenvml import FakeGpu, FakeNvml, Fault, PowerTrace
from tests.helpers.nvml import nvml_meter, run_for

ME = os.getpid()


def test_counter_uncertainty_formula():
    assert counter_uncertainty_j(100.0, 10.0, 0.1) == pytest.approx(5.0 + 1.0)
    assert counter_uncertainty_j(100.0, 0.5, 0.1) == pytest.approx(5.0 + 20.0)
    assert counter_uncertainty_j(100.0, 0.0, 0.1) == pytest.approx(5.0)
    assert counter_uncertainty_j(40.0, 2.0, 0.2) == pytest.approx(2.0 + 4.0)


def test_integrated_uncertainty_formula():
    s = WindowStats()
    for p in (100.0, 300.0):
        s.add(p)
    std = math.sqrt(2 * 100.0**2)
    assert integrated_uncertainty_j(200.0, 1.0, 0.1, s) == pytest.approx(
        10.0 + 20.0 + std / math.sqrt(2)
    )
    assert integrated_uncertainty_j(200.0, 0.5, 0.1, None) == pytest.approx(10.0 + 40.0)
    assert integrated_uncertainty_j(200.0, 0.0, 0.1, None) == pytest.approx(10.0)
    one = WindowStats()
    one.add(5.0)
    assert integrated_uncertainty_j(200.0, 2.0, 0.1, one) == pytest.approx(10.0 + 10.0)
    three = WindowStats()
    for p in (1.0, 2.0, 3.0):
        three.add(p)
    assert integrated_uncertainty_j(60.0, 2.0, 0.1, three) == pytest.approx(
        3.0 + 3.0 + 2.0 * 1.0 / math.sqrt(3)
    )


def test_exact_counter_figure_and_metadata(sim_monitor, clock):
    mon, meter, fake = sim_monitor(power=60.0)
    fake.submit(0, 2.0, 400.0)
    mon.begin_window("w")
    fake.submit(0, 3.0, 500.0)
    d = mon.end_window("w").devices[0]
    assert d.energy_j == pytest.approx(1500.0, abs=1e-6)  # mJ counter, /1000 exactly
    assert d.mean_power_w == pytest.approx(500.0, abs=1e-6)
    assert d.uncertainty_j == pytest.approx(0.05 * 1500 + 0.1 * 500)
    assert d.cross_check["min_window_s"] == pytest.approx(2.0)
    assert d.samples == 1 and d.complete is True
    assert not any("shorter than the counter" in i for i in d.issues)
    assert not any("failed" in i or "did not advance" in i for i in d.issues)


def test_describe_lists_every_fact(sim_monitor, tmp_path, clock):
    fake = FakeNvml([FakeGpu(power=100.0)], clock)
    meter = nvml_meter(fake, clock, positions=[3], trace_dir=tmp_path)
    meter.start()
    (d,) = meter.describe()
    uuid = fake.gpus[0].uuid
    assert d["device"] == f"gpu:{uuid}" and d["uuid"] == uuid and d["index"] == 0
    assert d["name"] == "NVIDIA H100 80GB HBM3" and d["kind"] == "gpu"
    assert d["driver"] == "550.54.15" and d["architecture"] == "hopper"
    assert d["cuda_position"] == 3 and d["mig"] is None and d["mig_mode"] is False
    assert d["power_limit_w"] == 700.0 and d["counter_supported"] is True
    assert d["power_channel"] == "instant" and d["power_usage_average_s"] == 1.0
    assert d["simulated"] is False and d["sample_period_s"] == 0.05
    assert d["counter_update_period_s"] is None and d["power_update_period_s"] is None
    assert d["update_period_probe_s"] == 0.0
    assert d["assumed_update_period_s"] == ASSUMED_UPDATE_PERIOD_S
    assert d["trace"] == str(tmp_path / "power-nvml.csv") and d["notes"] == []
    assert meter.probe_s == 0 and NvmlMeter([], probe_s=1.0).background is True
    plain = NvmlMeter([PynvmlBackend(fake).devices()[0]], clock=clock)
    assert plain.probe_s == 1.0 and plain.describe()[0]["trace"] is None
    assert plain.describe()[0]["cuda_position"] is None


def test_close_calls_on_close_once(clock):
    fake = FakeNvml([FakeGpu()], clock)
    closed = []
    meter = nvml_meter(fake, clock, on_close=lambda: closed.append(1))
    meter.start()
    meter.close()
    meter.close()
    assert closed == [1]


def test_add_note_only_reaches_modules(clock):
    fake = FakeNvml([FakeGpu(), FakeGpu(name="NVIDIA GH200 480GB", module=True)], clock)
    meter = nvml_meter(fake, clock)
    meter.add_note("n1")
    meter.add_note("n1")
    assert meter.module_devices == [f"module:{fake.gpus[1].uuid}"]
    gpu, module = meter.describe()
    assert "n1" not in gpu["notes"] and module["notes"].count("n1") == 1


def test_counter_only_gpu_without_power_channel(clock):
    gpu = FakeGpu(power=100.0, instant_supported=False, module=False)
    fake = FakeNvml([gpu], clock)
    fake.nvmlDeviceGetPowerUsage = lambda h: (_ for _ in ()).throw(fake.NVMLError(3))
    meter = nvml_meter(fake, clock)
    mon = EnergyMonitor([meter], clock=clock)
    mon.begin_window("w")
    clock.sleep(2.0)
    m = mon.end_window("w")
    d = m.devices[0]
    assert d.source is Source("nvml-counter") and d.complete is True
    assert d.energy_j == pytest.approx(200.0) and d.cross_check is None
    assert d.samples == 0 and d.peak_power_w is None
    assert any(i == "power is not readable: no integrated channel" for i in d.issues)
    assert meter.live_power_w() is None
    # a window shorter than the counter period: no figure, and it says why
    clock.sleep(0.01)
    mon.begin_window("tiny")
    clock.sleep(0.02)
    d2 = mon.end_window("tiny").devices[0]
    assert d2.energy_j is None and d2.complete is False and d2.mean_power_w is None
    assert "energy counter did not advance and no power samples: not measured" in d2.issues


def test_power_channel_present_has_no_unreadable_note(sim_monitor, clock):
    _, meter, _ = sim_monitor(power=100.0)
    assert not any("not readable" in n for n in meter.describe()[0]["notes"])


def test_small_counter_delta_is_still_the_counter(sim_monitor, clock):
    mon, meter, _ = sim_monitor(power=5.0)
    run_for(clock, meter, 1.0)
    mon.begin_window("w")
    run_for(clock, meter, 0.1)
    d = mon.end_window("w").devices[0]
    assert d.source is Source("nvml-counter") and d.energy_j == pytest.approx(0.5, abs=1e-6)
    assert d.cross_check is not None


def test_tiny_integrated_energy_is_not_rounded_up(clock):
    fake = FakeNvml([FakeGpu(power=50.0, counter_supported=False, arch="pascal")], clock)
    meter = nvml_meter(fake, clock)
    meter.start()
    clock.sleep(1.0)
    meter.begin("w")
    clock.sleep(0.01)
    d = meter.end("w")[0]
    assert d.source is Source("nvml-power-integrated") and d.energy_j == pytest.approx(0.5)
    assert d.mean_power_w == pytest.approx(50.0)
    assert not any("did not advance" in i for i in d.issues)
    sigma = integrated_uncertainty_j(0.5, 0.01, 0.1, WindowStats(1, 50.0, 2500.0, 50.0))
    assert d.uncertainty_j == pytest.approx(sigma)


def test_zero_length_window_has_no_mean_power(clock):
    fake = FakeNvml([FakeGpu(power=50.0, counter_supported=False, arch="pascal")], clock)
    meter = nvml_meter(fake, clock)
    meter.start()
    meter.begin("w")
    d = meter.end("w")[0]
    assert d.energy_j == 0.0 and d.mean_power_w is None
    assert not any("measurement failed" in i for i in d.issues)


def test_sampling_uncertainty_is_included(sim_monitor, clock):
    bursts = PowerTrace.from_function(lambda t: 400.0 if t % 1.0 < 0.5 else 60.0, 30, 0.05)
    mon, meter, _ = sim_monitor(power=bursts, counter_supported=False, arch="pascal")
    mon.begin_window("w")
    run_for(clock, meter, 5.0)
    d = mon.end_window("w").devices[0]
    base = 0.05 * d.energy_j + 0.1 * d.energy_j / 5.0
    assert d.uncertainty_j > base + 1.0


def test_failure_record_keeps_identity(clock):
    fake = FakeNvml([FakeGpu()], clock)
    meter = nvml_meter(fake, clock, positions=[2], simulated=True)
    (d,) = meter.end("nope")
    assert d.device == f"gpu:{fake.gpus[0].uuid}" and d.kind == "gpu"
    assert d.name == "NVIDIA H100 80GB HBM3" and d.source is Source("nvml-counter")
    assert d.energy_j is None and d.complete is False and d.simulated is True
    assert d.cuda_position == 2
    assert d.issues == [
        "measurement failed: KeyError(\"window 'nope' was not opened on the NVML meter\")"
    ]


def test_counter_unreadable_at_window_start(sim_monitor, clock):
    mon, meter, fake = sim_monitor(power=100.0)
    run_for(clock, meter, 0.5)
    fake.gpus[0].faults.append(
        Fault("nvmlDeviceGetTotalEnergyConsumption", fake.now(), fake.now() + 0.01, code=999)
    )
    mon.begin_window("w")
    clock.sleep(0.02)
    run_for(clock, meter, 2.0)
    d = mon.end_window("w").devices[0]
    assert d.complete is False and d.source is Source("nvml-power-integrated")
    assert any(
        i.startswith("energy counter unreadable at window start (GpuError: Unknown Error")
        for i in d.issues
    )


def test_counter_error_message_names_the_error(sim_monitor, clock):
    mon, meter, fake = sim_monitor(power=100.0)
    mon.begin_window("w")
    run_for(clock, meter, 1.0)
    fake.gpus[0].faults.append(Fault("nvmlDeviceGetTotalEnergyConsumption", fake.now(), code=10))
    d = mon.end_window("w").devices[0]
    assert "energy counter unreadable at window end (GpuError: Timeout (NVML error 10))" in d.issues


def test_failed_reads_are_counted_per_window(sim_monitor, clock):
    mon, meter, fake = sim_monitor(
        power=200.0, counter_supported=False, arch="pascal", zero_power_s=[(1.0, 1.5)]
    )
    mon.begin_window("a")
    run_for(clock, meter, 2.0)
    a = mon.end_window("a").devices[0]
    n = meter.sampler.errors(a.device)
    assert n >= 9
    assert any(
        i.startswith(f"{n} power read(s) failed during the window (GpuReadError") for i in a.issues
    )
    mon.begin_window("b")
    run_for(clock, meter, 1.0)
    b = mon.end_window("b").devices[0]
    assert not any("failed" in i for i in b.issues) and b.complete is True


def test_sampling_lost_at_the_end_says_when_and_drops_the_cross_check(sim_monitor, clock):
    mon, meter, fake = sim_monitor(power=200.0)
    run_for(clock, meter, 1.0)
    mon.begin_window("w")
    run_for(clock, meter, 2.0)
    fake.gpus[0].zero_power_s.append((fake.now() + 0.01, 1e9))
    run_for(clock, meter, 1.0)
    d = mon.end_window("w").devices[0]
    assert d.source is Source("nvml-counter") and d.complete is False and d.cross_check is None
    assert any(i.startswith("power sampling failed after 2.000 s (GpuReadError") for i in d.issues)


def test_update_period_follows_the_integrated_channel_without_a_counter(clock):
    g = FakeGpu(counter_supported=False, instant_supported=False)
    meter = nvml_meter(FakeNvml([g], clock), clock)
    meter.start()
    assert meter.update_period_s() == pytest.approx(1.0)  # a 1 s average
    assert NvmlMeter([], clock=clock).update_period_s() is None


def test_live_power_sums_the_gpus(clock):
    fake = FakeNvml([FakeGpu(power=100.0), FakeGpu(power=250.0)], clock)
    meter = nvml_meter(fake, clock)
    assert meter.live_power_w() is None
    meter.start()
    assert meter.live_power_w() is None
    clock.sleep(0.5)
    meter.poll()
    assert meter.live_power_w() == pytest.approx(350.0)


def test_unsupported_extras_are_asked_once_and_others_kept(tmp_path, clock):
    g = FakeGpu(power=300.0, faults=[Fault("nvmlDeviceGetTemperature", 0.0, code=3)])
    fake = FakeNvml([g], clock)
    meter = nvml_meter(fake, clock, trace_dir=tmp_path)
    meter.start()
    for _ in range(5):
        clock.sleep(0.1)
        meter.poll()
    meter.close()
    assert fake.calls["nvmlDeviceGetTemperature"] == 1
    df = pd.read_csv(tmp_path / "power-nvml.csv")
    assert df.temp_c.isna().all()
    assert (df.sm_clock_mhz == 1980).all() and (df.util_pct == 43).all()


def test_process_list_is_read_about_once_a_second(clock):
    fake = FakeNvml([FakeGpu()], clock)
    meter = nvml_meter(fake, clock)
    meter.start()
    run_for(clock, meter, 10.0)
    assert 9 <= fake.calls["nvmlDeviceGetComputeRunningProcesses"] <= 12


def test_unreadable_process_list_is_noted_once(clock):
    g = FakeGpu(faults=[Fault("nvmlDeviceGetComputeRunningProcesses", 0.0, code=3)])
    fake = FakeNvml([g], clock)
    meter = nvml_meter(fake, clock)
    meter.start()
    meter.begin("w")
    run_for(clock, meter, 3.0)
    meter.end("w")
    notes = meter.describe()[0]["notes"]
    unread = [n for n in notes if n.startswith("the GPU's process list is not readable")]
    assert unread == [
        "the GPU's process list is not readable (not supported: Not Supported (NVML error 3)): "
        "sharing not checked"
    ]
    assert fake.calls["nvmlDeviceGetComputeRunningProcesses"] == 1


def test_this_process_is_never_another_process(clock):
    fake = FakeNvml([FakeGpu(processes=[(ME, 0, math.inf)])], clock)
    meter = nvml_meter(fake, clock, own_pids=lambda: set())
    meter.start()
    meter.begin("w")
    run_for(clock, meter, 2.0)
    assert meter.end("w")[0].shared is False


def test_sharing_seen_only_at_an_edge_counts(clock):
    # pid 99 runs only at the start edge of the outer window, then an inner window closes
    fake = FakeNvml([FakeGpu(processes=[(99, 0.0, 0.01)])], clock)
    meter = nvml_meter(fake, clock, own_pids=lambda: {ME})
    meter.start()
    meter.begin("outer")
    clock.sleep(0.5)
    meter.begin("inner")
    clock.sleep(0.5)
    assert meter.end("inner")[0].shared is False
    assert meter.end("outer")[0].shared is True
    # and a process appearing right at the end edge
    fake.gpus[0].processes.append((98, fake.now() + 0.4, math.inf))
    meter.begin("late")
    clock.sleep(0.5)
    d = meter.end("late")[0]
    assert d.shared and any("pids 98" in i for i in d.issues)


def test_process_check_goes_on_after_a_lost_gpu(clock):
    fake = FakeNvml([FakeGpu(lost_at_s=0.5), FakeGpu(processes=[(99, 0, math.inf)])], clock)
    meter = nvml_meter(fake, clock, own_pids=lambda: {ME})
    meter.start()
    clock.sleep(1.0)
    meter.begin("w")
    clock.sleep(0.5)
    a, b = meter.end("w")
    assert b.shared is True and a.shared is False


def test_run_pids_include_children_and_grandchildren():
    p = subprocess.Popen(["sh", "-c", "sleep 5 & echo $!; wait"], stdout=subprocess.PIPE, text=True)
    try:
        grandchild = int(p.stdout.readline())
        time.sleep(0.05)
        pids = run_pids()
        assert {ME, p.pid, grandchild} <= pids
    finally:
        p.kill()
        subprocess.run(["kill", str(grandchild)], check=False)
        p.wait()
    assert sys.platform.startswith("linux")


def test_describe_before_start_has_the_identity(clock):
    fake = FakeNvml([FakeGpu()], clock)
    meter = nvml_meter(fake, clock, positions=[1])
    (d,) = meter.describe()
    assert (d["index"], d["name"], d["kind"], d["driver"], d["mig"]) == (
        0,
        "NVIDIA H100 80GB HBM3",
        "gpu",
        "550.54.15",
        None,
    )
    assert d["uuid"] == fake.gpus[0].uuid and d["cuda_position"] == 1
