"""ONNX Runtime on GPUs, through a fake ``onnxruntime`` with the real API (tests/helpers/fakeort):
explicit providers with the entry's device_id, no silent CPU run (validate exits 2 naming the
GPU package), I/O binding with the recurrent state kept on the device, TensorRT engines built
inside the export window into the run folder's cache; parity tolerances per backend; CUDA
graphs with the recurrent state."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from typer.testing import CliRunner

from energybench.cli import app
from energybench.models import MODELS
from energybench.serve.backends import ort as ort_backend
from energybench.serve.backends.core import (
    PARITY_TOLERANCE,
    PrepareContext,
    max_abs_diff,
    online_outputs,
    parity_tolerance,
    prepare_serving,
    serving_batches,
)
from energybench.serve.backends.onnx_export import export_step
from energybench.suite import load_suite
from energybench.suite.schema import BackendSpec, NumericsSettings
from tests.helpers.fakeort import CPU, CUDA, TRT, FakeOnnxRuntime
from tests.serve.test_backends import _suite

pytest.importorskip("onnxruntime")


def _fake(monkeypatch: pytest.MonkeyPatch, available: list[str], loads: Any = None) -> Any:
    fake = FakeOnnxRuntime(available, loads)
    monkeypatch.setitem(sys.modules, "onnxruntime", fake)
    return fake


def _ckbg() -> torch.nn.Module:
    torch.manual_seed(0)
    return MODELS.create("ckbg", channels=4, blocks=1).eval()


def _frames(n: int = 4) -> torch.Tensor:
    return torch.rand(n, 3, 12, 16, generator=torch.Generator().manual_seed(1))


# ----------------------------------------------------------------------------- providers
def test_a_gpu_entry_asks_for_its_own_gpu_with_declared_numerics(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _fake(monkeypatch, [TRT, CUDA, CPU])
    got = ort_backend.providers_for(
        BackendSpec(name="onnxruntime"), torch.device("cuda:1"), NumericsSettings(tf32=True)
    )
    assert got == [
        (CUDA, {"device_id": "1", "use_tf32": "1", "cudnn_conv_algo_search": "HEURISTIC"}),
        (CPU, {}),
    ]  # TensorRT only when listed; never silently chosen
    spec = BackendSpec(name="onnxruntime", providers=[TRT, CUDA])
    trt = ort_backend.providers_for(spec, torch.device("cuda:2"), None, Path("/run/engines/e"))
    assert trt[0][0] == TRT and trt[0][1]["device_id"] == "2"
    assert trt[0][1]["trt_engine_cache_path"] == "/run/engines/e"
    assert trt[1] == (CUDA, {"device_id": "2", "use_tf32": "0", "cudnn_conv_algo_search":
                             "HEURISTIC"})  # fmt: skip
    # on the CPU (and under --simulate) GPU providers are dropped, never used uncharged
    cpu = ort_backend.providers_for(spec, torch.device("cpu"))
    assert cpu == [(CPU, {})]


def test_cpu_only_onnxruntime_fails_a_gpu_session_naming_the_package(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _fake(monkeypatch, [CPU])
    spec = BackendSpec(name="onnxruntime")
    with pytest.raises(ort_backend.OrtDeviceError, match="onnxruntime-gpu") as info:
        ort_backend.make_session(b"", spec, torch.device("cuda:0"))
    assert "energybench[gpu]" in str(info.value)


def test_a_cuda_provider_that_falls_back_to_the_cpu_is_an_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = _fake(monkeypatch, [CUDA, CPU], loads=[CPU])  # libcudnn missing: ORT falls back
    problem = ort_backend.gpu_session_problem(
        BackendSpec(name="onnxruntime"), torch.device("cuda:0")
    )
    assert problem is not None and "would run on the CPU" in problem
    assert "session providers: CPUExecutionProvider" in problem
    assert fake.sessions[0].requested[0] == (
        CUDA,
        {"device_id": "0", "use_tf32": "0", "cudnn_conv_algo_search": "HEURISTIC"},
    )


def _gpu_host(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)


def test_validate_on_a_gpu_host_with_cpu_onnxruntime_exits_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _suite(tmp_path, "backend: onnxruntime")
    _gpu_host(monkeypatch)
    _fake(monkeypatch, [CPU])
    res = CliRunner().invoke(app, ["validate", str(path)])
    assert res.exit_code == 2, res.output
    text = " ".join(res.output.split())
    assert "entry 'ckbg'" in text and "onnxruntime-gpu" in text and "Traceback" not in text
    # the GPU build present: the same suite validates
    _fake(monkeypatch, [CUDA, CPU])
    res = CliRunner().invoke(app, ["validate", str(path)])
    assert res.exit_code == 0, res.output


def test_validate_simulated_gpu_with_cpu_onnxruntime_notes_the_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _suite(tmp_path, "backend: {name: onnxruntime, providers: [CUDAExecutionProvider]}")
    _fake(monkeypatch, [CPU])
    res = CliRunner().invoke(app, ["validate", str(path), "--simulate", "h100"])
    assert res.exit_code == 0, res.output
    text = " ".join(res.output.split())
    assert "CPU provider" in text and "energybench[gpu]" in text


# ----------------------------------------------------------------------------- I/O binding
def test_io_binding_keeps_the_recurrent_state_in_device_memory(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """On a GPU provider every step binds torch tensors by address (CPU tensors stand in for
    device memory here): no host round trip, each step's state outputs are the next step's
    inputs, by pointer; outputs equal eager's."""
    fake = _fake(monkeypatch, [CUDA, CPU])
    model, frames = _ckbg(), _frames()
    exported = export_step(model, frames[:1])
    session = fake.InferenceSession(exported.onnx, None, providers=[(CUDA, {"device_id": "0"})])
    served = ort_backend.OrtServed(model, exported, session)
    assert served.bound
    ref, got = online_outputs(model, frames), online_outputs(served, frames)
    assert max(float((a - b).abs().max()) for a, b in zip(ref, got, strict=True)) < 1e-4
    assert session.run_calls == 0  # never session.run (host NumPy feeds)
    binds = [x for x in session.log if x[0] in ("bind_input", "bind_output")]
    outs = [(x[1], x[4]) for x in binds if x[0] == "bind_output" and x[4] is not None]
    ins = [(x[1], x[4]) for x in binds if x[0] == "bind_input"]
    state_out = [p for n, p in outs if n.startswith("state_out")]
    state_in = [p for n, p in ins if n.startswith("state_in")]
    n_state = exported.n_state
    assert n_state >= 1
    # frame t's state inputs are frame t-1's state outputs (skip the shape probe's binds)
    assert state_in[-n_state:] == state_out[-2 * n_state : -n_state]


