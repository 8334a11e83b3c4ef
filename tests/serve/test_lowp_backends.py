"""Reduced-precision serving (bf16 NHWC, eager int8 on oneDNN): outputs close to fp32 on a tiny
model with the state carried, the CPU-unit probe and its refusal at validate (an AVX2-only CPU
simulated through ``ENERGYBENCH_CPU_FLAGS`` and the injectable probe), and the run's evaluate
record carrying the quality drop against fp32."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from typer.testing import CliRunner

from energybench.cli import app
from energybench.models import MODELS
from energybench.serve.backends import cpu_units
from energybench.serve.backends.core import PrepareContext, online_outputs, prepare_serving
from energybench.serve.backends.lowp import quality_vs_fp32
from energybench.suite.schema import BackendSpec

AMX = "fpu avx2 fma avx512f avx512_bf16 avx512_vnni amx_bf16 amx_int8 amx_tile"
AVX2 = "fpu sse4_2 avx avx2 fma"


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    teacher = MODELS.create("espcn", channels=4, layers=3, first_kernel=3).eval()
    grafted = MODELS.create("ckbg", channels=4, blocks=1, grafts=True, upstream={"t": teacher})
    return grafted.eval().reparameterize()


class _Clips:
    """A task stand-in for int8 calibration: random 4-frame LR clips."""

    def train_batches(self, model: Any, batch_size: int, seed: int) -> Iterator[Any]:
        g = torch.Generator().manual_seed(seed)
        while True:
            yield torch.rand(batch_size, 4, 3, 12, 16, generator=g), None


def _psnr_db(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(10 * torch.log10(1 / ((a.clamp(0, 1) - b.clamp(0, 1)) ** 2).mean()))


@pytest.mark.parametrize(
    ("spec", "dtype", "min_psnr_db"),
    [(BackendSpec(dtype="bf16"), "bf16", 40.0), (BackendSpec(quantize="int8"), "int8", 30.0)],
)
def test_reduced_precision_serves_online_close_to_fp32(
    spec: BackendSpec, dtype: str, min_psnr_db: float
) -> None:
    model = _model()
    frames = torch.rand(5, 3, 12, 16, generator=torch.Generator().manual_seed(1))
    ctx = PrepareContext(frames, torch.device("cpu"), _Clips(), batch_size=2)
    engine = torch.backends.quantized.engine
    served, rec = prepare_serving(spec.model_copy(update={"calibration_batches": 2}), model, ctx)
    parity = rec["export"]["parity"]
    assert parity["dtype"] == dtype and parity["tolerance"] is None
    assert 1e-6 < parity["max_abs_diff"] < 0.1  # really reduced, and close
    assert torch.backends.quantized.engine == engine  # the engine is restored after packing
    if dtype == "bf16":
        assert {p.dtype for p in served.parameters()} == {torch.bfloat16}
    else:
        packed = [m for m in served.modules() if type(m).__module__.startswith("torch.ao.nn.q")]
        assert packed, "no quantized modules in the served int8 model"
    got, ref = online_outputs(served, frames), online_outputs(model, frames)
    assert all(g.dtype == torch.float32 for g in got)
    assert min(_psnr_db(g, r) for g, r in zip(got, ref, strict=True)) > min_psnr_db
    with torch.inference_mode():  # the state is carried: fresh-state outputs differ
        fresh = [served(frames[t : t + 1]) for t in range(1, frames.shape[0])]
    assert any((f - g).abs().max() > 1e-3 for f, g in zip(fresh, got[1:], strict=True))


def test_cpu_flag_probe_is_injectable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(cpu_units.FLAGS_ENV, raising=False)
    monkeypatch.setattr(cpu_units, "probe", lambda: set(AVX2.split()))
    assert cpu_units.units("bf16") == [] and cpu_units.units("int8") == []
    assert "no bf16 matrix units" in (cpu_units.missing_units("bf16") or "")
    monkeypatch.setenv(cpu_units.FLAGS_ENV, "avx2,avx512_vnni")
    assert cpu_units.units("int8") == ["avx512_vnni"] and cpu_units.missing_units("int8") is None
    assert "ENERGYBENCH_CPU_FLAGS is set" in (cpu_units.missing_units("bf16") or "")
    assert cpu_units.missing_units("fp32") is None


SUITE = """\
name: lowp
defaults:
  dataset: {name: photos}
entries:
  - name: bf16
    model: {name: espcn}
    device: cpu
    backend: {dtype: bf16}
  - name: int8
    model: {name: espcn}
    backend: {quantize: int8}
  - name: bf16-compile
    model: {name: espcn}
    device: cpu
    backend: {name: compile, dtype: bf16}
