"""EnergyMonitor at its edges, on a virtual clock: defaults, window boundaries (exactly one
update period, exactly the minimum), the idle baseline (short, unmeasured and incomplete idle
devices), the static/dynamic split at exactly the baseline, temperatures and cool-down."""

from __future__ import annotations

from typing import Any

import pytest

from energybench.meters.base import DeviceEnergy, EnergyMonitor, Meter, Source, Window
from energybench.meters.sim.doubles import ManualClock


class Devices(Meter):
    """Devices at fixed powers (W) on a virtual clock; optional per-device overrides."""

    name = "devices"

    def __init__(self, clock: ManualClock, powers: dict[str, float], **extra: Any) -> None:
        self.clock, self.powers, self.extra = clock, powers, extra
        self.period: float | None = None
        self.temps: dict[str, float] = {}
        self.starts = 0
        self.t0: dict[str, float] = {}

    def start(self) -> None:
        self.starts += 1

    def begin(self, key: str) -> None:
        self.t0[key] = self.clock.monotonic()

    def end(self, key: str) -> list[DeviceEnergy]:
        dt = self.clock.monotonic() - self.t0.pop(key)
        out = []
        for d, p in self.powers.items():
            kw = dict(self.extra.get(d, {}))
            energy = kw.pop("energy_j", p * dt)
            out.append(DeviceEnergy(d, "gpu", d, Source("nvml-counter"), energy, **kw))
        return out

    def update_period_s(self) -> float | None:
        return self.period

    def temperatures_c(self) -> dict[str, float]:
        return dict(self.temps)


class Hot(Meter):
    name = "hot"

    def begin(self, key: str) -> None: ...

    def end(self, key: str) -> list[DeviceEnergy]:
        return []

    def temperatures_c(self) -> dict[str, float]:
        raise OSError("sensor gone")


def test_defaults_start_each_meter_once_and_flag_nothing_extra() -> None:
    clock = ManualClock()
    meter = Devices(clock, {"gpu:a": 100.0})
    mon = EnergyMonitor([meter], clock=clock)
    assert mon.idle_measurement is None and mon.idle_temp_c == {}
    assert mon.cool_down(1.0, 10.0) == {"skipped": "no temperature sensor on the measured devices"}
    assert meter.starts == 0
    with mon:
        mon.start()
        assert meter.starts == 1
        t_begin = clock.time()
        mon.begin_window("w")
        clock.sleep(0.25)
        meas = mon.end_window("w")
    assert (meas.name, meas.start_unix_s, meas.duration_s) == ("w", t_begin, 0.25)
    assert meas.flags == []  # no minimum window by default
    mon.start()
    assert meter.starts == 2  # closed, then started again


def test_window_boundaries_are_exclusive() -> None:
    clock = ManualClock()
    meter = Devices(clock, {"gpu:a": 100.0})
    meter.period = 1.0
    mon = EnergyMonitor([meter], clock=clock, min_window_s=1.0)
    ws = {}
    for name, dt in (("exact", 1.0), ("short", 0.5)):
        mon.begin_window(name)
        clock.sleep(dt)
        ws[name] = mon.end_window(name)
    assert ws["exact"].flags == []
    assert ws["short"].flags == ["short-window", "below-min-window"]
    with pytest.raises(ValueError, match="^window 'w' is already open$"):
        mon.begin_window("w")
        mon.begin_window("w")


def test_channels_that_disagree_are_flagged_per_device() -> None:
    clock = ManualClock()
    meter = Devices(
        clock,
        {"gpu:a": 100.0, "gpu:b": 100.0},
        **{"gpu:a": {"cross_check": {"flag": True}}, "gpu:b": {"cross_check": {"flag": False}}},
    )
    mon = EnergyMonitor([meter], clock=clock)
    with mon.window("w") as w:
        clock.sleep(2.0)
    assert w.measurement is not None
    assert w.measurement.flags == ["channels-disagree:gpu:a"]


