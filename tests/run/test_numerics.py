"""Numerics declared: TF32, matmul precision and cudnn.benchmark set from the suite (default:
exact fp32, no autotuning) and recorded, with each GPU's power limit, clocks, persistence
mode, ECC, MIG mode and driver read through NVML (the fake pynvml's real names and units)."""

from __future__ import annotations

import pytest
import torch

from energybench.meters.sim.profiles import simulated_nvml
from energybench.run.environment import gpu_settings, snapshot
from energybench.run.numerics import apply_numerics, read_numerics
from energybench.suite.schema import NumericsSettings, Suite


@pytest.fixture(autouse=True)
def _restore() -> object:
    before = (
        torch.get_float32_matmul_precision(),
        torch.backends.cudnn.allow_tf32,
        torch.backends.cudnn.benchmark,
    )
    yield
    torch.set_float32_matmul_precision(before[0])
    torch.backends.cudnn.allow_tf32, torch.backends.cudnn.benchmark = before[1], before[2]


def test_the_default_is_exact_fp32_without_autotuning() -> None:
    torch.backends.cudnn.allow_tf32 = True  # torch's own default for convolutions
    torch.backends.cudnn.benchmark = True
    got = apply_numerics(None)
    assert got["cudnn_allow_tf32"] is False and got["cudnn_benchmark"] is False
    assert got["float32_matmul_precision"] == "highest" and got["cuda_matmul_allow_tf32"] is False


def test_suite_numerics_are_applied_and_read_back() -> None:
    n = NumericsSettings(tf32=True, matmul_precision="high", cudnn_benchmark=True)
    got = apply_numerics(n)
    assert got == read_numerics()
    assert got["cudnn_allow_tf32"] and got["cudnn_benchmark"]
    assert got["float32_matmul_precision"] == "high" and got["cuda_matmul_allow_tf32"]
    assert n.uses_tf32() and not NumericsSettings().uses_tf32()


def test_an_unset_numerics_section_keeps_old_config_hashes() -> None:
    base = {"name": "s", "entries": [{"name": "e", "model": {"name": "espcn"}}]}
    assert "numerics" not in Suite.model_validate(base).model_dump(mode="json")
    set_ = Suite.model_validate({**base, "numerics": {"tf32": True}}).model_dump(mode="json")
    assert set_["numerics"]["tf32"] is True


def test_gpu_settings_read_through_nvml_with_units() -> None:
    nvml = simulated_nvml("a100")
    nvml.nvmlInit()
    try:
        s = gpu_settings(nvml, [0], simulated=True)
        limit_mw = nvml.nvmlDeviceGetPowerManagementLimit(nvml.nvmlDeviceGetHandleByIndex(0))
    finally:
        nvml.nvmlShutdown()
    (g,) = s["gpus"]
    assert g["power_limit_w"] == limit_mw / 1000  # NVML reports mW
    assert g["clocks"]["memory"]["max_mhz"] > 0 and g["clocks"]["sm"]["applications_mhz"] > 0
    assert {"persistence_mode", "ecc", "mig", "default_power_limit_w"} <= set(g)
    assert s["driver"] and s["cuda_driver_version"] == 12040


def test_mig_mode_is_recorded() -> None:
    env = snapshot("h100-mig", [0])
    assert env["gpu_settings"]["gpus"][0]["mig"] == {"current": True, "pending": True}
    assert env["numerics"] == read_numerics()


def test_unsupported_reads_are_none_not_errors() -> None:
    nvml = simulated_nvml("h100")
    nvml.gpus[0].arch = "turing"  # no MIG on Turing: NVML_ERROR_NOT_SUPPORTED
    nvml.nvmlInit()
    try:
        (g,) = gpu_settings(nvml, [0], simulated=True)["gpus"]
    finally:
        nvml.nvmlShutdown()
    assert g["mig"] is None and g["power_limit_w"] == 700.0
