"""Cool-down between entries: wait until the GPU is back near its idle temperature."""

from __future__ import annotations

from energybench.meters.sim.fakenvml import PowerTrace


def hot_then_idle(t: float) -> float:
    """Idle (50 W) for 10 s, a 600 W load until t = 20 s, then back to idle."""
    return 600.0 if 10 <= t < 20 else 50.0


def test_cool_down_waits_until_near_idle(sim_monitor, clock) -> None:
    trace = PowerTrace.from_function(hot_then_idle, 60, 0.1)
    mon, _, _ = sim_monitor(power=trace)
    mon.measure_idle(5.0)  # 30 + 0.06 * 50 = 33 degC in the simulator
    assert list(mon.idle_temp_c.values()) == [33.0]
    clock.sleep(7.0)  # t = 12: under load, 66 degC
    res = mon.cool_down(tolerance_c=3.0, max_s=60.0, poll_s=0.5)
    assert res["reached"] is True
    assert 6.5 <= res["waited_s"] <= 9.0  # the load ends at t = 20
    (start,) = res["start_c"].values()
    (end,) = res["end_c"].values()
    assert start > 60 and end <= 36


def test_cool_down_gives_up_after_max_s(sim_monitor, clock) -> None:
    trace = PowerTrace.from_function(hot_then_idle, 60, 0.1)
    mon, _, _ = sim_monitor(power=trace)
    mon.measure_idle(5.0)
    clock.sleep(6.0)
    res = mon.cool_down(tolerance_c=3.0, max_s=2.0, poll_s=0.5)
    assert res["reached"] is False and 2.0 <= res["waited_s"] < 3.0


def test_cool_down_without_a_sensor_is_skipped_with_a_reason(fake_monitor) -> None:
    fake_monitor.measure_idle(0.01)
    res = fake_monitor.cool_down(tolerance_c=3.0, max_s=1.0)
    assert "skipped" in res and "sensor" in res["skipped"]
