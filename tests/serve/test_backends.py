"""Serving backends: ONNX export + parity for every registered SR model, the recurrent state
carried across frames on every backend, validate-time errors, and the run records (max |diff|,
the export's energy counted in TEC)."""

from __future__ import annotations

import importlib.util
import json
import os
import textwrap
import typing
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from energybench.cli import app
from energybench.models import MODELS
from energybench.serve.backends.core import (
    BACKENDS,
    Backend,
    BackendParityError,
    PrepareContext,
    online_outputs,
    prepare_serving,
    register,
)
from energybench.suite import SuiteError, load_suite
from energybench.suite.schema import BackendSpec

needs_ort = pytest.mark.skipif(
    importlib.util.find_spec("onnxruntime") is None, reason="onnxruntime not installed"
)
RUNTIMES = [b for b in ("onnxruntime", "openvino") if importlib.util.find_spec(b)]


def _models() -> dict[str, torch.nn.Module]:
    """Every registered SR model, tiny (ckbg also grafted from a teacher, and merged)."""
    torch.manual_seed(0)
    teacher = MODELS.create("espcn", channels=4, layers=3, first_kernel=3).eval()
    grafted = MODELS.create("ckbg", channels=4, blocks=1, grafts=True, upstream={"t": teacher})
    return {
        "bicubic": MODELS.create("bicubic").eval(),
        "espcn": teacher,
        "ckbg": MODELS.create("ckbg", channels=4, blocks=1).eval(),
        "ckbg-grafted": grafted.eval(),
        "ckbg-merged": grafted.reparameterize(),
    }


MODELS_TINY = _models()


def _frames(n: int = 5, h: int = 12, w: int = 16) -> torch.Tensor:
    return torch.rand(n, 3, h, w, generator=torch.Generator().manual_seed(1))


def _ctx(frames: torch.Tensor) -> PrepareContext:
    return PrepareContext(frames, torch.device("cpu"))


def test_sr_registry_is_covered() -> None:
    """Every registered SR model (factories annotated to return an SRModel) is tested below."""
    from energybench.models.sr.base import SRModel

    def is_sr(name: str) -> bool:
        ret = typing.get_type_hints(MODELS.get(name)).get("return")
        return isinstance(ret, type) and issubclass(ret, SRModel)

    sr = {n for n in MODELS.names() if is_sr(n)}
    assert sr == {m.split("-")[0] for m in MODELS_TINY}


@pytest.mark.parametrize("runtime", RUNTIMES)
@pytest.mark.parametrize("name", list(MODELS_TINY))
def test_export_parity_dynamic_batch_and_size(runtime: str, name: str) -> None:
    model, frames = MODELS_TINY[name], _frames()
    served, rec = prepare_serving(BackendSpec(name=runtime), model, _ctx(frames))
    parity = rec["export"]["parity"]
    assert parity["max_abs_diff"] <= 1e-4 and parity["frames"] == 4
    assert rec["export"]["export"]["recurrent"] == bool(getattr(model, "temporal", False))
    with torch.inference_mode():  # a batch of 3 and another frame size through the same graph
        for x in (_frames(3), _frames(2, 8, 20)):
            assert torch.allclose(served(x), model(x), atol=1e-4)
    if runtime == "openvino":  # one static compiled model per input shape
        assert {k[0] for k in served.requests} == {(1, 3, 12, 16), (3, 3, 12, 16), (2, 3, 8, 20)}


def _on(spec: BackendSpec) -> str:
    return spec.name + ("+channels_last" if spec.channels_last else "")


SPECS = [BackendSpec(), BackendSpec(channels_last=True)] + [BackendSpec(name=r) for r in RUNTIMES]


def _stateful() -> torch.nn.Module:
    """A tiny CKBG whose output depends clearly on its hidden state (a larger tail)."""
    torch.manual_seed(3)
    model = MODELS.create("ckbg", channels=4, blocks=1).eval()
    with torch.no_grad():
        model.tail.branches["main"].conv.weight.normal_(0, 0.05)
    return model


