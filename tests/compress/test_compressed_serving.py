"""Pruned and int8 models go through every serving scenario unchanged."""

from __future__ import annotations

import pytest

from energybench.compress.methods import apply_method
from energybench.models import MODELS
from energybench.serve.scenarios import ScenarioContext, run_scenario
from energybench.suite.schema import EnergySettings, Load, Prune, Quantize, Stream, Throughput

FAST = EnergySettings(min_window_s=0.0, min_window_iters=2, trials=1, max_trials=1)
SCENARIOS = [
    Throughput(scenario="throughput", batch_sizes=[1, 2], warmup=1, iterations=2),
    Stream(scenario="stream", fps=200, frames=4, warmup=1),
    Load(scenario="load", rate_per_s=200, deadline_ms=2000, max_batch=2, requests=10, warmup=1),
]
METHODS = [
    Prune(method="prune", kind="structured", amount=0.5),
    Prune(method="prune", kind="unstructured", amount=0.5),
    Quantize(method="quantize", dtype="int8", calibration_batches=1),
]


@pytest.mark.parametrize("method", METHODS, ids=["structured", "unstructured", "int8"])
@pytest.mark.parametrize("temporal", [False, True], ids=["espcn", "recurrent"])
def test_compressed_models_serve(method, temporal, ctx, fake_monitor, toy_recurrent) -> None:
    model = toy_recurrent if temporal else MODELS.create("espcn", channels=8, layers=3).eval()
    out, _ = apply_method(method, model, ctx)
    for sc in SCENARIOS:
        serving = ScenarioContext(out, ctx.task, ctx.device, fake_monitor, FAST, sc.scenario)
        res = run_scenario(sc, serving)
        stored = res.to_json()  # as the run folder keeps it
        assert stored["scenario"] == sc.scenario
        assert stored["latency_ms"] is not None, stored  # something was served
