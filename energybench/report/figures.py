"""The figures of a run for the report and for papers: which figures a run has (with their
titles, captions and why one is missing), short device names, and ``energybench report RUN...
--figures DIR``, which writes each figure as SVG and PDF at one- and two-column paper width.

The drawing itself is in :mod:`energybench.report.plots`; this module decides what to draw from
a run and where it goes. Files are named ``<slug>-<width>.<svg|pdf>`` (``width``: ``1col``,
3.5 in; ``2col``, 7.16 in), in a folder per run (its run id) when there are several runs, with a
``figures.md`` beside them listing each figure's caption and the devices the figures name (a
run id given twice gets ``-2``, ``-3``, ... on its folder).
"""

from __future__ import annotations

import functools
import io
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib
import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.figure import Figure

from energybench.metrics.fullcycle import ENERGY_FORMULA
from energybench.records.store import RunData, atomic_write_bytes, atomic_write_text
from energybench.records.types import AdaptiveResult
from energybench.report import plots
from energybench.report.scenario_tables import scenario_rows
from energybench.report.tables import (
    break_even_rows,
    leaderboard,
    phase_rows,
    usage_intensities,
)

#: width name (in file names) -> inches
WIDTHS_IN = {"1col": plots.ONE_COLUMN_IN, "2col": plots.TWO_COLUMN_IN}
FORMATS = ("svg", "pdf")


@dataclass(frozen=True)
class FigureSpec:
    """One figure of a run: ``draw(width_in)`` builds it (None: nothing to draw, see ``why``)."""

    slug: str
    title: str
    caption: str
    why: str
    draw: Callable[[float], Figure | None]

    def svg(self, width_in: float = plots.TWO_COLUMN_IN) -> str | None:
        """The figure as inline SVG (the report's copy, also its download)."""
        with matplotlib.rc_context(_RC):
            fig = self.draw(width_in)
            return None if fig is None else plots.to_svg(fig)


_RC: Any = {**plots.PAPER_RC, **plots.PLAIN_TEXT}


def device_names(run: RunData) -> dict[str, str]:
    """Device id -> short name for figures: ``GPU0 H100 80GB HBM3`` (kind, index, model without
    the vendor), from the manifest's meters; devices with no index keep their id."""
    names: dict[str, str] = {}
    for m in run.info.meters:
        device, index, model = m.device, getattr(m, "index", None), m.name or m.model
        if not device or index is None or not model:
            continue
        kind = str(m.kind or "gpu").upper()
        mig = " MIG" if getattr(m, "mig", None) else ""
        name = re.sub(r"^(NVIDIA|AMD|Intel)\s+", "", str(model))
        names[str(device)] = f"{kind}{index}{mig} {name}"
    seen: dict[str, int] = {}
    for device, label in sorted(names.items()):  # two MIG slices of one GPU: GPU0 MIG ... #2
        seen[label] = seen.get(label, 0) + 1  # a plain counter
        if seen[label] > 1:
            names[device] = f"{label} #{seen[label]}"
    return names


def device_footnote(run: RunData) -> list[dict[str, str]]:
    """The devices figures name by short name, with their full model, UUID and device id (the
    report prints this table under the figures)."""
    names = device_names(run)
    out = []
    for m in run.info.meters:  # index, uuid and mig are the NVML meter's own details
        device = str(m.device)
        if device in names:
            out.append(
                {
                    "label": names[device],
                    "model": str(m.name or m.model),
                    "uuid": str(getattr(m, "mig", None) or getattr(m, "uuid", None) or "–"),
                    "device": device,
                }
            )
    return out


def phase_energy(phases: pd.DataFrame) -> pd.DataFrame:
    """Energy per entry, phase, device and source over the phase's top-level windows (J), with
    the root-sum-square of the windows' uncertainties (J, ~1σ)."""
    if phases.empty or "energy_j" not in phases:
        return pd.DataFrame()
    phases = phases.dropna(subset=["device", "energy_j"])  # skipped phases: nothing measured
    if "charged" in phases:  # another entry's GPU, seen in the window: recorded, not charged
        phases = phases[phases["charged"].astype("boolean").fillna(True).astype(bool)]
    top = phases[
        ~phases["window"].str.contains("/t[0-9]+$", regex=True) | (phases["phase"] == "serve")
    ]
    keys = ["entry", "phase", "device", "source"]
    keys += ["is_estimate"] if "is_estimate" in top else []
    return (
        top.groupby(keys, dropna=False)
        .agg(
            energy_j=("energy_j", "sum"),
            static_j=("static_j", "sum"),
            dynamic_j=("dynamic_j", "sum"),
            duration_s=("duration_s", "sum"),
            uncertainty_j=("uncertainty_j", plots.rss),
        )
        .reset_index()
    )


def _windows(run: RunData) -> pd.DataFrame:
    phases = phase_rows(run)
    if phases.empty or "start_unix_s" not in phases:
        return pd.DataFrame()
    return phases.drop_duplicates(["entry", "phase", "window"])


def _no_trace_why(run: RunData, traces: pd.DataFrame) -> str:
    """Why the power-trace figure of ``run`` would be empty."""
    return (
        f"no power trace in {run.root.name}/traces: traces are written by the sampling meters "
        "(NVML); CPU-only runs with RAPL counters or an estimate have none"
        if traces.empty
        else "traces exist but no samples fall inside a phase window"
    )