@pytest.mark.parametrize("spec", SPECS, ids=_on)
def test_recurrent_state_is_carried_across_frames(spec: BackendSpec) -> None:
    model, frames = _stateful(), _frames(6)
    served, _ = prepare_serving(spec, model, _ctx(frames))
    ref, got = online_outputs(model, frames), online_outputs(served, frames)
    for a, b in zip(ref, got, strict=True):
        assert (a - b).abs().max() <= 1e-4
    with torch.inference_mode():  # the state matters: a fresh state per frame differs
        fresh = [served(frames[t : t + 1]).float() for t in range(frames.shape[0])]
    assert all((f - g).abs().max() > 1e-2 for f, g in zip(fresh[1:], got[1:], strict=True))


@needs_ort
def test_int8_qdq_runs_online_and_records_its_difference() -> None:
    model, frames = MODELS_TINY["ckbg-merged"], _frames(4, 16, 16)

    class Calib:  # what quantize_static is calibrated on: the task's training batches
        def train_batches(self, m, batch_size, seed):  # noqa: ANN001, ANN202
            g = torch.Generator().manual_seed(seed)
            while True:
                yield torch.rand(batch_size, 3, 3, 16, 16, generator=g), None

    ctx = PrepareContext(frames, torch.device("cpu"), Calib(), batch_size=2)
    spec = BackendSpec(name="onnxruntime", quantize="int8", calibration_batches=2)
    served, rec = prepare_serving(spec, model, ctx)
    info = rec["export"]
    assert info["int8"]["format"].startswith("QDQ") and info["int8"]["calibration_batches"] == 2
    assert info["parity"]["tolerance"] is None  # int8: recorded, not enforced
    assert 0 < info["parity"]["max_abs_diff"] < 0.2
    assert len(online_outputs(served, frames)) == 4


def test_parity_failure_is_a_clear_error() -> None:
    class Off(torch.nn.Module):
        def __init__(self, m: torch.nn.Module) -> None:
            super().__init__()
            self.m = m

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.m(x) + 1e-3

    register(Backend("test-off", lambda m, s, c: (Off(m), {}), "adds 1e-3"))
    try:
        with pytest.raises(BackendParityError, match="differs from eager PyTorch by up to 0.001"):
            prepare_serving(BackendSpec(name="test-off"), MODELS_TINY["espcn"], _ctx(_frames()))
    finally:
        BACKENDS.unregister("test-off")


# ----------------------------------------------------------------------------- validate
SUITE = """\
name: backends
defaults:
  dataset: {name: photos, params: {patch_size: 16, test_crop: 32x32, serve_lr: 16x16}}
  train: {steps: 2, batch_size: 2}
energy: {idle_baseline_s: 0}
entries:
  - name: ckbg
    model: {name: ckbg, params: {channels: 4, blocks: 1}}
    compress: []
    BACKEND
    serve:
      - {scenario: stream, fps: 10, frames: 4}
"""


def _suite(tmp_path: Path, backend: str, compress: str = "[]", scenario: str = "") -> Path:
    text = SUITE.replace("BACKEND", backend).replace("compress: []", f"compress: {compress}")
    if scenario:
        text = text.replace("frames: 4}", f"frames: 4, {scenario}}}")
    p = tmp_path / "suite.yaml"
    p.write_text(textwrap.dedent(text))
    return p


