"""A serving scenario plug-in is one module-like definition (schema class, runner, result type
declaring its outputs) plus one registry line; its outputs reach the export and the report."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, ClassVar, Literal

import torch

from energybench.lifecycle.serve import SCENARIOS, register_scenario, run_scenario
from energybench.lifecycle.trials import aggregate_trials, trial_summary
from energybench.record_types import FlatResult, Output, attr
from energybench.report.export import export_frame
from energybench.report.html import render_report
from energybench.store import RunData
from energybench.suite.schema import EnergySettings, Suite, _ScenarioBase


# ---- the plug-in: what a new module would hold ---------------------------------------------
class Burst(_ScenarioBase):
    """Serve ``items`` back to back at batch 1 in one window."""

    scenario: Literal["burst"]
    items: int = 6


class BurstResult(FlatResult):
    scenario: Literal["burst"]
    burst_items: int
    slowest_ms: float
    outputs: ClassVar[tuple[Output, ...]] = (
        Output("burst_items", "items in the burst", "items", attr("burst_items")),
        Output("slowest_ms", "slowest item", "ms", attr("slowest_ms")),
    )


def run_burst(sc: Burst, model, task, device, monitor, energy, window) -> dict[str, Any]:  # noqa: ANN001
    fn = task.serving_step(model, 1, device, torch.float32)
    lat: list[float] = []
    with torch.inference_mode(), monitor.window(f"{window}/t0") as w:
        for _ in range(sc.items):
            t0 = time.perf_counter()
            fn()
            lat.append(time.perf_counter() - t0)
    trial = trial_summary(w.measurement, sc.items, lat)
    agg = aggregate_trials([trial], lat, 1, "item", energy)
    return {"scenario": "burst", "burst_items": sc.items, "slowest_ms": 1e3 * max(lat), **agg}


def _register() -> None:  # the one registry line (guarded: pytest may import this twice)
    if "burst" not in SCENARIOS:
        register_scenario("burst", run_burst, BurstResult)


# ---- the done-when test ----------------------------------------------------------------------
def test_a_toy_scenario_reaches_the_export_and_the_report(fake_monitor, tiny_task) -> None:  # noqa: ANN001
    from energybench.models import MODELS

    _register()
    model = MODELS.create("bicubic", scale=4).eval()
    energy = EnergySettings(min_window_s=0.0, min_window_iters=1, trials=1, max_trials=1)
    sc = Burst(scenario="burst", items=5)
    rec = run_scenario(sc, model, tiny_task, torch.device("cpu"), fake_monitor, energy, "e/b")
    rec["name"] = "burst"
    suite = Suite.model_validate(
        {"name": "toy", "entries": [{"name": "e", "model": {"name": "bicubic"}}]}
    ).model_dump(mode="json")
    serve = {"entry": "e", "phase": "serve", "status": "done", "scenarios": {"burst": rec}}
    run = RunData(Path("/nonexistent/toy"), {"suite": suite}, {"e": {"serve": serve}})

    frame = export_frame([run], tables=("scenarios", "outputs"))
    row = frame[frame.table == "scenarios"].iloc[0]
    assert row.scenario_kind == "burst" and row.energy_per_item_j > 0
    outputs = frame[frame.table == "outputs"].set_index("output")
    assert outputs.loc["burst_items", "output_value"] == 5
    assert outputs.loc["slowest_ms", "output_unit"] == "ms"
    assert outputs.loc["slowest_ms", "output_value"] == rec["slowest_ms"] > 0

    html = render_report([run])
    assert "items in the burst" in html and "slowest item" in html
