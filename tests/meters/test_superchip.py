"""GH200/GB200: module-scope energy, labelled as such, and never a CPU/RAM figure on top."""

from __future__ import annotations

import pytest

from energybench.meters.base import EnergyMonitor, Source
from energybench.meters.estimate import EstimateMeter
from energybench.meters.factory import build_monitor, probe_meters
from energybench.meters.nvml import NvmlMeter
from energybench.meters.nvml_device import PynvmlBackend
from energybench.meters.rapl import RaplFs
from energybench.meters.sim.doubles import FakeRaplTree, ManualClock
from energybench.meters.sim.fakenvml import FakeGpu, FakeNvml
from energybench.suite.schema import EnergySettings
from tests.helpers.nvml import nvml_meter, run_for


def gh200(clock, name: str = "NVIDIA GH200 480GB", **kw) -> FakeNvml:
    return FakeNvml([FakeGpu(name=name, module=True, power=320.0, **kw)], clock)


@pytest.mark.parametrize("name", ["NVIDIA GH200 480GB", "NVIDIA Superchip (unnamed)"])
def test_module_scope_is_detected_by_name_or_by_failing_gpu_scope(clock, name):
    fake = gh200(clock, name)
    dev = PynvmlBackend(fake).devices()[0]
    assert dev.scope() == "module"
    assert dev.power_instant_mw() == 320_000
    assert dev.power_usage_mw() == 320_000  # module-scope average, not nvmlDeviceGetPowerUsage
    ordinary = PynvmlBackend(FakeNvml([FakeGpu()], ManualClock())).devices()[0]
    assert ordinary.scope() == "gpu"


def test_module_energy_is_read_with_the_module_scope_field(clock):
    fake = gh200(clock)
    meter = nvml_meter(fake, clock)
    mon = EnergyMonitor([meter], sync=fake.synchronize, clock=clock)
    mon.start()
    run_for(clock, meter, 1.0)
    mon.begin_window("w")
    fake.submit(0, 3.0, 700.0)
    run_for(clock, meter, 5.0)
    m = mon.end_window("w")
    d = m.devices[0]
    assert d.kind == "module" and "GPU + CPU + memory" in d.name
    assert d.device.startswith("module:GPU-")
    assert d.source is Source("nvml-counter") and d.complete
    assert d.energy_j == pytest.approx(700 * 3 + 320 * 2, rel=0.02)
    assert d.cross_check["integrated_j"] == pytest.approx(d.energy_j, rel=0.03)
    assert any("NVML_POWER_SCOPE_MODULE" in i for i in d.issues)
    assert m.measured_kinds == ["module"]
    assert fake.calls.get("nvmlDeviceGetPowerUsage", 0) == 0


def test_module_energy_falls_back_to_the_plain_counter_on_older_drivers(clock):
    fake = gh200(clock)
    fake._fill_orig = fake._fill

    def no_energy_field(g, t, v):
        fake._fill_orig(g, t, v)
        if v.fieldId == fake.NVML_FI_DEV_ENERGY:
            v.nvmlReturn = fake.NVML_ERROR_NOT_SUPPORTED

    fake._fill = no_energy_field
    dev = PynvmlBackend(fake).devices()[0]
    e0 = dev.total_energy_mj()
    clock.sleep(1.0)
    assert dev.total_energy_mj() - e0 == pytest.approx(320_000, abs=1)


def test_superchip_without_the_instant_field_is_still_a_module_by_name(clock):
    fake = gh200(clock, instant_supported=False)  # an older driver: only the name tells
    dev = PynvmlBackend(fake).devices()[0]
    assert dev.scope() == "module"
    assert dev.power_usage_mw() == 320_000


def settings(**kw) -> EnergySettings:
    return EnergySettings(sample_period_s=0.1, min_window_s=0, **kw)


@pytest.mark.parametrize("meters", [["auto"], ["nvml", "estimate"], ["auto", "estimate"]])
def test_no_cpu_or_ram_figure_is_added_on_top_of_a_module(tmp_path, clock, meters):
    tree = FakeRaplTree(tmp_path / "pc")
    tree.add_package(0)  # even a readable RAPL tree is not used
    fake = gh200(clock)
    mon = build_monitor(
        settings(meters=meters),
        [0],
        None,
        gpu_backend=PynvmlBackend(fake),
        rapl_fs=RaplFs(tree.root),
        clock=clock,
        probe_s=0,
        background=False,
    )
    assert [type(m) for m in mon.meters] == [NvmlMeter]
    notes = mon.describe()[0]["notes"]
    assert any("no CPU/RAM meter added" in n for n in notes)
    if "estimate" in meters:
        assert any("names estimate: not added" in n for n in notes)
    with mon.window("w") as w:
        clock.sleep(2.0)
    m = w.measurement
    assert not m.is_estimate and m.estimated_energy_j is None
    assert m.energy_j == pytest.approx(640.0, rel=0.02)
    assert any("no CPU/RAM meter added" in i for i in m.devices[0].issues)


def test_cpu_only_run_on_a_superchip_measures_the_module(tmp_path, clock):
    fake = gh200(clock)
    mon = build_monitor(
        settings(),
        None,
        None,
        gpu_backend=PynvmlBackend(fake),
        rapl_fs=RaplFs(tmp_path / "none"),
        clock=clock,
        probe_s=0,
        background=False,
    )
    assert [type(m) for m in mon.meters] == [NvmlMeter]
    with mon.window("w", gpus=[]) as w:
        clock.sleep(1.0)
    (d,) = w.measurement.devices
    assert d.kind == "module" and d.charged and d.energy_j == pytest.approx(320.0, rel=0.02)


def test_cpu_only_run_on_an_ordinary_gpu_server_keeps_the_cpu_meters(tmp_path, clock):
    fake = FakeNvml([FakeGpu()], clock)
    mon = build_monitor(
        settings(),
        None,
        None,
        gpu_backend=PynvmlBackend(fake),
        rapl_fs=RaplFs(tmp_path / "none"),
        clock=clock,
        background=False,
    )
    assert [type(m) for m in mon.meters] == [EstimateMeter]
    assert fake._init_count == 0  # NVML was released


def test_meters_explains_the_superchip(tmp_path):
    fake = gh200(ManualClock())
    nvml, rapl, est = probe_meters(
        gpu_backend=PynvmlBackend(fake), rapl_fs=RaplFs(tmp_path / "none"), probe_s=0.05
    )
    assert nvml.ok and nvml.details[0]["kind"] == "module"
    assert "superchip" in nvml.fix and "no CPU/RAM" in nvml.fix
    assert rapl.fix.startswith("not used here") and est.fix.startswith("not used here")