@pytest.mark.parametrize(
    ("backend", "compress", "scenario", "expected"),
    [
        ("backend: onnxrt", "[]", "", "unknown backend 'onnxrt'; did you mean 'onnxruntime'?"),
        (
            "backend: onnxruntime",
            "[{method: quantize, dtype: int8}]",
            "",
            "cannot run PyTorch's FX int8 graph",
        ),
        ("backend: onnxruntime", "[{method: quantize, dtype: bf16}]", "", "fp16/bf16 cast"),
        ("backend: onnxruntime", "[]", "compile: default", "only applies to the eager backend"),
        (
            "backend: {name: compile, quantize: int8}",
            "[]",
            "",
            "backend.quantize: int8 needs onnxruntime (QDQ) or eager",
        ),
        ("backend: {name: eager, threads: 2}", "[]", "", "unknown field 'threads'"),
        (
            "backend: {name: onnxruntime, providers: [CPUExecutionProvder]}",
            "[]",
            "",
            "did you mean 'CPUExecutionProvider'?",
        ),
    ],
)
def test_validate_rejects_what_a_backend_cannot_serve(
    tmp_path: Path, backend: str, compress: str, scenario: str, expected: str
) -> None:
    path = _suite(tmp_path, backend, compress, scenario)
    res = CliRunner().invoke(app, ["validate", str(path)])
    assert res.exit_code == 2, res.output
    assert expected in res.output.replace("\n", " ") or expected in " ".join(res.output.split())
    assert f"{path}:10:" in res.output or f"{path}:12:" in res.output  # located
    assert "Traceback" not in res.output


def test_validate_rejects_batches_on_a_fixed_batch_export(tmp_path: Path) -> None:
    path = _suite(tmp_path, "backend: {name: onnxruntime, dynamic_batch: false}")
    text = path.read_text().replace(
        "- {scenario: stream, fps: 10, frames: 4}",
        "- {scenario: throughput, batch_sizes: [1, 4]}",
    )
    path.write_text(text)
    with pytest.raises(SuiteError, match="fixed batch of 1") as info:
        load_suite(path)
    assert "entries.0.backend.dynamic_batch" in str(info.value)


def test_validate_unavailable_and_stateless_backends(tmp_path: Path) -> None:
    register(Backend("test-missing", lambda m, s, c: (m, {}), "x", unavailable=lambda: "not here"))
    register(Backend("test-stateless", lambda m, s, c: (m, {}), "x", recurrent=False))
    try:
        for name, msg in (
            ("test-missing", "is unavailable here: not here"),
            ("test-stateless", "cannot carry the recurrent state of model 'ckbg'"),
        ):
            with pytest.raises(SuiteError) as info:
                load_suite(_suite(tmp_path, f"backend: {name}"))
            assert msg in str(info.value) and "entries.0.backend.name" in str(info.value)
        # a per-frame model is fine on the stateless backend
        text = _suite(tmp_path, "backend: test-stateless").read_text()
        text = text.replace("name: ckbg, params: {channels: 4, blocks: 1}", "name: espcn")
        (tmp_path / "suite.yaml").write_text(text)
        assert load_suite(tmp_path / "suite.yaml").suite.entries[0].backend.name == "test-stateless"
    finally:
        BACKENDS.unregister("test-missing")
        BACKENDS.unregister("test-stateless")


# ----------------------------------------------------------------------------- run records
RUN = """\
name: backends-run
defaults:
  dataset:
    name: photos
    params: {patch_size: 16, test_crop: 32x32, serve_lr: 16x16, seq_size: 48x48, seq_frames: 4}
  train: {steps: 2, batch_size: 2}
  evaluate: {max_items: 1}
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
  - name: ckbg
    model: {name: ckbg, params: {channels: 4, blocks: 1}}
    serve: [{scenario: stream, fps: 200, frames: 3, warmup: 0}]
  - name: ckbg-ort
    model: {name: ckbg, params: {channels: 4, blocks: 1}}
    inherit: ckbg
    backend: {name: onnxruntime, intra_op_threads: 1}
    serve: [{scenario: stream, fps: 200, frames: 3, warmup: 0}]
"""