"""


def test_validate_refuses_bf16_and_int8_without_the_units(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(SUITE)
    monkeypatch.setenv(cpu_units.FLAGS_ENV, AVX2)
    res = CliRunner().invoke(app, ["validate", str(path)])
    out = " ".join(res.output.split())
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output
    assert out.count("backend.dtype: bf16 refused: this CPU has no bf16 matrix units") == 2
    assert "backend.quantize: int8 refused: this CPU has no int8 matrix units" in out
    assert f"{path}:8:" in res.output and f"{path}:11:" in res.output  # located
    monkeypatch.setenv(cpu_units.FLAGS_ENV, AMX)
    res = CliRunner().invoke(app, ["validate", str(path)])
    assert res.exit_code == 0, res.output


def test_validate_rejects_misplaced_reduced_precision(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(
        textwrap.dedent(
            """\
            name: lowp
            defaults:
              dataset: {name: photos}
            entries:
              - name: a
                model: {name: espcn}
                backend: {name: onnxruntime, dtype: bf16}
              - name: b
                model: {name: espcn}
                backend: {dtype: bf16, autocast: bf16}
              - name: c
                model: {name: espcn}
                backend: {name: compile, quantize: int8}
            """
        )
    )
    res = CliRunner().invoke(app, ["validate", str(path)])
    out = " ".join(res.output.split())
    assert res.exit_code == 2, res.output
    assert "backend.dtype: bf16 applies to eager and compile" in out
    assert "backend.dtype: bf16 casts an fp32 model" in out
    assert "needs onnxruntime (QDQ) or eager" in out


def test_quality_vs_fp32_reports_the_drop_and_its_bound() -> None:
    fp32 = {"psnr_db": 30.0, "ssim": 0.9, "frames": 10, "convention": "Y"}
    rec = quality_vs_fp32("bf16", {"psnr_db": 29.97, "ssim": 0.899, "frames": 10}, fp32)
    assert rec["psnr_drop_db"] == pytest.approx(0.03) and rec["bound_db"] == 0.05
    assert rec["within_bound"] is True and rec["delta"]["ssim"] == pytest.approx(-0.001)
    assert rec["fp32"] == {"psnr_db": 30.0, "ssim": 0.9}
    rec = quality_vs_fp32("int8", {"psnr_db": 29.8}, fp32)
    assert rec["psnr_drop_db"] == pytest.approx(0.2) and rec["within_bound"] is False


RUN = """\
name: lowp-run
defaults:
  dataset:
    name: photos
    params: {patch_size: 16, test_crop: 32x32, serve_lr: 16x16, seq_size: 48x48, seq_frames: 4}
  train: {steps: 2, batch_size: 2}
  evaluate: {max_items: 2}
energy:
  meters: [estimate]
  idle_baseline_s: 0
  min_window_s: 0
  min_window_iters: 2
  trials: 2
  max_trials: 2
  allow_estimates_in_ranking: true
metric: {quality: psnr_db, iec_scenario: stream}
entries:
  - name: fp32
    model: {name: ckbg, params: {channels: 4, blocks: 1}}
    device: cpu
    serve: [{scenario: stream, fps: 200, frames: 3, warmup: 0}]
  - name: bf16
    model: {name: ckbg, params: {channels: 4, blocks: 1}}
    inherit: fp32
    device: cpu
    backend: {dtype: bf16}
    serve: [{scenario: stream, fps: 200, frames: 3, warmup: 0}]
  - name: int8
    model: {name: ckbg, params: {channels: 4, blocks: 1}}
    inherit: fp32
    backend: {quantize: int8, calibration_batches: 2}
    serve: [{scenario: stream, fps: 200, frames: 3, warmup: 0}]
"""


def test_run_records_the_quality_drop_against_fp32(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(cpu_units.FLAGS_ENV, AMX)  # the units, whatever CPU runs the test
    suite = tmp_path / "run.yaml"
    suite.write_text(RUN)
    res = CliRunner().invoke(app, ["run", str(suite), "--out", str(tmp_path), "--no-report"])
    assert res.exit_code == 0, res.output
    (run_dir,) = (tmp_path / "lowp-run").iterdir()
    base = json.loads((run_dir / "entries/fp32/evaluate.json").read_text())
    assert "precision" not in base
    for name, bound in (("bf16", 0.05), ("int8", 0.1)):
        ev = json.loads((run_dir / f"entries/{name}/evaluate.json").read_text())
        p = ev["precision"]
        assert p["dtype"] == name and p["bound_db"] == bound
        assert p["fp32"]["psnr_db"] == pytest.approx(base["quality"]["psnr_db"], abs=1e-6)
        assert p["psnr_drop_db"] == pytest.approx(
            base["quality"]["psnr_db"] - ev["quality"]["psnr_db"]
        )
        assert p["within_bound"] is True and p["psnr_drop_db"] <= bound
        serve = json.loads((run_dir / f"entries/{name}/serve.json").read_text())
        assert serve["backend"]["export"]["parity"]["dtype"] == name
    int8_export = json.loads((run_dir / "entries/int8/serve.json").read_text())["backend"]
    assert int8_export["export"]["measurement"]["energy_j"] > 0  # calibration is metered


@pytest.mark.slow
@pytest.mark.skipif(
    not __import__("os").environ.get("ENERGYBENCH_TEST_COMPILE"),
    reason="torch.compile takes ~1 min on a 2-core CPU; set ENERGYBENCH_TEST_COMPILE=1",
)
def test_compile_bf16_is_compiled_and_close_to_fp32() -> None:
    model = _model()
    frames = torch.rand(4, 3, 12, 16, generator=torch.Generator().manual_seed(1))
    served, rec = prepare_serving(
        BackendSpec(name="compile", dtype="bf16"),
        model,
        PrepareContext(frames, torch.device("cpu")),
    )
    assert rec["export"]["compile_s"] > 0 and rec["export"]["parity"]["dtype"] == "bf16"
    assert 1e-6 < rec["export"]["parity"]["max_abs_diff"] < 0.05
    assert hasattr(served.step, "_torchdynamo_orig_callable")


def test_leaderboard_names_the_bf16_backend() -> None:
    from types import SimpleNamespace

    from energybench.report.tables import backend_name

    serve = SimpleNamespace(backend=SimpleNamespace(name="compile", settings={"dtype": "bf16"}))
    run: Any = SimpleNamespace(
        entry=lambda name: SimpleNamespace(serve=serve), suite=SimpleNamespace(entries=[])
    )
    assert backend_name(run, "x") == "compile+bf16"
