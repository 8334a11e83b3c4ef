"""Devices resolved at validate: CPU-only methods (FX int8, ORT int8 on a CPU provider, ORT with
only the CPU provider, OpenVINO) put ``auto`` on the CPU with a note, and an explicit GPU is
refused, before any work; a CPU entry on a GPU host is charged for no GPU, and a ranking or pair
that mixes CPU and GPU entries is marked in the export and the report."""

from __future__ import annotations

import io
import json
import textwrap
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from energybench.cli import app
from energybench.run.placement import placements
from energybench.suite import SuiteError, load_suite
from energybench.suite.devices import cpu_only_reason, effective_device
from tests.meters.test_simulate_e2e import table

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


E2E = """\
name: devmix
defaults:
  dataset:
    name: photos
    params: {patch_size: 16, test_crop: 32x32, serve_lr: 16x16}
  train: {steps: 2, batch_size: 2}
  evaluate: {max_items: 1}
  serve:
    - {name: main, scenario: throughput, batch_sizes: [1], warmup: 0, iterations: 2}
energy:
  meters: [nvml, estimate]
  idle_baseline_s: 0.2
  sample_period_s: 0.02
  min_window_s: 0.3
  min_window_iters: 2
  trials: 2
  max_trials: 2
metric:
  quality: psnr_db
  iec_scenario: main
  pairs: [[small-int8, small]]
entries:
  - name: small
    model: {name: espcn, params: {channels: 4, layers: 2, first_kernel: 3}}
  - name: small-int8
    model: {name: espcn, params: {channels: 4, layers: 2, first_kernel: 3}}
    inherit: small
    compress: [{method: quantize, dtype: int8, calibration_batches: 1}]
"""


def test_an_int8_entry_on_a_gpu_host_runs_on_the_cpu_charged_no_gpu_and_is_marked(
    tmp_path: Path,
) -> None:
    """``auto`` puts the FX int8 entry on the CPU (the run says so); its windows see the idle
    GPU but are not charged for it; its serving figures are CPU estimates (unranked unless
    estimates are allowed; its inherited training stays the GPU's); the pair and the
    leaderboard say they mix devices, in the export and the report; the run records its
    numerics and GPU settings."""
    suite = tmp_path / "devmix.yaml"
    suite.write_text(E2E)
    out = tmp_path / "out"
    args = ["run", str(suite), "--out", str(out), "--simulate", "h100"]
    res = CliRunner().invoke(app, [*args, "--report", str(tmp_path / "r.html")])
    assert res.exit_code == 0, res.output
    assert "entry 'small-int8': device auto -> cpu: FX int8" in " ".join(res.output.split())
    (run_dir,) = out.glob("devmix/*/")
    exp = CliRunner().invoke(app, ["export", str(run_dir), "--format", "csv", "-o", "-"])
    frame = pd.read_csv(io.StringIO(exp.stdout), low_memory=False)
    phases = table(frame, "phases")
    gpu = phases[phases["device_kind"] == "gpu"]
    q = gpu[gpu["entry"] == "small-int8"]
    assert len(q) > 0 and not q["charged"].astype(bool).any()
    assert gpu[gpu["entry"] == "small"]["charged"].astype(bool).all()
    board = table(frame, "leaderboard").set_index("entry")
    assert board.loc["small-int8", "placement"] == "cpu"
    assert board.loc["small", "placement"] == "simulated-h100:0"
    assert board["is_mixed_devices"].astype(bool).all()
    # served on the CPU: its IEC is the CPU/RAM estimate (no GPU joule), so it is unranked
    assert (
        bool(board.loc["small-int8", "iec_is_estimate"]) and not board.loc["small", "is_estimate"]
    )
    assert pd.isna(board.loc["small-int8", "rank"])
    pair = table(frame, "break_even").set_index("entry").loc["small-int8"]
    assert bool(pair["is_mixed_devices"])
    assert pair["note"].startswith("mixed devices: small-int8 on CPU, small on CUDA")
    html = (tmp_path / "r.html").read_text()
    assert "this ranking mixes CPU and GPU entries" in html and "mixed devices" in html
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["placements"] == {"small": "simulated-h100:0", "small-int8": "cpu"}
    env = manifest["environment"]
    assert env["numerics"]["cudnn_allow_tf32"] is False  # declared: exact fp32 by default
    settings = env["gpu_settings"]
    assert settings["simulated"] and settings["driver"] == "550.54.15-simulated"
    (g,) = settings["gpus"]
    assert g["power_limit_w"] == 700.0 and g["persistence_mode"] is True
    assert g["ecc"] == {"current": True, "pending": True} and g["mig"]["current"] is False
    assert g["clocks"]["sm"]["max_mhz"] == 1980


def test_an_adaptive_scenario_cannot_switch_a_gpu_stream_to_a_cpu_only_variant(
    tmp_path: Path,
) -> None:
    adapt = (
        "  - name: adapt\n"
        "    model: {name: bicubic}\n"
        "    DEVICE\n"
        "    serve:\n"
        "      - {name: a, scenario: adaptive, fps: 10, duration_s: 1, variants: [base, q]}\n"
    )
    text = SUITE.replace("DEVICE", "") + adapt
    with pytest.raises(SuiteError) as info:
        load_suite(_write(tmp_path, "", text))
    msg = str(info.value)
    assert "entries.2.serve.0.variants.1" in msg and "adaptive variant 'q' runs on the CPU" in msg
    load_suite(_write(tmp_path, "device: cpu", text))  # a CPU stream may switch to it
