"""build_monitor and probe_meters on this machine and with simulated devices."""

from __future__ import annotations

import pytest

from energybench.meters import nvml_plugin
from energybench.meters.base import Source
from energybench.meters.estimate import EstimateMeter
from energybench.meters.factory import (
    MeterUnavailableError,
    UnmeasuredMeter,
    build_monitor,
    probe_meters,
)
from energybench.meters.nvml import NvmlMeter
from energybench.meters.nvml_device import NvmlUnavailableError, PynvmlBackend
from energybench.meters.rapl import RaplFs, RaplMeter
from energybench.meters.sim.doubles import DeniedRaplFs, FakeRaplTree, ManualClock
from energybench.meters.sim.fakenvml import FakeGpu, FakeNvml
from energybench.suite.schema import EnergySettings


class NoNvml:
    def __init__(self) -> None:
        raise NvmlUnavailableError("NVML could not be initialised (simulated)", "install a driver")


@pytest.fixture
def no_nvml(monkeypatch):
    monkeypatch.setattr(nvml_plugin, "PynvmlBackend", NoNvml)


def test_auto_without_gpu_or_rapl_uses_the_estimate(tmp_path, no_nvml):
    mon = build_monitor(
        EnergySettings(), None, tmp_path, rapl_fs=RaplFs(tmp_path / "none"), background=False
    )
    assert [type(m) for m in mon.meters] == [EstimateMeter]
    with mon.window("w") as w:
        pass
    assert w.measurement.is_estimate


def test_auto_prefers_readable_rapl(tmp_path, no_nvml):
    tree = FakeRaplTree(tmp_path / "pc")
    tree.add_package(0)
    mon = build_monitor(EnergySettings(), None, None, rapl_fs=RaplFs(tree.root), background=False)
    assert [type(m) for m in mon.meters] == [RaplMeter]
    mon = build_monitor(
        EnergySettings(), None, None, rapl_fs=DeniedRaplFs(tree.root), background=False
    )
    assert [type(m) for m in mon.meters] == [EstimateMeter]


def test_forced_meters_fail_clearly(tmp_path, no_nvml):
    tree = FakeRaplTree(tmp_path / "pc")
    tree.add_package(0)
    with pytest.raises(MeterUnavailableError, match="chmod -R a"):
        build_monitor(EnergySettings(meters=["rapl"]), None, None, rapl_fs=DeniedRaplFs(tree.root))
    with pytest.raises(MeterUnavailableError, match="asks for 'nvml'.*install a driver"):
        build_monitor(EnergySettings(meters=["nvml"]), [0], None)


def test_gpus_used_but_nvml_missing_are_reported_unmeasured(tmp_path, no_nvml):
    mon = build_monitor(
        EnergySettings(), [0], None, rapl_fs=RaplFs(tmp_path / "none"), background=False
    )
    assert isinstance(mon.meters[0], UnmeasuredMeter)
    with mon.window("w") as w:
        pass
    gpu = w.measurement.devices[0]
    assert gpu.energy_j is None and not gpu.complete and "NVML" in gpu.issues[0]
    assert gpu.source is Source("unmeasured") and "unmeasured" in w.measurement.sources
    assert not gpu.is_estimate and "gpu" not in w.measurement.measured_kinds
    assert gpu.cuda_position == 0  # charged to the entry that uses cuda:0 only
    assert "incomplete:gpu:cuda:0" in w.measurement.flags


def test_auto_with_gpus_writes_a_trace(tmp_path, monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    clock = ManualClock()
    fake = FakeNvml([FakeGpu(power=200.0), FakeGpu(power=200.0)], clock)
    backend = PynvmlBackend(fake)
    tree = FakeRaplTree(tmp_path / "pc")
    tree.add_package(0)
    settings = EnergySettings(sample_period_s=0.1, min_window_s=0)
    mon = build_monitor(
        settings,
        [1],
        tmp_path / "traces",
        gpu_backend=backend,
        rapl_fs=RaplFs(tree.root),
        clock=clock,
        probe_s=0.3,
        background=False,
    )
    assert [type(m) for m in mon.meters] == [NvmlMeter, RaplMeter]
    nv = mon.meters[0]
    with mon:
        with mon.window("w") as w:
            for _ in range(30):
                clock.sleep(0.1)
                nv.poll()
    devs = {d.device: d for d in w.measurement.devices}
    gpu = devs[f"gpu:{fake.gpus[1].uuid}"]
    assert gpu.energy_j == pytest.approx(600, rel=0.02) and gpu.cuda_position == 1
    assert (tmp_path / "traces" / "power-nvml.csv").exists()
    assert nv.describe()[0]["sample_period_s"] == 0.1
    assert w.measurement.flags == []


def test_probe_meters_explains_each_meter(tmp_path):
    clock = ManualClock()
    old = FakeGpu(power=90.0, counter_supported=False, name="Tesla P100", arch="pascal")
    backend = PynvmlBackend(FakeNvml([FakeGpu(name="Simulated GPU", power=100.0), old], clock))
    tree = FakeRaplTree(tmp_path / "pc")
    tree.add_package(0)
    nvml, rapl, est = probe_meters(
        gpu_backend=backend, rapl_fs=DeniedRaplFs(tree.root), probe_s=0.3
    )
    assert nvml.ok and [d["name"] for d in nvml.details] == ["Simulated GPU", "Tesla P100"]
    assert nvml.details[0]["power_limit_w"] == 700.0 and nvml.details[0]["driver"]
    assert nvml.details[1]["counter_supported"] is False and "pre-Volta" in nvml.fix
    assert not rapl.ok and "chmod" in rapl.fix
    assert est.ok and est.details[0]["tdp_w"] > 0
    assert backend.lib._init_count == 0  # nvmlShutdown was called


def test_probe_meters_on_this_machine_never_raises():
    statuses = probe_meters(rapl_fs=RaplFs("/sys/class/powercap"), probe_s=0.2)
    assert [s.name for s in statuses] == ["nvml", "rapl", "estimate"]
    for s in statuses:
        assert s.ok or (s.reason and s.fix)


def test_importing_meters_stays_light():
    import subprocess
    import sys

    code = (
        "import sys, energybench.meters; "
        "print(sorted(m for m in ('torch', 'codecarbon', 'pynvml') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
