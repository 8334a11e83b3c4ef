"""Superchip scope: which modules CPU-side work is charged, GPU-only fallback, GB200's Grace."""

from __future__ import annotations

from pathlib import Path

import pytest

from energybench.meters.base import EnergyMonitor, Source
from energybench.meters.factory import build_monitor
from energybench.meters.nvml import NvmlMeter
from energybench.meters.nvml_device import PynvmlBackend
from energybench.meters.rapl import RaplFs
from energybench.meters.sim import profiles as sim_mod
from energybench.meters.sim.fakenvml import FakeGpu, FakeNvml, Fault
from energybench.suite.schema import EnergySettings
from tests.helpers.nvml import nvml_meter, run_for


@pytest.fixture
def idle_cpu(monkeypatch):
    """The simulated load model sees no CPU work: every module draws its idle power."""
    monkeypatch.setattr(sim_mod, "process_cpu_s", lambda: 0.0)


def monitor(profile: str, clock, tmp_path: Path, cuda) -> EnergyMonitor:
    return build_monitor(
        EnergySettings(sample_period_s=0.05, min_window_s=0),
        cuda,
        None,
        simulate=profile,
        rapl_fs=RaplFs(tmp_path / "none"),
        clock=clock,
        probe_s=0,
        background=False,
    )


def cpu_window(mon: EnergyMonitor, clock, seconds: float = 10.0):
    mon.start()
    meter = next(m for m in mon.meters if isinstance(m, NvmlMeter))
    with mon.charging([]):
        mon.begin_window("cpu-entry")
        run_for(clock, meter, seconds)
        return mon.end_window("cpu-entry")


@pytest.mark.parametrize("cuda", [None, [0], [2, 3]], ids=["cpu-only", "gpu0", "gpu2+3"])
def test_4xgh200_cpu_entry_is_charged_the_same_whatever_the_suite(clock, tmp_path, idle_cpu, cuda):
    """Issue 24: 6000 J (all four) in a CPU-only suite, 1500 J (module 0) beside a GPU entry."""
    m = cpu_window(monitor("4xgh200", clock, tmp_path, cuda), clock)
    charged = sorted(d.device for d in m.charged)
    assert len(charged) == 4 and all(d.startswith("module:") for d in charged)
    assert m.energy_j == pytest.approx(4 * 150.0 * 10.0, rel=0.02)  # unpinned: every Grace
    assert m.measured_kinds == ["module"] and not m.is_estimate


@pytest.mark.parametrize("cuda", [None, [0]], ids=["cpu-only", "gpu0"])
def test_4xgh200_pinned_to_one_grace_is_charged_that_module(clock, tmp_path, idle_cpu, cuda):
    mon = build_monitor(
        EnergySettings(sample_period_s=0.05, min_window_s=0),
        cuda,
        None,
        gpu_backend=PynvmlBackend(sim_mod.simulated_nvml("4xgh200", clock)),
        rapl_fs=RaplFs(tmp_path / "none"),
        clock=clock,
        probe_s=0,
        background=False,
    )
    nvml = next(m for m in mon.meters if isinstance(m, NvmlMeter))
    assert len(nvml._gpus) == 4
    # rebuild with the run pinned to Grace 1 (CPUs 72..143): what cpu_affinity decides
    pinned = NvmlMeter(
        [g.target for g in nvml._gpus],
        clock=clock,
        background=False,
        probe_s=0,
        cpu_affinity=lambda: frozenset(range(72, 144)),
    )
    mon = EnergyMonitor([pinned], clock=clock)
    m = cpu_window(mon, clock)
    (d,) = m.charged
    assert d.cuda_positions == [1] and d.energy_j == pytest.approx(1500.0, rel=0.02)


def test_a_module_whose_cpus_are_unknown_is_charged_to_cpu_work(clock):
    fake = FakeNvml([FakeGpu(name="NVIDIA GH200 480GB", module=True, power=300.0)], clock)
    meter = nvml_meter(fake, clock, cpu_affinity=lambda: frozenset({0}))
    mon = EnergyMonitor([meter], clock=clock)
    (d,) = cpu_window(mon, clock, 1.0).charged
    assert d.cpu_side and d.energy_j == pytest.approx(300.0, rel=0.02)
    fake = FakeNvml(
        [FakeGpu(name="NVIDIA GH200 480GB", module=True, power=300.0, cpus=(5, 6))], clock
    )
    meter = nvml_meter(fake, clock, cpu_affinity=lambda: frozenset({0}))
    m = cpu_window(EnergyMonitor([meter], clock=clock), clock, 1.0)
    assert m.charged == [] and not m.devices[0].cpu_side  # its Grace is not the run's
    meter = nvml_meter(fake, clock, cpu_affinity=lambda: None)  # the run's CPUs unknown
    assert cpu_window(EnergyMonitor([meter], clock=clock), clock, 1.0).charged


