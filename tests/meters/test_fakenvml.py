"""The fake NVML module mirrors pynvml (names, constants, errors, structs) and the hardware
(units, sensor periods, power-channel nature, scopes, asynchronous work)."""

from __future__ import annotations

import pytest

from energybench.meters.sim import fakenvml
from energybench.meters.sim.doubles import ManualClock
from energybench.meters.sim.fakenvml import FakeGpu, FakeNvml, PowerTrace

pynvml = pytest.importorskip("pynvml")


def test_names_constants_and_error_classes_mirror_pynvml():
    fake = FakeNvml([FakeGpu()], ManualClock())
    functions = [n for n in dir(fake) if n.startswith("nvml")]
    assert len(functions) > 20
    missing = [n for n in functions if not callable(getattr(pynvml, n, None))]
    assert missing == []
    consts = [n for n in dir(fakenvml) if n.startswith("NVML_")]
    assert [n for n in consts if getattr(pynvml, n, None) != getattr(fakenvml, n)] == []
    for name in consts:
        if name.startswith("NVML_ERROR_"):
            code = getattr(fakenvml, name)
            real, ours = pynvml.NVMLError(code), fake.NVMLError(code)
            assert type(ours).__name__ == type(real).__name__
            assert isinstance(ours, fake.NVMLError) and ours.value == code
            assert str(ours) == str(real)
    assert isinstance(fake.NVMLError_GpuIsLost(), fake.NVMLError)
    assert fake.NVMLError_NotSupported().value == pynvml.NVML_ERROR_NOT_SUPPORTED


def test_structs_mirror_pynvml():
    def names(s):
        return [f[0] for f in s._fields_]

    assert names(fakenvml.c_nvmlFieldValue_t) == names(pynvml.c_nvmlFieldValue_t)
    assert names(fakenvml.c_nvmlValue_t) == names(pynvml.c_nvmlValue_t)


def test_calls_need_init_and_units_are_mj_and_mw():
    clock = ManualClock()
    fake = FakeNvml([FakeGpu(power=250.0)], clock)
    with pytest.raises(fake.NVMLError_Uninitialized):
        fake.nvmlDeviceGetCount()
    fake.nvmlInit()
    h = fake.nvmlDeviceGetHandleByIndex(0)
    e0 = fake.nvmlDeviceGetTotalEnergyConsumption(h)
    assert isinstance(e0, int) and e0 > 2**32  # 64-bit counter
    clock.sleep(2.0)
    assert fake.nvmlDeviceGetTotalEnergyConsumption(h) - e0 == 500_000  # mJ
    assert fake.nvmlDeviceGetPowerUsage(h) == 250_000  # mW
    (v,) = fake.nvmlDeviceGetFieldValues(h, [fake.NVML_FI_DEV_POWER_INSTANT])
    assert (v.nvmlReturn, v.valueType, v.value.uiVal) == (0, 1, 250_000)
    assert fake.nvmlDeviceGetMigMode(h) == [0, 0]
    with pytest.raises(fake.NVMLError_InvalidArgument):
        fake.nvmlDeviceGetHandleByIndex(3)


def test_counter_updates_every_period_and_instant_sees_25_of_100_ms():
    clock = ManualClock()
    # 400 W during the first 50 ms of each 100 ms, 60 W in the last 50 ms
    trace = PowerTrace.from_function(lambda t: 400.0 if t % 0.1 < 0.05 else 60.0, 5, 0.005)
    fake = FakeNvml([FakeGpu(power=trace)], clock)
    fake.nvmlInit()
    h = fake.nvmlDeviceGetHandleByIndex(0)
    clock.sleep(1.02)
    e = fake.nvmlDeviceGetTotalEnergyConsumption(h)
    clock.sleep(0.07)  # no update yet
    assert fake.nvmlDeviceGetTotalEnergyConsumption(h) == e
    clock.sleep(0.02)
    assert fake.nvmlDeviceGetTotalEnergyConsumption(h) - e == pytest.approx(23_000, abs=2)
    (v,) = fake.nvmlDeviceGetFieldValues(h, [fake.NVML_FI_DEV_POWER_INSTANT])
    assert v.value.uiVal == 60_000  # the sensor only sees the quiet 25 ms
    assert fake.nvmlDeviceGetPowerUsage(h) == pytest.approx(230_000, abs=5_000)  # 1 s mean


