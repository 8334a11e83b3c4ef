"""The load sweep's maximum says what it is: measured, a lower bound ("≥") or none, everywhere."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from energybench.records.store import RunData
from energybench.records.types import Sweep
from energybench.report.scenario_tables import output_rows
from energybench.report.terminal import sweep_lines
from tests.report.test_plan import _load, _sweep_point


def _sweep(points: list[dict[str, Any]], best: float | None, **fields: Any) -> dict[str, Any]:
    return {
        "p99_target_ms": 200.0,
        "capacity_estimate_per_s": 100.0,
        "max_rate_per_s": best,
        "energy_per_request_j": 0.1 if best else None,
        "points": points,
        **fields,
    }


def test_an_old_record_whose_first_rate_passed_reads_as_a_lower_bound() -> None:
    """Before the bound was stored the sweep stopped at a first rate that passed."""
    old = Sweep.model_validate(_sweep([_sweep_point(7404, 108.0, 0.1)], 7404))
    assert old.bound == "lower" and old.lower_bound and old.max_rate_text() == "≥ 7404"
    bisected = [_sweep_point(125, None, 0.1), _sweep_point(6.25, 90.0, 0.2)]
    assert Sweep.model_validate(_sweep([*bisected, _sweep_point(28, 150.0, 0.1)], 28)).bound == (
        "measured"
    )
    assert Sweep.model_validate(_sweep(bisected[:1], None)).bound == "none"
    new = Sweep.model_validate(_sweep([_sweep_point(50, 90.0, 0.1)], 50, bound="measured"))
    assert new.bound == "measured" and new.max_rate_text() == "50"


def _run_with(sweep: dict[str, Any]) -> RunData:
    sc = _load(20, 80.0, 2.0, [])
    sc["sweep"] = sweep
    serve = {
        "entry": "m",
        "phase": "serve",
        "config_hash": "h",
        "status": "done",
        "device": "cpu",
        "scenarios": {"load": sc},
    }
    suite = {
        "name": "s",
        "metric": {"quality": "ssim"},
        "entries": [{"name": "m", "model": {"name": "bicubic"}}],
    }
    return RunData.from_records(Path("r"), {"suite": suite}, {"m": {"serve": serve}})


def test_terminal_and_export_show_the_bound() -> None:
    top = _sweep_point(400, 120.0, 0.1) | {"served": 900, "duration_s": 2.1}
    lower = _sweep(
        [_sweep_point(125, 90.0, 0.1), _sweep_point(250, 100.0, 0.1), top],
        400,
        bound="lower",
        served_at_max=900,
        duration_s_at_max=2.1,
    )
    run = _run_with(lower)
    (line,) = sweep_lines(run)
    assert "≥ 400 requests/s" in line and "lower bound" in line and "900 requests" in line
    rows = output_rows(run)
    bound = rows[rows["output"] == "sweep_bound"].iloc[0]
    assert bound["output_text"].startswith("lower bound (≥)")
    served = rows[rows["output"] == "sweep_served_at_max"].iloc[0]
    assert served["output_value"] == 900
    measured = _sweep(
        [_sweep_point(125, 90.0, 0.1), _sweep_point(250, 300.0, 0.1)],
        125,
        bound="measured",
        first_failing_rate_per_s=250,
    )
    (line,) = sweep_lines(_run_with(measured))
    assert ": 125 requests/s (250/s failed" in line and "≥" not in line
    (line,) = sweep_lines(_run_with(_sweep([_sweep_point(125, None, 0.1)], None)))
    assert "no rate tried met it" in line
