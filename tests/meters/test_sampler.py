"""PowerSampler: online trapezoid integration, window stats, failing readers, CSV traces."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from energybench.meters.sampler import (
    Poller,
    PowerSampler,
    Reading,
    TraceWriter,
    WindowStats,
    integrate_trace,
)
from energybench.meters.sim.doubles import ManualClock


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.floats(0.001, 1.0), st.floats(0, 1000)), min_size=2, max_size=60))
def test_online_integral_equals_numpy_trapezoid(steps):
    clock = ManualClock()
    it = iter(steps)
    current = {"p": 0.0}
    sampler = PowerSampler({"d": lambda: Reading(current["p"])}, clock=clock)
    ts, ps = [], []
    for dt, p in it:
        clock.sleep(dt)
        current["p"] = p
        sampler.poll()
        ts.append(clock.monotonic())
        ps.append(p)
    assert sampler.cum_energy_j("d", ts[-1]) == pytest.approx(integrate_trace(ts, ps), abs=1e-6)


def test_window_stats():
    s = WindowStats()
    for p in (1.0, 2.0, 3.0, 4.0):
        s.add(p)
    assert (s.samples, s.peak_w) == (4, 4.0)
    assert s.std_w == pytest.approx(np.std([1, 2, 3, 4], ddof=1))


def test_window_stats_spread_at_the_edges():
    def stats(*powers_w: float) -> WindowStats:
        s = WindowStats()
        for p in powers_w:
            s.add(p)
        return s

    assert stats().std_w == 0.0 and stats(7.0).std_w == 0.0  # no spread from < 2 samples
    assert stats(1.0, 3.0).std_w == pytest.approx(2**0.5)  # two samples: ddof = 1
    assert stats(0.1, 0.1, 0.1).std_w == 0.0  # a rounding-negative variance is clamped to 0


def test_failing_reader_does_not_stop_the_others():
    clock = ManualClock()
    state = {"fail": False}

    def bad() -> Reading:
        if state["fail"]:
            raise RuntimeError("gone")
        return Reading(50.0)

    sampler = PowerSampler({"ok": lambda: Reading(100.0), "bad": bad}, clock=clock)
    sampler.open_window("w")
    for i in range(20):
        state["fail"] = i >= 10
        sampler.poll()
        clock.sleep(0.1)
    t = clock.monotonic()
    assert sampler.cum_energy_j("ok", t) == pytest.approx(200.0)
    assert sampler.failing("bad") and "gone" in sampler.last_error("bad")
    assert sampler.cum_energy_j("bad", t) == pytest.approx(50.0 * 0.9)  # not extrapolated
    stats = sampler.close_window("w")
    assert stats["ok"].samples == 20 and stats["bad"].samples == 10


def test_trace_writer_dedups_runs_and_keeps_the_integral(tmp_path):
    path = tmp_path / "t.csv"
    w = TraceWriter(path, flush_rows=3)
    ts = np.arange(0, 10, 0.05)
    ps = np.where(ts < 5, 100.0, 250.0)
    for t, p in zip(ts, ps, strict=True):
        w.add(float(t), "gpu:x", Reading(float(p), 40.0, 1400.0, 99.0))
    w.close()
    df = pd.read_csv(path)
    assert len(df) == 4  # first and last of each constant stretch
    assert integrate_trace(df.unix_s, df.power_w) == pytest.approx(integrate_trace(ts, ps))
    w2 = TraceWriter(path)  # appending keeps a single header
    w2.add(20.0, "gpu:x", Reading(1.0))
    w2.close()
    assert len(pd.read_csv(path)) == 5


def test_poller_runs_and_stops():
    n = {"i": 0}
    p = Poller(lambda: n.__setitem__("i", n["i"] + 1), 0.01)
    p.start()
    time.sleep(0.15)
    p.stop()
    seen = n["i"]
    assert 5 <= seen <= 20 and not p.running
    time.sleep(0.03)
    assert n["i"] == seen


def test_past_the_last_sample_its_power_is_held_and_before_the_first_there_is_none():
    clock = ManualClock()
    sampler = PowerSampler({"d": lambda: Reading(100.0)}, clock=clock)
    assert sampler.cum_energy_j("d", clock.monotonic()) is None
    sampler.poll()
    t = clock.monotonic()
    clock.jump_wall(-50.0)  # the wall clock plays no part
    assert sampler.cum_energy_j("d", t + 1.5) == pytest.approx(150.0)
    assert sampler.last_sample("d") == (t, 100.0)


def test_errors_are_counted_and_the_first_error_time_kept():
    clock = ManualClock()
    state = {"fail": True}

    def bad() -> Reading:
        if state["fail"]:
            raise RuntimeError("gone")
        return Reading(10.0)

    # the failing reader comes first: the others are still read
    sampler = PowerSampler({"bad": bad, "ok": lambda: Reading(100.0)}, clock=clock)
    t_first = clock.time()
    sampler.poll()
    clock.sleep(1.0)
    sampler.poll()
    assert sampler.errors("bad") == 2 and sampler.errors("ok") == 0
    assert sampler.first_error_unix_s("bad") == t_first
    assert sampler.last_error("bad") == "RuntimeError: gone"
    assert sampler.last_sample("ok") is not None
    state["fail"] = False
    sampler.poll()
    assert sampler.failing("bad") is False and sampler.failing("ok") is False
    assert sampler.close_window("never") == {"bad": WindowStats(), "ok": WindowStats()}


def test_a_second_reading_at_the_same_instant_wins():
    clock = ManualClock()
    power = {"p": 100.0}
    sampler = PowerSampler({"d": lambda: Reading(power["p"])}, clock=clock)
    sampler.poll()
    power["p"] = 300.0
    sampler.poll()
    t = clock.monotonic()
    assert sampler.cum_energy_j("d", t + 1.0) == pytest.approx(300.0)


def test_trace_writer_details(tmp_path):
    path = tmp_path / "a" / "b" / "t.csv"  # parent folders are created
    w = TraceWriter(path)
    for i in range(256):
        w.add(float(i), "gpu:x", Reading(100.0 + i, 40.123456, None, 7.0))
    assert w.rows_written == 256  # flushed at 256 rows
    assert len(pd.read_csv(path)) == 256
    w.close()
    w.close()  # idempotent
    df = pd.read_csv(path)
    assert df.temp_c.iloc[0] == 40.123 and df.sm_clock_mhz.isna().all()
    assert (df.util_pct == 7.0).all()
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    w2 = TraceWriter(empty, flush_rows=1)
    w2.add(1.0, "d", Reading(1.0))
    assert w2.rows_written == 1 and empty.read_text().startswith("unix_s,device")
    w2.add(2.0, "d", Reading(2.0))
    assert w2.rows_written == 2
    w2.close()


def test_trace_writer_buffers_until_rows_or_time(tmp_path, monkeypatch):
    path = tmp_path / "t.csv"
    w = TraceWriter(path, flush_rows=3, flush_s=1000.0)
    w.add(1.0, "d", Reading(1.0))
    w.add(2.0, "d", Reading(2.0))
    assert w.rows_written == 0  # neither 3 rows nor 1000 s yet
    w.add(3.0, "d", Reading(3.0))
    assert w.rows_written == 3
    now = {"t": time.monotonic()}
    from energybench.meters import sampler as sampler_mod

    monkeypatch.setattr(sampler_mod.time, "monotonic", lambda: now["t"])
    w2 = TraceWriter(tmp_path / "u.csv", flush_rows=100, flush_s=2.0)
    w2.add(1.0, "d", Reading(1.0))
    now["t"] += 2.0
    w2.add(2.0, "d", Reading(2.0))
    assert w2.rows_written == 0  # exactly 2 s: not yet
    now["t"] += 0.5
    w2.add(3.0, "d", Reading(3.0))
    assert w2.rows_written == 3
    w.close()
    w2.close()


def test_poller_counts_ticks_and_cpu_on_a_named_daemon_thread():
    seen = {}
    import threading

    def tick() -> None:
        seen["thread"] = threading.current_thread()

    p = Poller(tick, 0.01, name="probe-thread")
    assert p.ticks == 0 and p.cpu_s == 0.0
    t0 = time.monotonic()
    p.start()
    p.start()  # idempotent: one thread, so at most one tick per period (+ the first)
    time.sleep(0.1)
    p.stop()
    elapsed = time.monotonic() - t0  # a loaded machine oversleeps: bound by the real time
    assert seen["thread"].name == "probe-thread" and seen["thread"].daemon
    assert 3 <= p.ticks <= elapsed / 0.01 + 2 and p.cpu_s >= 0.0 and isinstance(p.cpu_s, float)
    sampler = PowerSampler({"d": lambda: Reading(1.0)}, period_s=0.01)
    assert sampler.cpu_s == 0.0  # never started: no thread, no CPU time
    sampler.start()
    assert sampler._poller.running is True
    time.sleep(0.05)
    assert sampler._poller.name == "energybench-sampler" and sampler.cpu_s >= 0.0
    sampler.stop()
    assert sampler._writer is None and not sampler._poller.running


def test_a_slow_period_still_stops_promptly():
    p = Poller(lambda: None, 5.0)
    p.start()
    time.sleep(0.05)
    t0 = time.monotonic()
    p.stop()
    assert time.monotonic() - t0 < 1.0 and p.ticks == 1


def test_sampler_stop_twice_and_writer_path(tmp_path):
    sampler = PowerSampler({"d": lambda: Reading(1.0)}, trace_path=tmp_path / "t.csv")
    sampler.poll()
    sampler.stop()
    sampler.stop()
    assert TraceWriter(tmp_path / "u.csv").path == tmp_path / "u.csv"


def test_poller_with_a_long_period_keeps_ticking():
    p = Poller(lambda: None, 0.25)
    p.start()
    time.sleep(0.65)
    p.stop()
    assert p.ticks >= 2