def run_figures(
    run: RunData,
    board: pd.DataFrame | None = None,
    break_even: pd.DataFrame | None = None,
    by_phase: pd.DataFrame | None = None,
) -> list[FigureSpec]:
    """The figures of ``run`` in report order (tables already computed may be passed in)."""
    board = leaderboard(run) if board is None else board
    be = break_even_rows(run) if break_even is None else break_even
    by_phase = phase_energy(phase_rows(run)) if by_phase is None else by_phase
    muis = [mui for mui, _w in usage_intensities(run)]
    devices = device_names(run)
    quality = run.suite.metric.quality
    traces = plots.read_traces(run.root)
    windows = _windows(run)
    scenarios = scenario_rows(run)
    specs = [
        FigureSpec(
            "lifecycle-energy",
            "Lifecycle energy vs usage intensity",
            f"{ENERGY_FORMULA}, log-log; shaded: 95 % band (TEC ± 2σ with the IEC 95 % CI); "
            "hollow markers and ≈ are estimates; circles mark break-even points (MUI*); grey "
            "verticals are the suite's usage intensities.",
            "no entry has a measured IEC, or the suite lists no usage intensities",
            lambda w: plots.energy_vs_mui_figure(board, muis, be, width_in=w),
        ),
        FigureSpec(
            "quality-vs-iec",
            "Quality vs IEC",
            "Bars: the IEC's 95 % confidence interval; hollow markers are estimates; the step "
            "line is the Pareto front (no other entry has both lower IEC and higher quality).",
            "no entry has both a quality figure and an IEC above 0 J",
            lambda w: plots.quality_vs_iec_figure(board, quality, width_in=w),
        ),
        FigureSpec(
            "energy-by-phase",
            "Energy by phase and device",
            "Each entry's own measurement windows; hatched = static (idle-baseline) part; "
            "error bars: each entry's total ± 1σ.",
            "no phase window recorded any energy",
            lambda w: plots.energy_by_phase_figure(by_phase, width_in=w, devices=devices),
        ),
        FigureSpec(
            "power-traces",
            "Power traces",
            "Sampled power.",
            _no_trace_why(run, traces),
            lambda w: plots.power_traces_figure(traces, windows, width_in=w, devices=devices),
        ),
        FigureSpec(
            "latency",
            "Latency per scenario",
            "From recorded percentiles (raw latencies are not stored): box p50–p90, median at "
            "p50, whiskers min–p99, circle at the maximum; log scale.",
            "no serving scenario recorded latency percentiles",
            lambda w: plots.latency_figure(scenarios, width_in=w),
        ),
    ]
    return specs + adaptive_figures(run)


def adaptive_figures(run: RunData) -> list[FigureSpec]:
    """One timeline figure per ``adaptive`` scenario of the run."""
    out = []
    for entry in run.phases:
        for name, sc in run.results(entry).items():
            if isinstance(sc, AdaptiveResult):
                out.append(
                    FigureSpec(
                        f"adaptive-{_slug(entry)}-{_slug(name)}",
                        f"Adaptive serving: {entry} / {name}",
                        "Timeline: achieved fps per second (dashed: target), the variant serving "
                        "each frame (x: a missed frame), and the declared contention.",
                        "the scenario recorded no policy run",
                        functools.partial(_adaptive_draw, sc),
                    )
                )
    return out


def _adaptive_draw(sc: AdaptiveResult, width_in: float) -> Figure | None:
    return plots.adaptive_timeline_figure(sc, width_in=width_in)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-") or "x"


def write_figures(runs: list[RunData], directory: Path) -> list[Path]:
    """Write every figure of ``runs`` as SVG and PDF at each of :data:`WIDTHS_IN` into
    ``directory`` (a folder per run when there are several) and a ``figures.md`` index;
    returns the figure files written."""
    written: list[Path] = []
    index = ["# Figures", ""]
    used: set[str] = set()
    for run in runs:
        base = name = _slug(run.root.name)
        copy = 1
        while name in used:  # the same run id twice (copies of one run): -2, -3, ...
            copy += 1
            name = f"{base}-{copy}"
        used.add(name)
        folder = directory / name if len(runs) > 1 else directory
        folder.mkdir(parents=True, exist_ok=True)
        index += [f"## {run.suite.name} / {run.root.name}", ""]
        for spec in run_figures(run):
            files = _write_one(spec, folder)
            written += files
            names = ", ".join(f"`{p.relative_to(directory)}`" for p in files)
            index.append(
                f"- **{spec.title}**: {spec.caption} {names}"
                if files
                else f"- **{spec.title}**: not drawn: {spec.why}."
            )
        footnote = device_footnote(run)
        if footnote:
            index += ["", "| device | model | UUID | id |", "|---|---|---|---|"]
            index += [f"| {d['label']} | {d['model']} | {d['uuid']} | {d['device']} |"
                      for d in footnote]  # fmt: skip
        index.append("")
    atomic_write_text(directory / "figures.md", "\n".join(index))
    return written


def _write_one(spec: FigureSpec, folder: Path) -> list[Path]:
    out = []
    with matplotlib.rc_context(_RC):
        for width, inches in WIDTHS_IN.items():
            fig = spec.draw(inches)
            if fig is None:
                return []
            for fmt in FORMATS:
                path = folder / f"{spec.slug}-{width}.{fmt}"
                buf = io.BytesIO()
                plots.save(fig, buf, fmt, close=False)
                atomic_write_bytes(path, buf.getvalue())
                out.append(path)
            plt.close(fig)
    return out
