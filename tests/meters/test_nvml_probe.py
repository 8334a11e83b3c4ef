"""The update-period probe: median gap between changes, bounded by changes and time."""

from __future__ import annotations

import pytest

from energybench.meters.nvml_probe import _median_period, probe_update_periods
from energybench.meters.sim.doubles import ManualClock


def test_median_period():
    assert _median_period([0.0, 0.1]) is None
    assert _median_period([0.0, 0.1, 0.3]) == pytest.approx(0.2)
    assert _median_period([0.0, 0.1, 0.3, 0.6, 1.0]) == pytest.approx(0.3)


def stepping(clock: ManualClock, period: float):
    t0 = clock.monotonic()
    return lambda: int((clock.monotonic() - t0) / period + 1e-9)


def test_probe_stops_after_enough_changes():
    clock = ManualClock()
    p = probe_update_periods(stepping(clock, 0.1), None, clock, max_s=5.0, poll_s=0.01)
    assert p.counter_s == pytest.approx(0.1, abs=0.011) and p.power_s is None
    assert p.probe_s == pytest.approx(0.6, abs=0.02)  # six changes seen: five periods + 1


def test_probe_is_bounded_by_time_and_defaults():
    clock = ManualClock()
    p = probe_update_periods(lambda: 1.0, stepping(clock, 0.05), clock, poll_s=0.01)
    assert p.counter_s is None and p.power_s == pytest.approx(0.05, abs=0.011)
    assert p.probe_s == pytest.approx(1.0, abs=0.015)  # the counter never changes: max_s (1 s)
    clock2 = ManualClock()
    q = probe_update_periods(lambda: 1.0, None, clock2)
    assert q.probe_s == pytest.approx(1.0, abs=0.003)  # max_s defaults to 1 s


def test_probe_without_readers_returns_at_once():
    clock = ManualClock()
    p = probe_update_periods(None, None, clock, max_s=5.0)
    assert p.probe_s == 0.0 and p.counter_s is None and p.power_s is None
