"""The codecarbon-based estimate: labelled as an estimate, offline, writes nothing."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time

import pytest

from energybench.meters import estimate
from energybench.meters.base import EnergyMonitor, MeterStatus, Source
from energybench.meters.context import MeterContext
from energybench.meters.estimate import CpuSpec, EstimateMeter, codecarbon_spec
from energybench.meters.plugins import MeterUnavailableError
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


def _spec(generic: bool) -> CpuSpec:
    return CpuSpec("Xeon Test", 120.0, 2, 240.0, generic, 10.0, 32.0)


def test_records_name_the_model_and_its_uncertainty():
    clock = ManualClock()
    for generic, rel in ((False, 0.5), (True, 1.0)):
        spec = _spec(generic)
        meter = EstimateMeter(lambda: (30.0, 4.0), spec=spec, clock=clock, background=False)
        meter.begin("w")
        clock.sleep(2.0)
        cpu, ram = meter.end("w")
        tdp = "120 W generic TDP" if generic else "120 W TDP"
        assert cpu.name == f"Xeon Test ({tdp}, codecarbon cpu-load model)"
        assert ram.name == "32 GB RAM (codecarbon model)"
        assert (cpu.energy_j, cpu.uncertainty_j, cpu.mean_power_w) == (60.0, 60.0 * rel, 30.0)
        assert (ram.energy_j, ram.uncertainty_j, ram.mean_power_w) == (8.0, 4.0, 4.0)
        assert cpu.complete and ram.complete and ram.constant_power and not cpu.constant_power
        assert cpu.issues == [f"estimate from a power model, not a measurement (+/-{rel:.0%})"]
    bare = EstimateMeter(lambda: (1.0, 1.0), clock=clock, background=False)
    bare.begin("w")
    cpu, ram = bare.end("w")  # no time passed: no mean power
    assert (cpu.name, ram.name) == ("CPU (power model)", "RAM (power model)")
    assert cpu.energy_j == 0.0 and cpu.mean_power_w is None and cpu.uncertainty_j == 0.0


def test_a_window_never_opened_or_a_failing_model_is_incomplete_with_the_reason():
    clock = ManualClock()
    meter = EstimateMeter(lambda: (10.0, 2.0), clock=clock, background=False)
    cpu, ram = meter.end("nope")
    assert cpu.energy_j is None and ram.energy_j is None
    assert not cpu.complete and not ram.complete and ram.constant_power
    assert cpu.issues == ["window 'nope' was not opened on the estimate meter"]
    calls = iter([(10.0, 2.0), (10.0, 2.0), RuntimeError("a"), RuntimeError("b"), (10.0, 2.0)])

    def flaky() -> tuple[float, float]:
        x = next(calls)
        if isinstance(x, Exception):
            raise x
        return x

    meter = EstimateMeter(flaky, clock=clock, background=False)
    meter.begin("w")
    meter.poll()
    meter.poll()
    cpu, _ = meter.end("w")
    assert not cpu.complete
    assert cpu.issues[-1] == "power model failed 2 time(s): RuntimeError: b"


def test_live_power_and_description():
    clock = ManualClock()
    meter = EstimateMeter(lambda: (30.0, 4.0), spec=_spec(True), clock=clock, background=False)
    assert meter.live_power_w() == 34.0 and meter.live_power_is_estimate()
    cpu, ram = meter.describe()
    assert cpu == {
        "device": "cpu:estimate",
        "model": "codecarbon cpu_load (machine)",
        "source": "estimate",
        "rel_uncertainty": 1.0,
        "cpu_model": "Xeon Test",
        "tdp_w": 120.0,
        "sockets": 2,
        "max_power_w": 240.0,
        "generic_tdp": True,
        "note": (
            "'Xeon Test' is not in codecarbon's TDP table: using its fallback of 4 W per thread"
        ),
    }
    assert ram == {
        "device": "ram:estimate",
        "model": "codecarbon cpu_load (machine)",
        "source": "estimate",
        "rel_uncertainty": 0.5,
        "ram_gb": 32.0,
        "ram_w": 10.0,
    }
    plain = EstimateMeter(lambda: (1.0, 1.0), clock=clock, background=False).describe()
    assert plain[0] == {
        "device": "cpu:estimate",
        "model": "injected power function",
        "source": "estimate",
        "rel_uncertainty": 0.5,
    }
    assert (
        "note"
        not in EstimateMeter(
            lambda: (1.0, 1.0), spec=_spec(False), clock=clock, background=False
        ).describe()[0]
    )


def test_records_are_the_cpu_and_ram_devices_even_for_a_window_never_opened():
    clock = ManualClock()
    meter = EstimateMeter(lambda: (30.0, 4.0), clock=clock, background=False)
    meter.begin("w")
    clock.sleep(0.5)  # under a second: the mean power is still given
    cpu, ram = meter.end("w")
    assert (cpu.device, cpu.kind, ram.device, ram.kind) == (
        "cpu:estimate",
        "cpu",
        "ram:estimate",
        "ram",
    )
    assert (cpu.energy_j, cpu.mean_power_w, ram.mean_power_w) == (15.0, 30.0, 4.0)
    cpu, ram = meter.end("never")
    assert (cpu.device, cpu.kind, ram.device, ram.kind) == (
        "cpu:estimate",
        "cpu",
        "ram:estimate",
        "ram",
    )
    assert cpu.complete is False and ram.complete is False


def test_a_meter_evaluates_its_model_in_the_background_by_default():
    calls = {"n": 0}

    def model() -> tuple[float, float]:
        calls["n"] += 1
        return 10.0, 2.0

    meter = EstimateMeter(model, poll_s=0.01)
    assert meter.background is True
    n0 = calls["n"]
    meter.start()
    try:
        assert "energybench-estimate" in {t.name for t in threading.enumerate()}
        deadline = time.monotonic() + 5.0
        while calls["n"] < n0 + 5 and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        meter.close()
    assert calls["n"] >= n0 + 5  # several evaluations, not one


def test_build_and_probe_use_codecarbons_spec(monkeypatch):
    spec = _spec(False)
    monkeypatch.setattr(estimate, "codecarbon_spec", lambda: spec)
    monkeypatch.setattr(estimate, "codecarbon_power_fn", lambda s: lambda: (s.tdp_w, s.ram_w))
    clock = ManualClock()
    meter = estimate.build(MeterContext(clock=clock, background=False))
    assert meter.spec is spec and meter.clock is clock and meter.background is False
    assert meter.cpu_rel == 0.5
    before = set(threading.enumerate())  # another test's meter may still be closing
    meter.start()  # background=False: no poll thread
    started = set(threading.enumerate()) - before
    assert not any(t.name == "energybench-estimate" for t in started)
    st = estimate.probe(MeterContext())
    assert st == MeterStatus(
        "estimate",
        ok=True,
        fix="this is a model, not a measurement (+/-50 % or worse); use RAPL where possible",
        details=[
            {
                "device": "cpu:estimate",
                "cpu_model": "Xeon Test",
                "tdp_w": 120.0,
                "sockets": 2,
                "generic_tdp": False,
            },
            {"device": "ram:estimate", "ram_gb": 32.0, "ram_w": 10.0},
        ],
    )
    monkeypatch.setattr(estimate, "codecarbon_spec", lambda: _spec(True))
    generic = estimate.probe(MeterContext())
    assert generic.ok and generic.fix.startswith("'Xeon Test' is not in codecarbon's TDP table")
    assert generic.fix.endswith("; " + st.fix)


def test_build_and_probe_without_codecarbon_say_how_to_get_it(monkeypatch):
    def broken() -> CpuSpec:
        raise ImportError("no codecarbon")

    monkeypatch.setattr(estimate, "codecarbon_spec", broken)
    with pytest.raises(MeterUnavailableError) as err:
        estimate.build(MeterContext(background=False))
    assert err.value.fix == "pip install codecarbon" and "no codecarbon" in err.value.reason
    st = estimate.probe(MeterContext())
    assert st.ok is False and st.fix == "pip install codecarbon" and "no codecarbon" in st.reason


def test_a_poll_between_the_window_opening_and_its_reading_is_not_lost():
    # The poll thread can tick after begin() evaluated the model and before it read the counters
    # (begin releases the lock in between): the window still starts at begin's own time.
    clock = ManualClock()
    meter = EstimateMeter(lambda: (10.0, 2.0), clock=clock, background=False)
    own_poll = meter.poll

    def poll_then_the_thread_ticks() -> float:
        t = own_poll()
        clock.sleep(0.2)
        own_poll()  # the background tick, 0.2 s later
        return t

    meter.poll = poll_then_the_thread_ticks  # type: ignore[method-assign]
    meter.begin("w")
    meter.poll = own_poll  # type: ignore[method-assign]
    clock.sleep(1.0)
    cpu, ram = meter.end("w")
    assert cpu.energy_j == pytest.approx(12.0) and ram.energy_j == pytest.approx(2.4)  # 1.2 s


@pytest.fixture
def fresh_spec():
    codecarbon_spec.cache_clear()
    yield
    codecarbon_spec.cache_clear()


def test_a_cpu_in_codecarbons_table_gets_its_tdp_per_socket(monkeypatch, fresh_spec):
    import codecarbon.core.util as cc_util
    from codecarbon.external.ram import RAM

    monkeypatch.setattr(cc_util, "detect_cpu_model", lambda: "Intel Xeon Gold 6248")
    monkeypatch.setattr(cc_util, "count_physical_cpus", lambda: 2)
    monkeypatch.setattr(RAM, "machine_memory_GB", property(lambda self: 256.0))
    spec = codecarbon_spec()
    # codecarbon's table: Intel Xeon Gold 6248, TDP 150 W; two sockets draw up to 300 W
    assert (spec.cpu_model, spec.tdp_w, spec.sockets) == ("Intel Xeon Gold 6248", 150.0, 2)
    assert spec.max_power_w == 300.0 and not spec.generic_tdp
    # RAM is sized on the machine's memory, not this process's (8 DIMMs, 38 W on x86)
    assert spec.ram_gb == 256.0 and spec.ram_w == RAM()._calculate_ram_power(256.0)


def test_an_undetected_cpu_is_named_unknown_and_sized_per_core(monkeypatch, fresh_spec):
    import codecarbon.core.cpu as cc_cpu
    import codecarbon.core.util as cc_util

    cc_log = logging.getLogger("codecarbon")
    heard: list[str] = []

    class Heard(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            heard.append(record.getMessage())

    def undetected() -> None:
        cc_log.warning("unknown CPU")  # stands for a warning codecarbon logs while detecting
        return None

    monkeypatch.setattr(cc_util, "detect_cpu_model", undetected)
    monkeypatch.setattr(cc_util, "count_physical_cpus", lambda: 0)
    monkeypatch.setattr(cc_util, "count_cpus", lambda: 4)
    monkeypatch.setattr(cc_log, "level", logging.INFO)
    handler = Heard()
    cc_log.addHandler(handler)
    try:
        spec = codecarbon_spec()
        cc_log.warning("after")
    finally:
        cc_log.removeHandler(handler)
    # codecarbon's own warnings are silenced during the look-up (describe() reports them) and
    # its log level is restored afterwards
    assert heard == ["after"] and cc_log.level == logging.INFO
    assert (spec.cpu_model, spec.sockets, spec.generic_tdp) == ("Unknown CPU", 1, True)
    assert spec.tdp_w == spec.max_power_w == 4 * cc_cpu.DEFAULT_POWER_PER_CORE
