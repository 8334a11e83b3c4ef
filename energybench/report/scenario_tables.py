"""Serving-scenario tables from typed results: statistics per batch size, and every output a
scenario kind declares (:class:`energybench.records.types.Output`), rendered generically so a
new kind's figures reach the export and the report with no change here. Reads only.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from energybench.records.store import RunData
from energybench.records.types import EnergyStat, Group, ScenarioResult, Summary
from energybench.report.tables import backend_name

#: outputs a scenario kind may declare that also have a column in the ``scenarios`` table
SCENARIO_COLUMNS = ("target_fps", "fps_achieved", "deadline_miss_rate")


def _finite(v: float | None) -> float | None:
    return v if v is None or math.isfinite(v) else None


def _ci(stat: EnergyStat | None) -> tuple[float, float] | None:
    """95 % CI of a J/item statistic, clipped at 0 J (a t-interval of few trials can go < 0)."""
    if stat is None or stat.ci_low is None or stat.ci_high is None:
        return None
    lo, hi = _finite(stat.ci_low), _finite(stat.ci_high)
    return None if lo is None or hi is None else (max(lo, 0.0), max(hi, 0.0))


def _mean(stat: Summary | EnergyStat | None) -> float | None:
    return None if stat is None else _finite(stat.mean)


def _declared(sc: ScenarioResult) -> dict[str, Any]:
    return {o.name: v for o, v in sc.output_values()}


def scenario_row(entry: str, name: str, sc: ScenarioResult, batch: str, g: Group) -> dict[str, Any]:
    """One row of the ``scenarios`` table: J/item with CI, precision, latency percentiles."""
    ci = _ci(g.energy_per_item_j)
    prec = g.precision
    declared = _declared(sc)
    lat = g.latency_ms
    row: dict[str, Any] = {
        "entry": entry,
        "scenario": name,
        "scenario_kind": sc.scenario,
        "batch_size": int(batch) if batch.isdigit() else None,
        "unit": g.unit,
        "trials": len(g.trials),
        "energy_per_item_j": _mean(g.energy_per_item_j),
        "energy_per_item_ci_low_j": ci[0] if ci else None,
        "energy_per_item_ci_high_j": ci[1] if ci else None,
        "measured_energy_per_item_j": _mean(g.measured_energy_per_item_j),
        "estimated_energy_per_item_j": _mean(g.estimated_energy_per_item_j),
        "trials_without_energy": g.trials_without_energy,
        "energy_basis": g.basis,
        "rel_ci": prec.rel_ci if prec else None,
        "rel_stat_ci": prec.rel_stat_ci if prec else None,
        "target_ci_reached": prec.reached if prec else None,
        "items_per_s": _mean(g.items_per_s),
        **{c: declared.get(c) for c in SCENARIO_COLUMNS},  # a plain map: declared by the kind
        "is_estimate": g.is_estimate,
        "sources": ";".join(g.sources),
        "flags": ";".join(g.flags),
    }
    for f in ("mean", "min", "p50", "p90", "p99", "max"):
        row[f"latency_{f}_ms"] = None if lat is None else _finite(getattr(lat, f))
    row["latency_n"] = None if lat is None else lat.n
    return row


def scenario_rows(run: RunData) -> pd.DataFrame:
    """One row per entry x serving scenario x batch size: latency, throughput, J/item with CI."""
    rows = []
    for entry in run.phases:
        for name, sc in run.results(entry).items():
            for b, g in sc.groups().items():
                row = scenario_row(entry, name, sc, b, g)
                rows.append({**row, "backend": backend_name(run, entry)})
    return pd.DataFrame(rows)


def output_rows(run: RunData) -> pd.DataFrame:
    """One row per entry x serving scenario x declared output: its label, unit and value
    (numbers in ``output_value``, words such as a policy name in ``output_text``)."""
    rows = []
    for entry in run.phases:
        for name, sc in run.results(entry).items():
            for o, v in sc.output_values():
                number = isinstance(v, int | float) and not isinstance(v, bool)
                value = float(v) if isinstance(v, int | float) and number else None
                rows.append(
                    {
                        "entry": entry,
                        "scenario": name,
                        "scenario_kind": sc.scenario,
                        "output": o.name,
                        "output_label": o.label,
                        "output_unit": o.unit,
                        "output_value": value,
                        "output_text": None if number or v is None else str(v),
                    }
                )
    return pd.DataFrame(rows)
