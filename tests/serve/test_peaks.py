"""The serving device's GEMM peak (measured once per run) and the report's roofline point."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
import torch

from energybench.records.store import load_run
from energybench.records.types import ThroughputResult
from energybench.report.html import render_report, roofline_text
from energybench.report.tables import leaderboard
from energybench.serve import peaks
from energybench.serve.peaks import gemm_peak_flops, serving_dtype
from energybench.suite.schema import Suite
from tests.helpers.report import tiny_run


def test_gemm_peak_is_a_measured_rate_over_the_time_asked(monkeypatch) -> None:
    calls = {"n": 0}
    real_mm = torch.mm

    def counting_mm(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        calls["n"] += 1
        return real_mm(a, b)

    monkeypatch.setattr(peaks.torch, "mm", counting_mm)
    clock = iter([0.0, 0.1, 0.2, 0.5])  # three timed products, the last after 0.5 s
    monkeypatch.setattr(peaks.time, "perf_counter", lambda: next(clock))
    flops = gemm_peak_flops(torch.device("cpu"), "fp32", seconds=0.3)
    assert calls["n"] == 1 + 3  # one warm-up, then until 0.3 s had passed
    assert flops == pytest.approx(2 * 1024**3 * 3 / 0.5)


def test_gemm_peak_runs_here_in_each_dtype() -> None:
    for dtype in ("fp32", "bf16"):
        f = gemm_peak_flops(torch.device("cpu"), dtype, seconds=0.05)
        assert math.isfinite(f) and f > 1e8


def _entry(**fields: object):
    spec = {"name": "x", "model": {"name": "bicubic"}, **fields}
    return Suite.model_validate({"name": "s", "entries": [spec]}).entries[0]


def test_serving_dtype_follows_the_backend_and_refuses_int8() -> None:
    assert serving_dtype(_entry()) == "fp32"
    assert serving_dtype(_entry(backend={"name": "eager", "autocast": "bf16"})) == "bf16"
    assert serving_dtype(_entry(backend={"name": "eager", "autocast": "fp16"})) == "fp16"
    assert serving_dtype(_entry(backend={"name": "eager", "dtype": "bf16"})) == "bf16"
    assert serving_dtype(_entry(backend={"name": "onnxruntime", "quantize": "int8"})) is None
    quantized = _entry(compress=[{"method": "quantize", "dtype": "int8"}])
    assert serving_dtype(quantized) is None


@pytest.fixture(scope="module")
def run_dir() -> Path:
    return tiny_run()


def test_a_run_records_its_serving_devices_peak_and_the_report_puts_entries_against_it(
    run_dir: Path,
) -> None:
    run = load_run(run_dir)
    assert set(run.info.peaks) == {"cpu"} and run.info.peaks["cpu"]["fp32"] > 1e8
    board = leaderboard(run).set_index("entry", drop=False)
    shown = 0
    for name, row in board.iterrows():
        text = roofline_text(run, row.to_dict())
        tp = [r for r in run.results(str(name)).values() if isinstance(r, ThroughputResult)]
        if not tp:  # stream-only entries: a paced rate says nothing of the model's speed
            assert text == "", (name, text)
            continue
        shown += 1
        batch, group = next(iter(tp[0].by_batch.items()))
        achieved = float(row["flops_per_item"]) * group.items_per_s.mean
        frac = achieved / run.info.peaks["cpu"]["fp32"]
        assert text.startswith(f"b{batch} closed loop"), text
        assert text.endswith(f"= {frac:.0%} of the fp32 GEMM peak"), (name, text)
    assert shown >= 1
    assert "of the fp32 GEMM peak" in render_report([run])


def test_an_older_run_without_peaks_shows_no_fraction() -> None:
    run = load_run(Path(__file__).parents[1] / "fixtures" / "run-0.2.0")
    assert run.info.peaks == {}
    assert not re.search(r"GEMM peak", render_report([run]))


def test_on_cuda_products_are_queued_and_synchronised_before_each_reading(monkeypatch) -> None:
    events: list[str] = []
    monkeypatch.setattr(peaks.torch, "randn", lambda n, m, device=None: torch.zeros(2, 2))
    monkeypatch.setattr(peaks.torch, "mm", lambda a, b: events.append("mm"))
    monkeypatch.setattr(peaks.torch.cuda, "synchronize", lambda d=None: events.append(f"sync {d}"))
    clock = iter([0.0, 1.0])
    monkeypatch.setattr(peaks.time, "perf_counter", lambda: next(clock))
    dev = torch.device("cuda:1")
    flops = gemm_peak_flops(dev, "fp32", seconds=0.5)
    assert events == ["mm", "sync cuda:1"] + ["mm"] * 10 + ["sync cuda:1"]
    assert flops == pytest.approx(2 * 4096**3 * 10 / 1.0)