@needs_ort
def test_run_records_parity_and_counts_the_export_in_tec(tmp_path: Path) -> None:
    from energybench.records.store import load_run
    from energybench.report.tables import entry_costs, leaderboard

    suite = tmp_path / "run.yaml"
    suite.write_text(RUN)
    res = CliRunner().invoke(app, ["run", str(suite), "--out", str(tmp_path), "--no-report"])
    assert res.exit_code == 0, res.output
    (run_dir,) = (tmp_path / "backends-run").iterdir()
    serve = json.loads((run_dir / "entries/ckbg-ort/serve.json").read_text())
    export = serve["backend"]["export"]
    assert serve["backend"]["name"] == "onnxruntime"
    assert export["parity"]["max_abs_diff"] <= 1e-4
    assert export["measurement"]["energy_j"] > 0 and export["export"]["recurrent"]
    run = load_run(run_dir)
    costs = {c.name: c for c in entry_costs(run)}
    items = {i.phase: i for i in costs["ckbg-ort"].items}
    assert items["export"].energy_j == pytest.approx(export["measurement"]["energy_j"])
    assert costs["ckbg-ort"].tec_j == pytest.approx(costs["ckbg"].tec_j + items["export"].energy_j)
    assert "export" not in {i.phase for i in costs["ckbg"].items}
    board = leaderboard(run).set_index("entry")
    assert board.loc["ckbg-ort", "backend"] == "onnxruntime"
    assert board.loc["ckbg", "backend"] == "eager"
    assert board.loc["ckbg-ort", "backend_max_abs_diff"] <= 1e-4
    ev = json.loads((run_dir / "entries/ckbg-ort/evaluate.json").read_text())
    ev0 = json.loads((run_dir / "entries/ckbg/evaluate.json").read_text())
    assert ev["quality"]["psnr_db"] == pytest.approx(ev0["quality"]["psnr_db"], abs=1e-3)


@pytest.mark.slow
@pytest.mark.skipif(
    not os.environ.get("ENERGYBENCH_TEST_COMPILE"),
    reason="torch.compile takes ~1 min on a 2-core CPU; set ENERGYBENCH_TEST_COMPILE=1",
)
def test_compile_backend_carries_the_state() -> None:
    model, frames = _stateful(), _frames(6)
    served, rec = prepare_serving(BackendSpec(name="compile"), model, _ctx(frames))
    assert rec["export"]["compile_s"] > 0 and rec["export"]["parity"]["max_abs_diff"] <= 1e-4
    ref, got = online_outputs(model, frames), online_outputs(served, frames)
    assert max(float((a - b).abs().max()) for a, b in zip(ref, got, strict=True)) <= 1e-4


def test_autocast_runs_online_in_lower_precision_and_records_its_difference() -> None:
    """bf16 autocast (CPU here; fp16 on GPUs): the state is carried, outputs stay fp32 tensors,
    the difference from fp32 eager is recorded and not held to the fp32 tolerance."""
    model, frames = _stateful(), _frames(4)
    spec = BackendSpec(autocast="bf16", parity_tolerance=1e-9)
    served, rec = prepare_serving(spec, model, _ctx(frames))
    parity = rec["export"]["parity"]
    assert parity["tolerance"] is None and 1e-9 < parity["max_abs_diff"] < 0.05
    got, ref = online_outputs(served, frames), online_outputs(model, frames)
    assert all(g.dtype == torch.float32 for g in got)
    with torch.inference_mode():  # the bf16 state matters as the fp32 one does
        fresh = [served(frames[t : t + 1]) for t in range(frames.shape[0])]
    assert all((f - g).abs().max() > 1e-2 for f, g in zip(fresh[1:], got[1:], strict=True))
    assert max(float((a - b).abs().max()) for a, b in zip(ref, got, strict=True)) < 0.05


def test_autocast_needs_a_pytorch_backend_and_an_fp32_model(tmp_path: Path) -> None:
    suite = tmp_path / "s.yaml"
    suite.write_text(
        textwrap.dedent(
            """
            name: s
            entries:
              - name: a
                model: {name: espcn}
                backend: {name: onnxruntime, autocast: fp16}
              - name: b
                model: {name: espcn}
                compress: [{method: quantize, dtype: fp16}]
                backend: {autocast: bf16}
            """
        )
    )
    res = CliRunner().invoke(app, ["validate", str(suite)])
    assert res.exit_code == 2, res.output
    assert "autocast applies to eager and compile" in res.output
    assert "already cast or quantised" in res.output
