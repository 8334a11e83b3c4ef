"""Devices resolved at validate: CPU-only methods (FX int8, ORT int8 on a CPU provider, ORT with
only the CPU provider, OpenVINO) put ``auto`` on the CPU with a note, and an explicit GPU is
refused, before any work; a CPU entry on a GPU host is charged for no GPU, and a ranking or pair
that mixes CPU and GPU entries is marked in the export and the report."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from energybench.cli import app
from energybench.run.placement import placements
from energybench.suite import SuiteError, load_suite
from energybench.suite.devices import cpu_only_reason, effective_device
from tests.meters.test_simulate_e2e import run, table

ROOT = Path(__file__).resolve().parents[2]

SUITE = """\
name: dev
defaults:
  dataset: {name: photos, params: {patch_size: 16, test_crop: 32x32, serve_lr: 16x16}}
  train: {steps: 2, batch_size: 2}
entries:
  - name: base
    model: {name: espcn, params: {channels: 4, layers: 2, first_kernel: 3}}
  - name: q
    model: {name: espcn, params: {channels: 4, layers: 2, first_kernel: 3}}
    inherit: base
    DEVICE
    compress: [{method: quantize, dtype: int8, calibration_batches: 1}]
"""


def _write(tmp_path: Path, device: str = "", text: str = SUITE) -> Path:
    p = tmp_path / "s.yaml"
    p.write_text(textwrap.dedent(text.replace("DEVICE", device)))
    return p


def test_validate_compression_suite_replaces_the_int8_entries_on_a_simulated_h100() -> None:
    res = CliRunner().invoke(
        app, ["validate", str(ROOT / "suites" / "compression.yaml"), "--simulate", "h100"]
    )
    assert res.exit_code == 0, res.output
    text = " ".join(res.output.split())
    for name in ("espcn-int8", "ckbg-pruned-int8"):
        assert f"entry '{name}': device auto -> cpu: FX int8" in text
    assert "entry 'espcn': device" not in text  # GPU entries stay on the GPU
    suite = load_suite(ROOT / "suites" / "compression.yaml").suite
    placed = placements(suite, "h100")
    assert placed["espcn-int8"].label == "cpu" and not placed["espcn-int8"].gpus
    assert placed["espcn"].label == "simulated-h100:0"


def test_an_explicit_gpu_for_fx_int8_is_refused_located(tmp_path: Path) -> None:
    path = _write(tmp_path, "device: cuda:1")
    res = CliRunner().invoke(app, ["validate", str(path)])
    assert res.exit_code == 2, res.output
    text = " ".join(res.output.split())
    assert f"{path}:11:" in res.output and "entries.1.device" in text
    assert "device 'cuda:1' cannot run this entry: FX int8" in text
    assert "Traceback" not in res.output


def test_openvino_on_a_cuda_entry_is_refused(tmp_path: Path) -> None:
    text = SUITE.replace(
        "compress: [{method: quantize, dtype: int8, calibration_batches: 1}]",
        "backend: openvino",
    )
    with pytest.raises(SuiteError) as info:
        load_suite(_write(tmp_path, "device: cuda", text))
    assert "entries.1.device" in str(info.value) and "OpenVINO runs on the CPU" in str(info.value)


@pytest.mark.parametrize(
    ("backend", "cpu_only"),
    [
        ("{name: onnxruntime, quantize: int8}", True),
        ("{name: onnxruntime, providers: [CPUExecutionProvider]}", True),
        ("{name: onnxruntime}", False),
        (
            "{name: onnxruntime, quantize: int8, providers: [TensorrtExecutionProvider, "
            "CUDAExecutionProvider]}",
            False,
        ),
        ("openvino", True),
        ("eager", False),
    ],
)
def test_which_backends_are_cpu_only(backend: str, cpu_only: bool) -> None:
    import yaml

    from energybench.suite.schema import Entry

    entry = Entry.model_validate(
        {"name": "e", "model": {"name": "espcn"}, "backend": yaml.safe_load(backend)}
    )
    assert (cpu_only_reason(entry) is not None) == cpu_only
    assert effective_device(entry) == ("cpu" if cpu_only else "auto")


def test_a_cpu_entry_on_a_gpu_host_is_charged_no_gpu_and_the_mix_is_marked(
    tmp_path: Path,
) -> None:
    """The CPU entry's windows see the idle GPU but are not charged for it; its figures are
    CPU estimates (unranked unless estimates are allowed); the pair and the ranking say they
    mix devices, in the export and the report; the run records its numerics and GPU settings."""
    run_dir, frame = run(tmp_path, "h100", "entries.small.device=cpu", "metric.pairs=[[small,big]]")
    phases = table(frame, "phases")
    gpu = phases[phases["device_kind"] == "gpu"]
    small = gpu[gpu["entry"] == "small"]
    assert len(small) > 0 and not small["charged"].astype(bool).any()
    assert gpu[gpu["entry"] == "big"]["charged"].astype(bool).all()
    board = table(frame, "leaderboard").set_index("entry")
    assert board.loc["small", "placement"] == "cpu"
    assert board.loc["big", "placement"] == "simulated-h100:0"
    assert board["is_mixed_devices"].astype(bool).all()
    assert board.loc["small", "energy_scope"] == "CPU/RAM estimated only"
    pair = table(frame, "break_even").set_index("entry").loc["small"]
    assert bool(pair["is_mixed_devices"]) and pair["note"].startswith("mixed devices: small on CPU")
    html = (tmp_path / "r.html").read_text()
    assert "this ranking mixes CPU and GPU entries" in html and "mixed devices" in html
    env = json.loads((run_dir / "manifest.json").read_text())["environment"]
    assert env["numerics"]["cudnn_allow_tf32"] is False  # declared: exact fp32 by default
    settings = env["gpu_settings"]
    assert settings["simulated"] and settings["driver"] == "550.54.15-simulated"
    (g,) = settings["gpus"]
    assert g["power_limit_w"] == 700.0 and g["persistence_mode"] is True
    assert g["ecc"] == {"current": True, "pending": True} and g["mig"]["current"] is False
    assert g["clocks"]["sm"]["max_mhz"] == 1980
