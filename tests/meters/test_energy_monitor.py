"""EnergyMonitor: idle baseline arithmetic, flags, safety net, serialisation."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from energybench.meters.base import DeviceEnergy, EnergyMonitor, Meter, Source, Window
from energybench.meters.plugins import METERS
from energybench.meters.sim.doubles import ManualClock


class ConstantMeter(Meter):
    """Devices drawing fixed powers (W) on a virtual clock."""

    name = "constant"

    def __init__(self, clock: ManualClock, powers: dict[str, float], period: float | None = None):
        self.clock, self.powers, self.period = clock, powers, period
        self.t0: dict[str, float] = {}

    def begin(self, key: str) -> None:
        self.t0[key] = self.clock.time()

    def end(self, key: str) -> list[DeviceEnergy]:
        dt = self.clock.time() - self.t0.pop(key)
        return [
            DeviceEnergy(d, "gpu", d, Source("nvml-counter"), p * dt, uncertainty_j=0.05 * p * dt)
            for d, p in self.powers.items()
        ]

    def update_period_s(self) -> float | None:
        return self.period


class BrokenMeter(Meter):
    name = "broken"

    def begin(self, key: str) -> None:
        return None

    def end(self, key: str) -> list[DeviceEnergy]:
        raise RuntimeError("driver went away")


def test_idle_subtraction_arithmetic():
    clock = ManualClock()
    meter = ConstantMeter(clock, {"gpu:a": 60.0, "gpu:b": 40.0})
    mon = EnergyMonitor([meter], clock=clock)
    assert mon.measure_idle(2.0) == {"gpu:a": pytest.approx(60.0), "gpu:b": pytest.approx(40.0)}
    assert mon.idle_measurement is not None and mon.idle_measurement.duration_s == 2.0
    meter.powers = {"gpu:a": 300.0, "gpu:b": 40.0}
    with mon.window("train") as w:
        clock.sleep(10.0)
    a, b = w.measurement.devices
    assert (a.energy_j, a.static_j, a.dynamic_j, a.idle_power_w) == pytest.approx(
        (3000.0, 600.0, 2400.0, 60.0)
    )
    assert b.dynamic_j == pytest.approx(0.0)
    assert w.measurement.uncertainty_j == pytest.approx((150.0**2 + 20.0**2) ** 0.5)


def test_flags_short_and_below_min_window():
    clock = ManualClock()
    mon = EnergyMonitor(
        [ConstantMeter(clock, {"gpu:a": 100.0}, period=0.1)], clock=clock, min_window_s=5.0
    )
    mon.begin_window("w")
    clock.sleep(0.05)
    m = mon.end_window("w")
    assert "short-window" in m.flags and "below-min-window" in m.flags
    assert m.energy_j == pytest.approx(5.0)


def test_a_failing_meter_never_stops_the_run():
    clock = ManualClock()
    mon = EnergyMonitor([BrokenMeter(), ConstantMeter(clock, {"gpu:a": 100.0})], clock=clock)
    with pytest.raises(KeyError):
        with mon.window("w") as w:
            clock.sleep(1.0)
            raise KeyError("user code fails")
    m = w.measurement
    assert m is not None and m.devices[0].energy_j == pytest.approx(100.0)  # kept per device
    assert any(f.startswith("meter-error:broken:RuntimeError") for f in m.flags)
    # the broken meter's devices are missing: the sum is unknown, never the partial 100 J
    assert m.energy_j is None and m.gaps() == [m.flags[0]]


def test_nested_windows_and_duplicate_names():
    clock = ManualClock()
    mon = EnergyMonitor([ConstantMeter(clock, {"gpu:a": 10.0})], clock=clock)
    mon.begin_window("outer")
    clock.sleep(1.0)
    with mon.window("inner") as w:
        clock.sleep(2.0)
        with pytest.raises(ValueError):
            mon.begin_window("inner")
    clock.sleep(1.0)
    assert w.measurement.energy_j == pytest.approx(20.0)
    assert mon.end_window("outer").energy_j == pytest.approx(40.0)


device_st = st.builds(
    DeviceEnergy,
    device=st.sampled_from(["gpu:GPU-1", "cpu:package-0", "ram:estimate"]),
    kind=st.sampled_from(["gpu", "cpu", "ram"]),
    name=st.text(max_size=10),
    source=st.sampled_from([Source(s) for s in METERS.sources]),
    energy_j=st.none() | st.floats(0, 1e9),
    uncertainty_j=st.none() | st.floats(0, 1e9),
    complete=st.booleans(),
    issues=st.lists(st.text(max_size=20), max_size=3),
    cross_check=st.none()
    | st.fixed_dictionaries(
        {
            "integrated_j": st.floats(0, 1e6),
            "counter_j": st.floats(0, 1e6),
            "rel_diff": st.floats(0, 10),
            "flag": st.booleans(),
        }
    ),
)


@given(
    st.lists(device_st, max_size=4), st.lists(st.text(max_size=12), max_size=3), st.floats(0, 1e5)
)
def test_measurement_round_trip(devices, flags, duration):
    m = Window(name="w", start_unix_s=1.7e9, duration_s=duration, devices=devices, flags=flags)
    back = Window.model_validate(m.to_json())
    assert (back.devices, back.flags, back.duration_s) == (m.devices, m.flags, m.duration_s)
    assert back.to_json() == m.to_json()
