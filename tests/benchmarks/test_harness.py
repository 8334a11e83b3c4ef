"""The benchmark harness measures what it claims: compiled steps, CUDA timing, dtypes, peaks."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import harness  # noqa: E402

from energybench.models.sr.ckbg import CKBG  # noqa: E402
from energybench.serve.scenarios import compiled_for_serving  # noqa: E402
from energybench.suite.schema import BackendSpec  # noqa: E402


def test_compiling_the_module_is_not_compiling_the_step() -> None:
    ckbg = CKBG(8, 1).eval()
    assert not harness.is_compiled(ckbg)
    # the old bench_ckbg bug: torch.compile(module).step is the original module's method
    wrapped = torch.compile(ckbg)
    assert wrapped.step.__self__ is ckbg
    assert not harness.is_compiled(wrapped)
    assert harness.is_compiled(compiled_for_serving(ckbg, "default"))


def test_a_compile_row_whose_step_is_eager_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    import energybench.serve.scenarios as scenarios

    monkeypatch.setattr(scenarios, "compiled_for_serving", lambda m, mode: torch.compile(m))
    frames = torch.rand(2, 3, 8, 8)
    fns, out = harness.prepare_all(
        CKBG(8, 1).eval(), {"compile": BackendSpec(name="compile")}, frames, torch.device("cpu")
    )
    assert not fns
    assert "not compiled" in out["compile"]["error"]


class _Event:
    log: list[str]

    def __init__(self, enable_timing: bool = False) -> None:
        assert enable_timing
        self.t = 0.0

    def record(self) -> None:
        self.log.append("record")
        self.t = len(self.log) * 1e-3  # 1 ms per logged call

    def synchronize(self) -> None:
        self.log.append("event-sync")

    def elapsed_time(self, other: _Event) -> float:
        return (other.t - self.t) * 1e3  # ms


def test_cuda_timing_uses_events_and_one_sync_per_block(monkeypatch: pytest.MonkeyPatch) -> None:
    log: list[str] = []
    _Event.log = log
    monkeypatch.setattr(torch.cuda, "Event", _Event)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: log.append("sync"))
    monkeypatch.setattr(torch.cuda, "device", lambda d: __import__("contextlib").nullcontext())
    rate = harness.frame_rate(lambda: log.append("call"), 0.0, torch.device("cuda:1"))
    assert log == ["sync", "record", "call", "call", "call", "record", "event-sync"]
    # 3 calls between the events, which are 4 logged calls (4 ms) apart
    assert rate == pytest.approx(3 / 4e-3)


def test_cpu_without_bf16_units_reports_fp32_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(harness, "cpu_flags", lambda: {"avx2", "fma"})
    cap = harness.cpu_capability()
    assert not cap["bf16"] and "fp32 only" in cap["note"]
    assert harness.dtypes_for(torch.device("cpu")) == ["fp32"]
    monkeypatch.setattr(harness, "cpu_flags", lambda: {"avx512f", "amx_bf16", "amx_int8"})
    assert harness.dtypes_for(torch.device("cpu")) == ["fp32", "bf16", "int8"]
    assert harness.cpu_capability()["int8_units"] == ["amx_int8"]
    monkeypatch.setattr(harness, "cpu_flags", lambda: {"avx2", "avx512_vnni"})
    assert harness.dtypes_for(torch.device("cpu")) == ["fp32", "int8"]
    assert "no bf16 rows" in harness.cpu_capability()["note"]


def test_peaks_are_per_dtype_and_fractions_use_the_backends_dtype(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    peaks = harness.attainable_peaks(torch.device("cpu"), ["fp32"], (8, 8), 4, smoke=True)
    assert peaks["fp32"]["gemm_flops"] > 0 and peaks["fp32"]["conv3x3_flops"] > 0
    assert peaks["copy_bytes_per_s"] > 0 and "bf16" not in peaks
    fake: dict[str, Any] = {
        "fp32": {"gemm_flops": 1e9, "conv3x3_flops": 5e8},
        "bf16": {"gemm_flops": 4e9, "conv3x3_flops": 2e9},
    }
    monkeypatch.setattr(harness, "frame_rate", lambda fn, s, d: fn() or 10.0)
    args = argparse.Namespace(lr="8x8", rounds=2, seconds=0.0)
    configs = {"eager": BackendSpec(), "eager+bf16": BackendSpec(autocast="bf16")}
    out = harness.bench_model(CKBG(8, 1).eval(), configs, args, torch.device("cpu"), fake)
    e, b = out["eager"], out["eager+bf16"]
    assert e["median_fps"] == 10.0 and e["vs_eager"] == 1.0 and b["dtype"] == "bf16"
    assert e["achieved_flops"] == 10.0 * e["flops_per_frame"] > 0
    assert e["frac_gemm_peak"] == pytest.approx(e["achieved_flops"] / 1e9)
    assert b["frac_gemm_peak"] == pytest.approx(b["achieved_flops"] / 4e9)
    assert b["frac_conv_peak"] == pytest.approx(b["achieved_flops"] / 2e9)
    assert harness.backend_dtype(BackendSpec(name="onnxruntime", quantize="int8")) == "int8"
    assert harness.backend_dtype(BackendSpec(dtype="bf16")) == "bf16"
    # the reduced-precision row is scored against fp32 on held-out photos
    q = b["quality"]
    assert q["bound_db"] == 0.05 and q["clips"] > 0
    assert q["psnr_drop_db"] == pytest.approx(q["fp32_psnr_y_db"] - q["psnr_y_db"])
    assert "quality" not in e


def test_preparation_tunes_the_allocator_as_a_run_does_and_says_so() -> None:
    args = argparse.Namespace(default_allocator=False, threads=torch.get_num_threads())
    env = harness.prepare_process(args, torch.device("cpu"))
    from energybench.run.allocator import allocator_settings

    assert env["allocator"] == allocator_settings()
    assert "cpu_capability" in env and env["threads"] == torch.get_num_threads()