def test_power_usage_is_instantaneous_on_ga100_and_a_1s_average_on_hopper():
    clock = ManualClock()
    step = PowerTrace([(0, 60), (1.0, 400)])
    hopper = FakeGpu(power=step)
    ga100 = FakeGpu(power=step, name="NVIDIA A100-SXM4-40GB", arch="ampere")
    ga100.power_usage_average_s = 0.0
    fake = FakeNvml([hopper, ga100], clock)
    fake.nvmlInit()
    clock.sleep(1.25)
    h0, h1 = fake.nvmlDeviceGetHandleByIndex(0), fake.nvmlDeviceGetHandleByIndex(1)
    assert fake.nvmlDeviceGetPowerUsage(h1) == 400_000
    assert fake.nvmlDeviceGetPowerUsage(h0) == pytest.approx(60_000 + 0.2 * 340_000, abs=10)


def test_queued_work_lands_only_when_the_stream_runs_it():
    clock = ManualClock()
    fake = FakeNvml([FakeGpu(power=50.0)], clock)
    fake.nvmlInit()
    h = fake.nvmlDeviceGetHandleByIndex(0)
    e0 = fake.nvmlDeviceGetTotalEnergyConsumption(h)
    fake.submit(0, 1.0, 450.0)
    fake.submit(0, 1.0, 250.0)  # runs after the first, in order
    assert fake.nvmlDeviceGetTotalEnergyConsumption(h) == e0  # nothing executed yet
    t0 = clock.monotonic()
    fake.synchronize()
    assert clock.monotonic() - t0 == pytest.approx(2.0)
    clock.sleep(0.1)  # let the counter update once more
    assert fake.nvmlDeviceGetTotalEnergyConsumption(h) - e0 == pytest.approx(
        (450 + 250 + 50 * 0.1) * 1000, abs=1
    )
    assert fake.true_energy_j(0, t0, t0 + 2.0) == pytest.approx(700.0)


def test_superchip_fails_gpu_scope_and_reports_module_scope():
    clock = ManualClock()
    fake = FakeNvml([FakeGpu(name="NVIDIA GH200 480GB", module=True, power=300.0)], clock)
    fake.nvmlInit()
    h = fake.nvmlDeviceGetHandleByIndex(0)
    with pytest.raises(fake.NVMLError_NotSupported):
        fake.nvmlDeviceGetPowerUsage(h)
    gpu, module = fake.nvmlDeviceGetFieldValues(
        h,
        [
            (fake.NVML_FI_DEV_POWER_INSTANT, fake.NVML_POWER_SCOPE_GPU),
            (fake.NVML_FI_DEV_POWER_INSTANT, fake.NVML_POWER_SCOPE_MODULE),
        ],
    )
    assert gpu.nvmlReturn == fake.NVML_ERROR_NOT_SUPPORTED and gpu.scopeId == 0
    assert module.nvmlReturn == 0 and module.scopeId == 1 and module.value.uiVal == 300_000
    (energy,) = fake.nvmlDeviceGetFieldValues(
        h, [(fake.NVML_FI_DEV_ENERGY, fake.NVML_POWER_SCOPE_MODULE)]
    )
    assert energy.valueType == fake.NVML_VALUE_TYPE_UNSIGNED_LONG_LONG
    assert energy.value.ullVal == fake.nvmlDeviceGetTotalEnergyConsumption(h)


def test_processes_mig_lost_and_faults():
    clock = ManualClock()
    g = FakeGpu(processes=[(11, 1.0, 2.0)], mig=(1, 0), lost_at_s=5.0)
    g.faults.append(fakenvml.Fault("nvmlDeviceGetTemperature", 0.0, 0.5, code=10))
    fake = FakeNvml([g], clock)
    fake.nvmlInit()
    h = fake.nvmlDeviceGetHandleByIndex(0)
    assert fake.nvmlDeviceGetComputeRunningProcesses(h) == []
    with pytest.raises(fake.NVMLError_Timeout):
        fake.nvmlDeviceGetTemperature(h, fake.NVML_TEMPERATURE_GPU)
    clock.sleep(1.5)
    (p,) = fake.nvmlDeviceGetComputeRunningProcesses(h)
    assert p.pid == 11 and p.usedGpuMemory > 0
    assert fake.nvmlDeviceGetMigMode(h) == [1, 0]
    clock.sleep(4.0)
    with pytest.raises(fake.NVMLError_GpuIsLost):
        fake.nvmlDeviceGetName(h)
    assert not [n for n in dir(fake) if n.startswith(("nvmlDeviceSet", "nvmlDeviceReset"))]
