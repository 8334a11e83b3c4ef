"""suites/vsr-gpu.yaml: a suite that keeps a GPU busy validates (also under ``--simulate h100``)
and covers what it claims: real-time 720p -> 2880p, large batches, every backend and autocast."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from energybench.cli import app
from energybench.run.preflight import check_devices
from energybench.suite import load_suite
from energybench.suite.schema import Stream

GPU_SUITE = Path(__file__).resolve().parents[2] / "suites" / "vsr-gpu.yaml"


@pytest.fixture(scope="module")
def suite():
    return load_suite(GPU_SUITE).suite


def test_it_validates_and_places_every_entry_on_the_simulated_h100(suite) -> None:
    placed = check_devices(suite, None, "h100")
    assert {p.label for p in placed.values()} == {"simulated-h100:0"}
    res = CliRunner().invoke(app, ["validate", str(GPU_SUITE)])
    assert res.exit_code == 0, res.output


def test_it_streams_720p_to_2880p_in_real_time_with_large_batches(suite) -> None:
    e = suite.entry("ckbg-merged")
    params = e.dataset.params
    assert params["serve_lr"] == "1280x720" and e.dataset.name == "video"  # x4: 5120x2880
    streams = [sc for sc in e.serve if isinstance(sc, Stream)]
    assert streams and min(sc.fps for sc in streams) >= 30
    trained = suite.entry("ckbg-grafted").train  # ckbg-merged inherits its training
    assert trained is not None and trained.batch_size == "auto"  # sized from the device
    assert trained.max_batch_size is not None and trained.max_batch_size >= 64
    assert suite.metric.iec_scenario == "stream"


def test_every_backend_and_autocast_dtype_is_served(suite) -> None:
    backends = {(e.backend.name, e.backend.autocast) for e in suite.entries}
    assert {("eager", "none"), ("eager", "fp16"), ("eager", "bf16"), ("compile", "none"),
            ("onnxruntime", "none")} <= backends  # fmt: skip
    ort = suite.entry("ckbg-merged-ort").backend
    assert ort.providers is None  # TensorRT, then CUDA, among those installed
    models = {e.model.name for e in suite.entries}
    assert {"bicubic", "espcn", "ckbg"} <= models


def test_its_expected_h100_time_is_stated_as_an_estimate_within_20_minutes() -> None:
    text = GPU_SUITE.read_text()
    m = re.search(r"Expected time on one H100.*?<= (\d+) min, about (\d+) min", text, re.S)
    assert m and int(m.group(2)) <= int(m.group(1)) <= 20
    assert "ESTIMATE from FLOPs" in text
