"""Checks on a real NVIDIA GPU (``-m gpu``); skipped where NVML cannot initialise."""

from __future__ import annotations

import time

import pytest

from energybench.meters.gpu_select import select_gpus
from energybench.meters.nvml import NvmlMeter, probe_update_periods
from energybench.meters.nvml_device import PynvmlBackend

pynvml = pytest.importorskip("pynvml")


def _nvml_ok() -> bool:
    try:
        pynvml.nvmlInit()
        n = pynvml.nvmlDeviceGetCount()
        pynvml.nvmlShutdown()
        return n > 0
    except Exception:
        return False


pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not _nvml_ok(), reason="no NVML GPU here")]

WRITERS = (
    "nvmlDeviceSet",
    "nvmlDeviceReset",
    "nvmlDeviceClear",
    "nvmlUnitSet",
    "nvmlSystemSet",
    "nvmlDeviceCreate",
    "nvmlGpuInstanceCreate",
    "nvmlDeviceModify",
)


@pytest.fixture
def no_writes(monkeypatch):
    """Every pynvml call that could change GPU state raises."""

    def forbidden(*a, **k):
        raise AssertionError("a GPU setting was about to be changed")

    for name in dir(pynvml):
        if name.startswith(WRITERS):
            monkeypatch.setattr(pynvml, name, forbidden)


def test_counter_and_instant_power_are_readable(no_writes):
    backend = PynvmlBackend()
    try:
        dev = backend.devices()[0]
        assert dev.total_energy_mj() > 0
        assert 1_000 < dev.power_instant_mw() < 2_000_000
        assert dev.uuid().startswith("GPU-")
    finally:
        backend.close()


def test_update_period_is_detected(no_writes):
    backend = PynvmlBackend()
    try:
        dev = backend.devices()[0]
        p = probe_update_periods(dev.total_energy_mj, dev.power_instant_mw, max_s=2.0)
        assert p.counter_s is not None and 0.001 < p.counter_s < 1.0
    finally:
        backend.close()


def test_steady_load_windows_agree_between_channels(no_writes, tmp_path):
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("torch has no CUDA")
    backend = PynvmlBackend()
    targets = select_gpus(backend, [0], torch_uuids=[str(torch.cuda.get_device_properties(0).uuid)])
    meter = NvmlMeter(targets, sample_period_s=0.02, trace_dir=tmp_path, on_close=backend.close)
    from energybench.meters.base import EnergyMonitor

    mon = EnergyMonitor([meter], sync=torch.cuda.synchronize)
    a = torch.randn(4096, 4096, device="cuda")
    with mon:
        for _ in range(3):
            with mon.window("load") as w:
                t_end = time.time() + 6.0
                while time.time() < t_end:
                    for _ in range(20):
                        a = (a @ a).clamp_(-1, 1)
                    torch.cuda.synchronize()
            d = w.measurement.devices[0]
            assert d.complete and d.energy_j > 0
            assert d.cross_check is not None and d.cross_check["rel_diff"] < 0.15
    assert (tmp_path / "power-nvml.csv").stat().st_size > 0
