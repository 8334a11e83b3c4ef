"""The self-contained HTML leaderboard: styles, script and images inline, no CDN, every
user-provided string escaped (jinja2 autoescape). Reads the run store only.
"""

from __future__ import annotations

import datetime as dt
import io
import math
from pathlib import Path
from typing import Any

import pandas as pd
from jinja2 import Environment, PackageLoader, select_autoescape

from energybench.metrics.fullcycle import BREAK_EVEN_FORMULA, GREENNESS_FORMULA, SCORE_FORMULA
from energybench.report.tables import break_even_rows, leaderboard, phase_rows
from energybench.store import RunData


def _fmt_energy(j: Any) -> str:
    if j is None or (isinstance(j, float) and math.isnan(j)):
        return "–"
    j = float(j)
    for unit, scale in (("MJ", 1e6), ("kJ", 1e3), ("J", 1.0), ("mJ", 1e-3), ("µJ", 1e-6)):
        if abs(j) >= scale or unit == "µJ":
            return f"{j / scale:.3g} {unit}"
    return f"{j:.3g} J"


def _fmt(v: Any, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    if isinstance(v, float):
        return f"{v:.{digits}g}"
    return str(v)


def _num(v: Any) -> str:
    """Sort key for a cell (empty when missing)."""
    if v is None or (isinstance(v, float) and (math.isnan(v) or math.isinf(v))):
        return ""
    return repr(float(v)) if isinstance(v, (int, float)) else str(v)


def energy_vs_mui_svg(board: pd.DataFrame, muis: list[float]) -> str | None:
    """Lifecycle energy E(MUI) = TEC + MUI·IEC per entry, log-log, as inline SVG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    rows = board.dropna(subset=["iec_j"])
    if rows.empty:
        return None
    lo, hi = min(muis) / 10, max(muis) * 10
    x = np.logspace(math.log10(lo), math.log10(hi), 200)
    fig, ax = plt.subplots(figsize=(7, 4))
    for _, r in rows.iterrows():
        tec = r["tec_j"] or 0.0
        ax.plot(
            x,
            tec + x * r["iec_j"],
            label=str(r["entry"]),
            linestyle="--" if r["is_estimate"] else "-",
        )
    for m in muis:
        ax.axvline(m, color="#bbb", linewidth=0.8)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("usage intensity MUI (items over the model's life)")
    ax.set_ylabel("lifecycle energy E (J)")
    ax.legend(fontsize=7)
    ax.grid(True, which="major", alpha=0.3)
    fig.tight_layout()
    buf = io.StringIO()
    fig.savefig(buf, format="svg")
    plt.close(fig)
    svg = buf.getvalue()
    return svg[svg.index("<svg") :]


def _run_context(run: RunData) -> dict[str, Any]:
    m = run.manifest
    env = m.get("environment", {})
    board = leaderboard(run)
    muis = [u["mui"] for u in run.suite.get("metric", {}).get("usage_intensities", [])]
    phases = phase_rows(run)
    by_phase = []
    if not phases.empty and "energy_j" in phases:
        top = phases[
            ~phases["window"].str.contains("/t[0-9]+$", regex=True) | (phases["phase"] == "serve")
        ]
        g = (
            top.groupby(["entry", "phase", "device", "source"], dropna=False)
            .agg(
                energy_j=("energy_j", "sum"),
                static_j=("static_j", "sum"),
                dynamic_j=("dynamic_j", "sum"),
                duration_s=("duration_s", "sum"),
            )
            .reset_index()
        )
        by_phase = g.to_dict("records")
    return {
        "run": run,
        "manifest": m,
        "env": env,
        "suite": run.suite,
        "board": board.to_dict("records"),
        "muis": muis,
        "by_phase": by_phase,
        "break_even": break_even_rows(run).to_dict("records"),
        "plot_energy": energy_vs_mui_svg(board, muis) if muis else None,
        "meters": m.get("meters", []),
        "created": dt.datetime.fromtimestamp(m.get("created_unix_s", 0)).isoformat(
            timespec="seconds"
        ),
    }


def render_report(runs: list[RunData]) -> str:
    """The HTML page for one or more runs (several runs are shown one after another)."""
    env = Environment(
        loader=PackageLoader("energybench.report", "templates"),
        autoescape=select_autoescape(["html"]),
    )
    env.filters.update(energy=_fmt_energy, fmt=_fmt, num=_num)
    template = env.get_template("report.html")
    return template.render(
        runs=[_run_context(r) for r in runs],
        formulas={"G": GREENNESS_FORMULA, "S": SCORE_FORMULA, "break_even": BREAK_EVEN_FORMULA},
    )


def write_report(runs: list[RunData], path: Path) -> Path:
    """Render and write the report; returns its path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_report(runs), encoding="utf-8")
    return path
