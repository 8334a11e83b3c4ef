"""The codecarbon-based estimate: labelled as an estimate, offline, writes nothing."""

from __future__ import annotations

import os
import socket

import pytest

from energybench.meters.base import EnergyMonitor, Source
from energybench.meters.estimate import EstimateMeter, codecarbon_spec
from energybench.meters.sim.doubles import ManualClock


def test_estimate_is_labelled_and_integrates_model_power():
    clock = ManualClock()
    powers = iter([(20.0, 6.0)] + [(40.0, 6.0)] * 10)
    meter = EstimateMeter(lambda: next(powers), clock=clock, background=False)
    mon = EnergyMonitor([meter], clock=clock)
    mon.begin_window("w")
    clock.sleep(3.0)
    m = mon.end_window("w")
    cpu, ram = m.devices
    assert m.is_estimate and m.sources == ["estimate"] and "estimate" in m.flags
    assert cpu.source is Source("estimate") and ram.source is Source("estimate")
    assert cpu.energy_j == pytest.approx(120.0) and ram.energy_j == pytest.approx(18.0)
    assert cpu.uncertainty_j == pytest.approx(60.0)  # +/-50 %
    assert any("not a measurement" in i for i in cpu.issues)


def test_window_energy_covers_the_whole_window_when_evaluating_the_model_takes_time():
    # The model's evaluation (psutil, codecarbon) takes time, and the thread can be preempted
    # between the last poll and the window's end: the figure still spans the whole window.
    clock = ManualClock()

    def slow_model() -> tuple[float, float]:
        clock.sleep(0.25)  # time passes after the poll's timestamp, before the window closes
        return 10.0, 2.0

    meter = EstimateMeter(slow_model, clock=clock, background=False)
    mon = EnergyMonitor([meter], clock=clock)
    mon.begin_window("w")
    clock.sleep(1.0)
    m = mon.end_window("w")
    cpu, ram = m.devices
    assert m.duration_s == pytest.approx(1.5)  # the evaluation at the end falls inside
    assert cpu.energy_j == pytest.approx(10.0 * m.duration_s)
    assert ram.energy_j == pytest.approx(2.0 * m.duration_s)
    assert cpu.mean_power_w == pytest.approx(10.0)


def test_model_failure_is_incomplete_not_raised():
    clock = ManualClock()
    calls = {"n": 0}

    def flaky() -> tuple[float, float]:
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("psutil hiccup")
        return 10.0, 2.0

    meter = EstimateMeter(flaky, clock=clock, background=False)
    meter.begin("w")
    clock.sleep(1.0)
    cpu, _ = meter.end("w")
    assert not cpu.complete and "psutil hiccup" in cpu.issues[-1]


def test_codecarbon_model_runs_here_offline_and_writes_nothing(tmp_path, monkeypatch):
    def no_network(*a, **k):
        raise AssertionError("network call attempted")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.chdir(tmp_path)
    spec = codecarbon_spec()
    assert spec.max_power_w > 0 and spec.ram_w > 0
    meter = EstimateMeter(poll_s=0.05)
    mon = EnergyMonitor([meter])
    with mon, mon.window("w") as w:
        sum(i * i for i in range(2_000_000))  # long enough that scheduling jitter is < 1 %
    m = w.measurement
    assert m.is_estimate and m.energy_j is not None and m.energy_j > 0
    # codecarbon's floor is 10 % of TDP: the CPU figure is at least that over the window
    assert m.devices[0].energy_j >= 0.099 * spec.max_power_w * m.duration_s
    assert meter.describe()[0]["tdp_w"] == spec.tdp_w
    assert os.listdir(tmp_path) == []