# ----------------------------------------------------------------------------- TensorRT
class _Monitor:
    """Records which windows were open while engines appeared in the cache."""

    def __init__(self, cache: Path) -> None:
        self.cache = cache
        self.engines_at_close: dict[str, int] = {}

    @contextlib.contextmanager
    def window(self, name: str) -> Iterator[Any]:
        w = type("W", (), {"measurement": None})()
        yield w
        self.engines_at_close[name] = len(list(self.cache.glob("*.engine")))


def test_tensorrt_builds_every_serving_shape_inside_the_export_window(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = _fake(monkeypatch, [TRT, CUDA, CPU])
    # the test runs on the CPU: serve TensorRT there as on a GPU (provider order as on cuda)
    monkeypatch.setattr(ort_backend, "provider_names", lambda spec, dev: [TRT, CUDA, CPU])
    spec = BackendSpec(name="onnxruntime", providers=[TRT, CUDA, CPU])
    cache = tmp_path / "run" / "engines" / "ckbg"
    ctx = PrepareContext(_frames(), torch.device("cpu"), serve_batches=(1, 4), cache_dir=cache)
    monitor = _Monitor(cache)
    served, rec = prepare_serving(spec, _ckbg(), ctx, monitor, "ckbg/serve/export")
    trt = rec["export"]["tensorrt"]
    assert trt["engine_cache"] == str(cache) and trt["engines_built"] >= 1
    assert trt["engine_build_s"] > 0
    assert rec["export"]["warm_shapes"] == [[1, 3, 12, 16], [4, 3, 12, 16]]
    built = len(list(cache.glob("*.engine")))
    assert monitor.engines_at_close["ckbg/serve/export"] == built  # all inside the window
    # serving at batch 1 and 4 afterwards builds nothing new (no build in a measured window)
    session = fake.sessions[-1]
    n = len(session.engines_built)
    with torch.inference_mode():
        for b in (4, 1, 4):
            x = _frames()[:1].expand(b, 3, 12, 16).contiguous()
            served.step(x, served.init_state(x))
    assert len(session.engines_built) == n
    assert rec["export"]["providers"][0] == TRT
    assert rec["export"]["provider_options"][TRT]["trt_engine_cache_enable"] == "True"


def test_serving_batches_cover_every_scenario(tmp_path: Path) -> None:
    path = _suite(tmp_path, "backend: onnxruntime")
    text = path.read_text().replace(
        "- {scenario: stream, fps: 10, frames: 4}",
        "- {scenario: throughput, batch_sizes: [2, 8]}\n"
        "      - {scenario: load, rate_per_s: 5, requests: 4, max_batch: 3}",
    )
    path.write_text(text)
    assert serving_batches(load_suite(path).suite.entries[0]) == (1, 2, 3, 8)


# ----------------------------------------------------------------------------- parity
def test_parity_tolerance_is_per_backend_and_device() -> None:
    gpu, cpu = torch.device("cuda:0"), torch.device("cpu")
    exact, tf32 = PARITY_TOLERANCE["exact"], PARITY_TOLERANCE["tf32"]
    frames = _frames()

    def tol(spec: BackendSpec, dev: torch.device, n: NumericsSettings | None = None) -> float:
        return parity_tolerance(spec, PrepareContext(frames, dev, numerics=n))[0]

    ort = BackendSpec(name="onnxruntime")
    trt = BackendSpec(name="onnxruntime", providers=[TRT, CUDA])
    assert tol(ort, cpu) == exact and tol(ort, gpu) == exact
    assert tol(trt, gpu) == tf32 and tol(trt, cpu) == exact
    assert tol(BackendSpec(name="eager"), gpu, NumericsSettings(tf32=True)) == tf32
    assert tol(BackendSpec(name="eager"), gpu, NumericsSettings(matmul_precision="high")) == tf32
    assert tol(BackendSpec(name="compile", parity_tolerance=1e-6), gpu) == 1e-6
    assert exact == 1e-4 and tf32 > exact


def test_the_parity_reference_runs_with_tf32_off(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[bool] = []

    class Probe(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            seen.append(torch.backends.cudnn.allow_tf32)
            return x

    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", True)
    max_abs_diff(Probe(), torch.nn.Identity(), _frames(2))
    assert seen == [False, False]  # reference: exact fp32
    assert torch.backends.cudnn.allow_tf32 is True  # restored for the served model


# ----------------------------------------------------------------------------- CUDA graphs
def test_reduce_overhead_copies_the_state_out_of_the_graph_buffers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """CUDA graphs overwrite their outputs on the next replay: each step begins a graph step
    and returns copies, so the fed-back state is never a buffer the next replay overwrites."""
    from energybench.serve.scenarios import compiled_for_serving

    returned: list[torch.Tensor] = []
    marks: list[int] = []

    def fake_compile(fn: Any, mode: str = "default") -> Any:
        def graph(*args: Any) -> Any:
            out = fn(*args)
            returned.extend(t for t in torch.utils._pytree.tree_flatten(out)[0])
            return out

        return graph

    monkeypatch.setattr(torch, "compile", fake_compile)
    monkeypatch.setattr(torch.compiler, "cudagraph_mark_step_begin", lambda: marks.append(1))
    model, frames = _ckbg(), _frames(3)
    served = compiled_for_serving(model, "reduce-overhead")
    state = served.init_state(frames[:1])
    with torch.inference_mode():
        for t in range(3):
            out, state = served.step(frames[t : t + 1], state)
            mine = {x.data_ptr() for x in torch.utils._pytree.tree_flatten((out, state))[0]}
            assert not mine & {x.data_ptr() for x in returned}  # copies, not graph buffers
    assert len(marks) == 3
    ref = online_outputs(model, frames)
    assert torch.allclose(online_outputs(served, frames)[-1], ref[-1])
