"""Measured and estimated energy never mix; an entry is charged only for the devices it uses."""

from __future__ import annotations

import pytest

from energybench.meters.base import (
    FLAG_ESTIMATE,
    FLAG_SHARED_DEVICE,
    DeviceEnergy,
    EnergyMonitor,
    Meter,
    Source,
    Window,
)
from energybench.meters.sim.doubles import ManualClock


def dev(device: str, kind: str, source: Source, e: float | None, **kw) -> DeviceEnergy:
    return DeviceEnergy(device, kind, device, source, e, uncertainty_j=0.1 * (e or 0), **kw)


class FixedMeter(Meter):
    """Returns fresh copies of fixed device records, advancing the clock by ``seconds``."""

    name = "fixed"

    def __init__(self, make, clock: ManualClock, seconds: float = 10.0) -> None:
        self.make, self.clock, self.seconds = make, clock, seconds

    def begin(self, key: str) -> None:
        self.clock.sleep(self.seconds)

    def end(self, key: str) -> list[DeviceEnergy]:
        return self.make()


def gpu_and_estimates() -> list[DeviceEnergy]:
    return [
        dev("gpu:a", "gpu", Source("nvml-counter"), 990.0, cuda_position=0),
        dev("cpu:estimate", "cpu", Source("estimate"), 26.0),
        dev("ram:estimate", "ram", Source("estimate"), 65.0, constant_power=True),
    ]


def test_measured_and_estimated_joules_are_kept_apart() -> None:
    m = Window(name="w", start_unix_s=0.0, duration_s=10.0, devices=gpu_and_estimates())
    assert m.measured_energy_j == 990.0
    assert m.estimated_energy_j == 91.0
    assert m.energy_j == 1081.0
    assert m.is_estimate  # any estimated joule in energy_j makes the total an estimate
    assert m.measured_kinds == ["gpu"] and m.estimated_kinds == ["cpu", "ram"]
    assert m.measured_uncertainty_j == pytest.approx(99.0)
    d = m.to_json()
    assert d["measured_energy_j"] == 990.0 and d["is_estimate"] is True


def test_only_measured_devices_is_not_an_estimate() -> None:
    m = Window(duration_s=10.0, devices=[dev("gpu:a", "gpu", Source("nvml-counter"), 5.0)])
    assert not m.is_estimate and m.estimated_energy_j is None


def test_an_entry_is_charged_only_for_its_gpus() -> None:
    clock = ManualClock()

    def two_gpus() -> list[DeviceEnergy]:
        return [
            dev("gpu:a", "gpu", Source("nvml-counter"), 3000.0, cuda_position=0),
            dev("gpu:b", "gpu", Source("nvml-counter"), 700.0, cuda_position=1, shared=True),
            dev("cpu:package-0", "cpu", Source("rapl"), 100.0),
        ]

    mon = EnergyMonitor([FixedMeter(two_gpus, clock)], clock=clock)
    with mon.window("e/train", gpus=[0]) as w:
        pass
    m = w.measurement
    assert m.energy_j == 3100.0  # cuda:1's idle 700 J is recorded, not charged
    uncharged = [d for d in m.devices if not d.charged]
    assert [d.device for d in uncharged] == ["gpu:b"]
    assert not m.is_shared and not any(f.startswith(FLAG_SHARED_DEVICE) for f in m.flags)
    # the same device set through the charging context, for windows opened deep inside phases
    with mon.charging([1]), mon.window("e2/serve") as w2:
        pass
    assert w2.measurement.energy_j == 800.0 and w2.measurement.is_shared
    assert f"{FLAG_SHARED_DEVICE}:gpu:b" in w2.measurement.flags
    with mon.window("all") as w3:  # no device set: everything is charged
        pass
    assert w3.measurement.energy_j == 3800.0
    # a nested scope hands its outer scope's device set back on exit
    with mon.charging([0]):
        with mon.charging([1]), mon.window("inner") as w4:
            pass
        with mon.window("outer-again") as w5:
            pass
    assert (w4.measurement.energy_j, w5.measurement.energy_j) == (800.0, 3100.0)


def test_a_cpu_entry_is_charged_for_a_superchip_module_but_not_for_a_gpu() -> None:
    clock = ManualClock()

    def devices() -> list[DeviceEnergy]:
        return [
            dev("gpu:a", "gpu", Source("nvml-counter"), 500.0, cuda_position=0),
            dev("gpu:m", "module", Source("nvml-counter"), 900.0, cuda_position=1),
        ]

    mon = EnergyMonitor([FixedMeter(devices, clock)], clock=clock)
    with mon.window("cpu-entry", gpus=[]) as w:
        pass
    assert w.measurement.energy_j == 900.0


def test_estimate_flag_follows_charged_devices_only() -> None:
    clock = ManualClock()
    mon = EnergyMonitor([FixedMeter(gpu_and_estimates, clock)], clock=clock)
    with mon.window("w", gpus=[0]) as w:
        pass
    assert FLAG_ESTIMATE in w.measurement.flags


def test_static_dynamic_split_never_negative_and_not_for_constant_power_models() -> None:
    clock = ManualClock()
    mon = EnergyMonitor([FixedMeter(gpu_and_estimates, clock, seconds=10.0)], clock=clock)
    # idle: GPU 100 W (window uses 99 W: below idle), CPU 2 W, RAM 6.5 W (constant model)
    mon.set_idle({"gpu:a": 100.0, "cpu:estimate": 2.0, "ram:estimate": 6.5})
    with mon.window("w") as w:
        pass
    by = {d.device: d for d in w.measurement.devices}
    gpu, cpu, ram = by["gpu:a"], by["cpu:estimate"], by["ram:estimate"]
    assert gpu.dynamic_j == 0.0 and gpu.static_j == 990.0
    assert any("below the idle baseline" in i for i in gpu.issues)
    assert cpu.static_j == pytest.approx(20.0) and cpu.dynamic_j == pytest.approx(6.0)
    assert ram.static_j is None and ram.dynamic_j is None
    assert any("not applicable" in i for i in ram.issues)


class JumpingClock(ManualClock):
    """A wall clock set back by NTP during the window; the monotonic clock runs on."""

    def __init__(self) -> None:
        super().__init__()
        self.mono = 0.0

    def monotonic(self) -> float:
        return self.mono

    def sleep(self, seconds: float) -> None:
        self.t -= 3600.0  # wall clock jumps back an hour
        self.mono += seconds


def test_window_duration_uses_the_monotonic_clock() -> None:
    clock = JumpingClock()
    mon = EnergyMonitor([FixedMeter(gpu_and_estimates, clock, seconds=2.5)], clock=clock)
    with mon.window("w") as w:
        pass
    assert w.measurement.duration_s == pytest.approx(2.5)