def gh200(clock, **kw) -> FakeNvml:
    return FakeNvml(
        [FakeGpu(name="NVIDIA GH200 480GB", module=True, power=320.0, grace_w=100.0, **kw)],
        clock,
    )


def test_the_plain_counter_on_a_superchip_is_the_gpu_alone(clock):
    fake = gh200(clock, module_energy_field=False)
    dev = PynvmlBackend(fake).devices()[0]
    assert dev.scope() == "module" and dev.counter_scope() == "gpu"
    e0 = dev.total_energy_mj()
    clock.sleep(1.0)
    assert dev.total_energy_mj() - e0 == pytest.approx(220_000, abs=1)  # 320 W - 100 W Grace
    ok = PynvmlBackend(gh200(clock)).devices()[0]
    assert ok.counter_scope() == "module"
    e0 = ok.total_energy_mj()
    clock.sleep(1.0)
    assert ok.total_energy_mj() - e0 == pytest.approx(320_000, abs=1)


def test_without_the_module_energy_field_module_power_is_integrated(clock):
    fake = gh200(clock, module_energy_field=False)
    meter = nvml_meter(fake, clock)
    mon = EnergyMonitor([meter], sync=fake.synchronize, clock=clock)
    mon.start()
    mon.begin_window("w")
    run_for(clock, meter, 5.0)
    (d,) = mon.end_window("w").devices
    assert d.kind == "module" and d.source is Source("nvml-power-integrated")
    assert d.energy_j == pytest.approx(320.0 * 5, rel=0.02)  # the module, not 220 W x 5 s
    assert any("counts the GPU only" in i for i in d.issues)
    assert meter.describe()[0]["counter_supported"] is False


def test_without_any_module_field_the_device_is_labelled_gpu_only(clock):
    fake = gh200(clock, module_energy_field=False)
    fake.gpus[0].faults.append(Fault("nvmlDeviceGetFieldValues", 0.0, code=3))
    meter = nvml_meter(fake, clock)
    assert meter.covers_host() is None and meter.module_devices == []
    mon = EnergyMonitor([meter], sync=fake.synchronize, clock=clock)
    mon.start()
    mon.begin_window("w")
    run_for(clock, meter, 5.0)
    (d,) = mon.end_window("w").devices
    assert d.kind == "gpu" and d.device.startswith("gpu:") and "GPU only" in d.name
    assert d.source is Source("nvml-counter")
    assert d.energy_j == pytest.approx(220.0 * 5, rel=0.02)
    assert any("Grace CPU and memory are not measured" in i for i in d.issues)


@pytest.mark.parametrize("gpus", [[0, 1], [0], [1]])
def test_gb200_two_gpus_share_one_grace_counted_once(clock, tmp_path, idle_cpu, gpus):
    mon = monitor("gb200", clock, tmp_path, [0, 1])
    nvml = next(m for m in mon.meters if isinstance(m, NvmlMeter))
    assert len(nvml._gpus) == 1 and nvml._gpus[0].positions == [0, 1]
    mon.start()
    mon.begin_window("w", gpus=gpus)
    run_for(clock, nvml, 10.0)
    m = mon.end_window("w")
    (d,) = m.charged
    assert d.kind == "module" and d.cuda_positions == [0, 1]
    assert d.energy_j == pytest.approx((250.0 + 150.0) * 10, rel=0.02)  # both GPUs + Grace once
    assert any("shares this module" in i for i in d.issues)


def test_gb200_cpu_only_suite_charges_the_superchip_once(clock, tmp_path, idle_cpu):
    m = cpu_window(monitor("gb200", clock, tmp_path, None), clock)
    (d,) = m.charged
    assert d.energy_j == pytest.approx(400.0 * 10, rel=0.02)


def test_module_power_from_the_average_alone_keeps_the_module_scope(clock):
    # no module energy field and no instant power field: the 1 s average at module scope still
    # works, so the device is the module (power integrated), not "GPU only"
    fake = gh200(clock, module_energy_field=False, instant_supported=False)
    meter = nvml_meter(fake, clock)
    uuid = fake.gpus[0].uuid
    assert meter.module_devices == [f"module:{uuid}"]
    assert [(d["device"], d["uuid"]) for d in meter.describe()] == [(f"module:{uuid}", uuid)]


def test_a_gpu_only_superchip_is_described_by_its_uuid(clock):
    fake = gh200(clock, module_energy_field=False)
    fake.gpus[0].faults.append(Fault("nvmlDeviceGetFieldValues", 0.0, code=3))
    uuid = fake.gpus[0].uuid
    described = nvml_meter(fake, clock).describe()
    assert [(d["device"], d["uuid"]) for d in described] == [(f"gpu:{uuid}", uuid)]
