"""Tidy long-format exports of runs (CSV, JSON, parquet, LaTeX). Reads the run store only.

One table with a ``table`` column naming which table a row belongs to:

- ``phases``: one row per entry x phase measurement window x device;
- ``scenarios``: one row per entry x serving scenario x batch size;
- ``outputs``: one row per entry x serving scenario x output its kind declares (rejection
  rate, sweep results, policy, ...);
- ``metric``: one row per entry x usage intensity (E, G, carbon, rank at that MUI);
- ``break_even``: one row per compared pair of entries;
- ``leaderboard``: one row per entry.

Every column, its dtype and its meaning are in :data:`SCHEMA` (also ``docs/export-schema.md``);
names carry units; columns are always the same, in the same order, whatever the runs hold
(a column that does not apply to a table is empty there). ``schema_version`` says which version
of this layout a file uses. ``--format latex`` writes a booktabs table of the leaderboard
(:mod:`energybench.report.latex`). A figure that was not run or does not apply is an empty
cell in CSV (null in JSON and parquet), never 0.

CSV cells are safe to open in a spreadsheet: a text cell that starts with ``=``, ``+``, ``-``,
``@``, a tab or a carriage return (a formula to Excel, LibreOffice and Google Sheets) gets a
leading ``'`` (OWASP "CSV injection" guidance), see :func:`neutralize_csv_cell`. Numeric
columns, and text cells that are a plain number such as ``-3.5``, are written unchanged. JSON,
parquet and LaTeX keep the text as it is (LaTeX escapes it).
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from energybench.records.store import RunData, atomic_write_bytes, atomic_write_text
from energybench.report.latex import latex_escape, leaderboard_latex
from energybench.report.scenario_tables import output_rows, scenario_rows
from energybench.report.tables import (
    EXPORT_SCHEMA_VERSION,
    break_even_rows,
    leaderboard,
    metric_rows,
    phase_rows,
)

__all__ = ["latex_escape", "leaderboard_latex"]  # the LaTeX table: energybench.report.latex

FORMATS = ("csv", "json", "parquet", "latex")
TABLES = ("phases", "scenarios", "outputs", "metric", "break_even", "leaderboard")
_ALL = TABLES

_P, _S, _M, _B, _L = ("phases",), ("scenarios",), ("metric",), ("break_even",), ("leaderboard",)
_O = ("outputs",)


def _col(dtype: str, description: str, tables: tuple[str, ...] = _ALL) -> dict[str, Any]:
    return {"dtype": dtype, "description": description, "tables": tables}


#: Column -> pandas dtype, description and the tables that fill it (others leave it empty).
SCHEMA: dict[str, dict[str, Any]] = {
    "table": _col("string", "which table the row belongs to: " + ", ".join(TABLES)),
    "schema_version": _col("Int64", "version of this export layout"),
    "suite": _col("string", "suite name"),
    "run_id": _col("string", "run directory name: timestamp and config hash"),
    "entry": _col("string", "suite entry (for break_even: the variant compared)"),
    "phase": _col(
        "string",
        "lifecycle phase: train, compress, serve (window serve/export: the backend's "
        "one-off export, counted in TEC), evaluate",
        _P,
    ),
    "status": _col("string", "phase status (phases) or overall entry status", _P + _L),
    "window": _col("string", "measurement window label, e.g. serve/stream/t0", _P),
    "device": _col("string", "measured device id, e.g. gpu:cuda:0, cpu:estimate", _P),
    "device_kind": _col("string", "gpu, cpu or ram", _P),
    "device_name": _col("string", "device model name", _P),
    "source": _col("string", "energy provenance: nvml-counter, rapl, estimate, ...", _P),
    "backend": _col(
        "string",
        "serving backend: eager, compile, onnxruntime, openvino (+int8, +channels_last)",
        _S + _L,
    ),
    "backend_max_abs_diff": _col(
        "float64", "largest |backend - eager| output difference over the parity frames", _L
    ),
    "scenario": _col("string", "serving scenario name", _S + _O),
    "scenario_kind": _col("string", "throughput, stream, ...", _S + _O),
    "output": _col("string", "name of an output the scenario kind declares", _O),
    "output_label": _col("string", "what the output is, in words", _O),
    "output_unit": _col("string", "unit of the output (empty: a word, e.g. a policy)", _O),
    "output_value": _col("float64", "the output's value (a number)", _O),
    "output_text": _col("string", "the output's value (a word)", _O),
    "batch_size": _col("Int64", "batch size (empty for streaming)", _S),
    "unit": _col("string", "what one item is: item (image) or frame", _S),
    "trials": _col("Int64", "repeated trials behind the statistics", _S),
    "energy_j": _col("float64", "energy in J (phases: window; metric: E(MUI))", _P + _M),
    "uncertainty_j": _col("float64", "energy uncertainty, J, ~1 sigma", _P),
    "static_j": _col("float64", "idle-baseline (static) part of energy_j, J", _P),
    "dynamic_j": _col("float64", "energy above idle (dynamic) part of energy_j, J", _P),
    "mean_power_w": _col("float64", "mean power over the window, W", _P),
    "peak_power_w": _col("float64", "peak sampled power, W", _P),
    "start_unix_s": _col("float64", "window start, Unix time, s", _P),
    "duration_s": _col("float64", "window duration, s", _P),
    "samples": _col("Int64", "power samples taken in the window", _P),
    "complete": _col("boolean", "the meter covered the whole window", _P),
    "energy_per_item_j": _col("float64", "mean energy per item, J", _S),
    "energy_per_item_ci_low_j": _col("float64", "95% CI low of energy per item, J (>= 0)", _S),
    "energy_per_item_ci_high_j": _col("float64", "95% CI high of energy per item, J", _S),
    "target_fps": _col("float64", "stream frame rate target, frames/s", _S),
    "latency_mean_ms": _col("float64", "mean latency per item, ms", _S),
    "latency_min_ms": _col("float64", "minimum latency, ms", _S),
    "latency_p50_ms": _col("float64", "median latency, ms", _S + _L),
    "latency_p90_ms": _col("float64", "90th percentile latency, ms", _S),
    "latency_p99_ms": _col("float64", "99th percentile latency, ms", _S + _L),
    "latency_max_ms": _col("float64", "maximum latency, ms", _S),
    "latency_n": _col("Int64", "latency samples", _S),
    "items_per_s": _col("float64", "throughput, items/s (mean over trials)", _S + _L),
    "fps_achieved": _col("float64", "achieved stream frame rate, frames/s", _S + _L),
    "fps": _col("float64", "fps_achieved for streams, else items_per_s, items/s", _L),
    "deadline_miss_rate": _col("float64", "fraction of stream frames past deadline", _S + _L),
    "quality": _col("float64", "the suite's quality figure Q (metric.quality)", _L),
    "psnr_db": _col("float64", "PSNR, dB", _L),
    "ssim": _col("float64", "SSIM", _L),
    "params": _col("Int64", "model parameters", _L),
    "flops_per_item": _col("float64", "FLOPs per item", _L),
    "size_bytes": _col("Int64", "serialized model size, bytes", _L),
    "tec_j": _col("float64", "TEC: energy before deployment incl. shared costs, J", _L),
    "tec_uncertainty_j": _col("float64", "TEC uncertainty, J, ~1 sigma", _L),
    "shared_j": _col("float64", "part of TEC paid by other entries, J", _L),
    "iec_j": _col("float64", "IEC: energy per item in the IEC scenario, J", _L),
    "iec_ci_low_j": _col("float64", "95% CI low of IEC, J", _L),
    "iec_ci_high_j": _col("float64", "95% CI high of IEC, J", _L),
    "iec_scenario": _col("string", "serving scenario the IEC comes from", _L),
    "tec_is_estimate": _col("boolean", "TEC includes an estimated figure", _L),
    "iec_is_estimate": _col("boolean", "IEC is estimated", _L),
    "iec_batch_size": _col("Int64", "batch size of the IEC scenario", _L),
    "energy_scope": _col("string", "what TEC and IEC cover (e.g. GPU only; CPU not measured)", _L),
    "tec_estimated_j": _col("float64", "CPU/RAM estimate beside a measured-only TEC, J", _L),
    "iec_estimated_j": _col("float64", "CPU/RAM estimate beside a measured-only IEC, J", _L),
    "measured_energy_per_item_j": _col("float64", "mean J/item of measured devices only", _S),
    "estimated_energy_per_item_j": _col("float64", "mean J/item of estimated devices only", _S),
    "iec_basis": _col("string", "what every ranked IEC is (scenario kind, batch size)", _L),
    "energy_basis": _col(
        "string", "J/item basis: measured (meters only) or all (estimates included)", _S + _L
    ),
    "energy_gaps": _col("string", "why a figure is missing or partial (then unranked)", _L),
    "trials_without_energy": _col(
        "Int64", "trials left out: no whole energy figure on the ranking basis", _S + _L
    ),
    "rel_ci": _col(
        "float64", "ranked 95% CI half-width of J/item over the mean (spread + meter)", _S
    ),
    "rel_stat_ci": _col("float64", "trial-spread part of rel_ci (judged against target)", _S),
    "target_ci_reached": _col("boolean", "rel_stat_ci reached energy.target_ci", _S),
    "charged": _col("boolean", "the device is charged to the entry (else only seen)", _P),
    "is_shared": _col("boolean", "a GPU in MIG mode or shared with another process", _P + _L),
    "is_simulated": _col("boolean", "figures come from a simulated device (--simulate)", _P + _L),
    "placement": _col("string", "where the entry ran: cpu, cuda:N or simulated-PROFILE:N", _B + _L),
    "is_mixed_devices": _col(
        "boolean",
        "leaderboard: its entries ran on both CPU and GPU; break_even: the pair did (a "
        "CPU entry is charged for no GPU)",
        _B + _L,
    ),
    "mui_items": _col("float64", "usage intensity MUI, items over the model's life", _M + _B),
    "weight": _col("float64", "weight of this MUI in the suite score", _M),
    "greenness": _col("float64", "G(MUI) = Q^tau / E(MUI), quality units per J", _M),
    "greenness_lo": _col("float64", "low end of G: TEC + 2 sigma, IEC 95% CI high", _M),
    "greenness_hi": _col("float64", "high end of G: TEC - 2 sigma, IEC 95% CI low", _M),
    "carbon_kgco2e": _col("float64", "carbon of E(MUI): kWh x PUE x grid intensity, kgCO2e", _M),
    "grid_intensity_g_per_kwh": _col("float64", "grid carbon intensity, gCO2e/kWh", _M),
    "pue": _col("float64", "data-centre power usage effectiveness", _M),
    "score": _col("float64", "suite score S (weighted geometric mean of G)", _L),
    "rank": _col("Int64", "rank, 1 = greenest (metric: by G at this MUI; else by S)", _M + _L),
    "score_lo": _col("float64", "low end of S (geometric mean of greenness_lo)", _L),
    "score_hi": _col("float64", "high end of S (geometric mean of greenness_hi)", _L),
    "rank_lo": _col("Int64", "best rank the intervals allow", _M + _L),
    "rank_hi": _col("Int64", "worst rank the intervals allow", _M + _L),
    "tie_group": _col("Int64", "entries whose intervals overlap share it (1 = greenest)", _M + _L),
    "rank_note": _col("string", "why the entry is unranked", _M + _L),
    "other": _col("string", "the entry compared against (e.g. the base model)", _B),
    "kind": _col("string", "break-even kind: at, always, never, identical, undefined", _B),
    "mui_lo_items": _col("float64", "low end of the MUI range where the winner is uncertain", _B),
    "mui_hi_items": _col("float64", "high end of that range (inf: unbounded)", _B),
    "cheaper_above": _col("string", "entry cheaper beyond the break-even MUI", _B),
    "is_estimate": _col("boolean", "the figures come from a power model, not a measurement"),
    "sources": _col("string", "energy sources behind the row, ';'-separated", _S + _L),
    "flags": _col("string", "measurement flags, ';'-separated", _P + _S),
    "note": _col("string", "issues or explanation", _P + _B),
}

_RENAMES = {
    "mui": "mui_items",
    "mui_lo": "mui_lo_items",
    "mui_hi": "mui_hi_items",
    "g": "greenness",
    "g_lo": "greenness_lo",
    "g_hi": "greenness_hi",
}

_BUILDERS: dict[str, Callable[[RunData], pd.DataFrame]] = {
    "phases": phase_rows,
    "scenarios": scenario_rows,
    "outputs": output_rows,
    "metric": metric_rows,
    "break_even": break_even_rows,
    "leaderboard": leaderboard,
}


def _table(run: RunData, table: str) -> pd.DataFrame:
    """One table of one run, renamed to SCHEMA names (wide per-MUI columns dropped)."""
    frame = _BUILDERS[table](run).rename(columns=_RENAMES)
    if frame.empty:
        return frame
    frame = frame.drop(columns=[c for c in frame.columns if "@" in c])
    unknown = set(frame.columns) - set(SCHEMA)
    if unknown:
        raise ValueError(f"export table {table}: columns missing from SCHEMA: {sorted(unknown)}")
    frame.insert(0, "table", table)
    frame["suite"] = run.suite.name
    frame["run_id"] = run.root.name
    frame["schema_version"] = EXPORT_SCHEMA_VERSION
    return frame


def _conform(frame: pd.DataFrame) -> pd.DataFrame:
    """All SCHEMA columns in SCHEMA order, cast to their dtypes."""
    frame = frame.reindex(columns=list(SCHEMA))
    for col, spec in SCHEMA.items():
        frame[col] = _cast(frame[col], spec["dtype"])
    return frame


def _cast(s: pd.Series, dtype: str) -> pd.Series:
    s = s.astype(object).where(s.notna(), None)
    if dtype == "float64":
        return pd.to_numeric(s, errors="coerce").astype("float64")
    if dtype == "Int64":
        return pd.to_numeric(s, errors="coerce").round().astype("Int64")
    if dtype == "boolean":
        return s.map(lambda v: None if v is None else bool(v)).astype("boolean")
    return s.map(lambda v: None if v is None else str(v)).astype("string")


def export_frame(runs: list[RunData], tables: tuple[str, ...] = TABLES) -> pd.DataFrame:
    """All ``tables`` of all runs in one long frame with the SCHEMA columns."""
    parts = [_table(run, t) for run in runs for t in tables]
    parts = [p for p in parts if not p.empty]
    frame = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    return _conform(frame)


def table_columns(table: str) -> list[str]:
    """The SCHEMA columns filled in ``table`` (what a ``--split`` file holds)."""
    return [c for c, spec in SCHEMA.items() if table in spec["tables"]]


# --------------------------------------------------------------------------- writing
def export_text(
    runs: list[RunData], fmt: str = "csv", caption: str | None = None, label: str | None = None
) -> str:
    """The export of ``runs`` as text (csv, json or latex; caption and label: latex only)."""
    if fmt == "latex":
        return leaderboard_latex(runs, caption, label)
    return _frame_text(export_frame(runs), fmt)


#: first characters that make a spreadsheet treat a cell as a formula (OWASP CSV injection)
CSV_FORMULA_CHARS = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def neutralize_csv_cell(value: Any) -> Any:
    """``value`` with a leading ``'`` if it is text a spreadsheet would run as a formula.

    Text starting with one of :data:`CSV_FORMULA_CHARS` is prefixed, unless it is a plain number
    (``-3.5``, ``+1e3``), which spreadsheets read as a number; anything else is unchanged.
    """
    if (
        isinstance(value, str)
        and value.startswith(CSV_FORMULA_CHARS)
        and not _PLAIN_NUMBER.fullmatch(value)
    ):
        return "'" + value
    return value


def csv_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` whose text cells are neutralised (:func:`neutralize_csv_cell`)."""
    out = frame.copy()
    for col in out.columns:
        if not (pd.api.types.is_string_dtype(out[col]) or out[col].dtype == object):
            continue  # numbers and booleans stay as they are
        mask = out[col].notna()
        out.loc[mask, col] = out.loc[mask, col].map(neutralize_csv_cell)
    return out


