"""Tidy long-format exports of runs (CSV, JSON, parquet). Reads the run store only.

One table with a ``table`` column naming which table a row belongs to: ``phases`` (one row per
entry x phase window x device), ``leaderboard`` (one row per entry), ``break_even`` (pairs).
Column names carry units; ``schema_version`` says which version of this layout a file uses.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from energybench.report.tables import (
    EXPORT_SCHEMA_VERSION,
    break_even_rows,
    leaderboard,
    phase_rows,
)
from energybench.store import RunData

FORMATS = ("csv", "json", "parquet")


def export_frame(runs: list[RunData]) -> pd.DataFrame:
    """All tables of all runs in one long frame."""
    parts = []
    for run in runs:
        for table, frame in (
            ("phases", phase_rows(run)),
            ("leaderboard", leaderboard(run)),
            ("break_even", break_even_rows(run)),
        ):
            if frame.empty:
                continue
            frame = frame.copy()
            frame.insert(0, "table", table)
            frame["suite"] = run.suite.get("name")
            frame["run_id"] = run.root.name
            frame["schema_version"] = EXPORT_SCHEMA_VERSION
            parts.append(frame)
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def export_text(runs: list[RunData], fmt: str = "csv") -> str:
    """The export of ``runs`` as text (csv or json)."""
    frame = export_frame(runs)
    if fmt == "csv":
        return frame.to_csv(index=False)
    if fmt == "json":
        return frame.to_json(orient="records", indent=1)
    raise ValueError(f"format {fmt} is not text")


def write_export(runs: list[RunData], path: Path, fmt: str = "csv") -> Path:
    """Write the export of ``runs`` to ``path`` in ``fmt``."""
    frame = export_frame(runs)
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "csv":
        frame.to_csv(path, index=False)
    elif fmt == "json":
        frame.to_json(path, orient="records", indent=1)
    elif fmt == "parquet":
        frame.to_parquet(path, index=False)
    else:
        raise ValueError(f"unknown format {fmt}")
    return path