def test_idle_of_a_short_window_and_only_of_whole_figures() -> None:
    clock = ManualClock()
    meter = Devices(
        clock,
        {"gpu:a": 60.0, "gpu:b": 80.0, "gpu:c": 90.0},
        **{"gpu:b": {"complete": False}, "gpu:c": {"energy_j": None}},
    )
    meter.temps = {"gpu:a": 41.0}
    mon = EnergyMonitor([meter], clock=clock)
    assert mon.measure_idle(0) == {} and mon.idle_measurement is None
    idle = mon.measure_idle(0.5)
    assert idle == pytest.approx({"gpu:a": 60.0})  # b incomplete, c without a figure
    assert mon.idle_temp_c == {"gpu:a": 41.0}
    assert isinstance(mon.idle_measurement, Window)
    assert mon.idle_measurement.duration_s == 0.5


def test_a_window_at_exactly_the_idle_baseline_has_no_dynamic_energy_and_no_note() -> None:
    clock = ManualClock()
    meter = Devices(clock, {"gpu:a": 50.0})
    mon = EnergyMonitor([meter], clock=clock)
    mon.set_idle({"gpu:a": 50.0})
    with mon.window("w") as w:
        clock.sleep(4.0)
    (d,) = w.measurement.devices  # type: ignore[union-attr]
    assert (d.static_j, d.dynamic_j) == (200.0, 0.0) and d.issues == []
    mon.set_idle({"gpu:a": 60.0})
    with mon.window("w") as w:
        clock.sleep(4.0)
    (d,) = w.measurement.devices  # type: ignore[union-attr]
    assert (d.static_j, d.dynamic_j) == (200.0, 0.0)
    assert d.issues and d.issues[0].startswith("energy below the idle baseline")


def test_temperatures_merge_meters_and_skip_a_failing_sensor() -> None:
    clock = ManualClock()
    a = Devices(clock, {})
    a.temps = {"gpu:a": 40.0, "gpu:b": 45.0}
    mon = EnergyMonitor([Hot(), a], clock=clock)
    assert mon.temperatures_c() == {"gpu:a": 40.0, "gpu:b": 45.0}


class Cooling(Devices):
    """A device 10 °C above idle that cools by 1 °C per second of virtual time."""

    def temperatures_c(self) -> dict[str, float]:
        return {"gpu:a": max(60.0 - (self.clock.monotonic() - self.cool_t0), 50.0)}


def test_cool_down_polls_every_second_by_default() -> None:
    clock = ManualClock()
    meter = Cooling(clock, {})
    meter.cool_t0 = clock.monotonic()  # type: ignore[attr-defined]
    mon = EnergyMonitor([meter], clock=clock)
    mon.set_idle({}, {"gpu:a": 50.0})
    clock.sleep(2.5)  # 57.5 °C when the wait starts
    res = mon.cool_down(tolerance_c=5.0, max_s=60.0)
    # polls at +1, +2, +3 s: 56.5, 55.5, 54.5 °C (within 5 °C of 50 at the third)
    assert res["waited_s"] == 3.0 and res["reached"]
    assert res["start_c"] == {"gpu:a": 57.5} and res["end_c"] == {"gpu:a": 54.5}


def test_the_charging_hook_hears_each_scope_and_its_end() -> None:
    seen: list[frozenset[int] | None] = []
    mon = EnergyMonitor([], clock=ManualClock(), on_charging=seen.append)
    with mon.charging([1, 0]):
        with mon.charging(None):
            pass
    assert seen == [frozenset({0, 1}), None, frozenset({0, 1}), None]


def test_a_measurement_read_back_keeps_its_name_and_flags() -> None:
    dev = DeviceEnergy("gpu:a", "gpu", "H100", Source("nvml-counter"), 5.0)
    m = Window(
        name="train", start_unix_s=1.0, duration_s=2.0, devices=[dev], flags=["short-window"]
    )
    back = Window.model_validate(m.to_json())
    assert (back.name, back.flags, back.energy_j) == ("train", ["short-window"], 5.0)