def _frame_text(frame: pd.DataFrame, fmt: str) -> str:
    if fmt == "csv":
        return csv_safe(frame).to_csv(index=False)
    if fmt == "json":
        return frame.to_json(orient="records", indent=1)
    raise ValueError(f"format {fmt} is not text")


def _write_frame(frame: pd.DataFrame, path: Path, fmt: str) -> None:
    if fmt == "parquet":
        try:
            buf = io.BytesIO()
            frame.to_parquet(buf, index=False)
        except ImportError as exc:
            raise ValueError(
                "parquet needs pyarrow or fastparquet, neither is installed: pip install pyarrow"
                " (or export csv/json)"
            ) from exc
        atomic_write_bytes(path, buf.getvalue())
    else:
        atomic_write_text(path, _frame_text(frame, fmt))


def write_export(
    runs: list[RunData],
    path: Path,
    fmt: str = "csv",
    caption: str | None = None,
    label: str | None = None,
) -> Path:
    """Write the export of ``runs`` to ``path`` in ``fmt`` (caption and label: latex only),
    atomically; inside a run folder no link is followed."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt}")
    if fmt == "latex":
        atomic_write_text(path, leaderboard_latex(runs, caption, label))
    else:
        _write_frame(export_frame(runs), path, fmt)
    return path


def write_split(runs: list[RunData], directory: Path, fmt: str = "csv") -> list[Path]:
    """One file per table (``<table>.<fmt>``, that table's columns only) into ``directory``."""
    if fmt not in FORMATS or fmt == "latex":
        raise ValueError(f"--split writes csv, json or parquet, not {fmt}")
    directory.mkdir(parents=True, exist_ok=True)
    out = []
    frame = export_frame(runs)
    for table in TABLES:
        part = frame.loc[frame["table"] == table, table_columns(table)]
        path = directory / f"{table}.{fmt}"
        _write_frame(part.reset_index(drop=True), path, fmt)
        out.append(path)
    return out


def schema_markdown() -> str:
    """SCHEMA as a Markdown table (the body of ``docs/export-schema.md``)."""
    lines = ["| column | dtype | tables | description |", "|---|---|---|---|"]
    for col, spec in SCHEMA.items():
        tables = "all" if spec["tables"] == _ALL else ", ".join(spec["tables"])
        lines.append(f"| `{col}` | {spec['dtype']} | {tables} | {spec['description']} |")
    return "\n".join(lines) + "\n"