def _window() -> Window:
    gpu = DeviceEnergy("gpu:a", "gpu", "H100", Source("nvml-counter"), 300.0, 30.0, shared=True)
    cpu = DeviceEnergy("cpu:estimate", "cpu", "cpu", Source("estimate"), 40.0, 40.0)
    return Window(
        name="w", start_unix_s=5.0, duration_s=10.0, devices=[gpu, cpu], flags=["estimate"]
    )


def test_a_measurement_record_has_every_figure_under_its_name() -> None:
    d = _window().to_json()
    assert {k: d[k] for k in d if k not in ("devices", "gaps")} == {
        "name": "w",
        "start_unix_s": 5.0,
        "duration_s": 10.0,
        "energy_j": 340.0,
        "uncertainty_j": pytest.approx(50.0),
        "measured_energy_j": 300.0,
        "measured_uncertainty_j": pytest.approx(30.0),
        "estimated_energy_j": 40.0,
        "measured_kinds": ["gpu"],
        "estimated_kinds": ["cpu"],
        "sources": ["estimate", "nvml-counter"],
        "is_estimate": True,
        "is_shared": True,
        "is_simulated": False,
        "complete": True,
        "flags": ["estimate"],
    }
    assert d["gaps"] == [] and d["devices"][0]["source"] == "nvml-counter"
    bare = Window.model_validate({"name": "b", "start_unix_s": 0.0, "duration_s": 1.0})
    assert bare.devices == [] and bare.flags == [] and bare.energy_j is None


def test_a_gap_says_why_with_at_most_two_issues() -> None:
    m = _window()
    m.devices[1].energy_j = None
    m.devices[1].issues = ["model failed", "no CPU power", "third"]
    m.devices[0].complete = False
    assert m.gaps() == [
        "gpu:a: figure covers part of the window only (no reason recorded)",
        "cpu:estimate: no figure (model failed; no CPU power)",
    ]


def test_a_gap_in_an_estimate_leaves_the_measured_figures_whole() -> None:
    m = _window()
    m.devices[1].energy_j = None
    assert m.energy_j is None and m.uncertainty_j is None
    assert m.measured_energy_j == 300.0 and m.measured_uncertainty_j == pytest.approx(30.0)


def test_device_and_window_records_read_back_exactly() -> None:
    m = _window()
    dev = m.devices[0].to_dict()
    assert dev["source"] == "nvml-counter" and type(dev["source"]) is str
    assert set(dev) == set(DeviceEnergy.__dataclass_fields__)
    back = Window.model_validate(m.to_json())
    assert (back.start_unix_s, back.duration_s) == (5.0, 10.0)


class Stuck(Devices):
    """Device a stays at a fixed temperature; device b has a sensor but no idle figure."""

    def temperatures_c(self) -> dict[str, float]:
        return {"gpu:a": self.temps["gpu:a"], "gpu:b": 90.0}


def test_cool_down_gives_up_at_max_s_and_ignores_devices_without_an_idle_figure() -> None:
    clock = ManualClock()
    meter = Stuck(clock, {})
    meter.temps = {"gpu:a": 58.0}
    mon = EnergyMonitor([meter], clock=clock)
    assert mon.cool_down(5.0, 10.0) == {"skipped": "no idle temperature"}
    mon.set_idle({}, {"gpu:a": 50.0})
    res = mon.cool_down(tolerance_c=5.0, max_s=3.0)
    assert res == {
        "waited_s": 3.0,
        "reached": False,
        "idle_c": {"gpu:a": 50.0},
        "start_c": {"gpu:a": 58.0},
        "end_c": {"gpu:a": 58.0},
    }
    meter.temps = {"gpu:a": 55.0}  # exactly idle + tolerance: cool enough
    assert mon.cool_down(tolerance_c=5.0, max_s=3.0)["waited_s"] == 0.0
