"""The self-contained HTML leaderboard: styles, script and images inline, no CDN, every
user-provided string escaped (jinja2 autoescape). Reads the run store only.

Cells are prepared here (text, sort value, estimate mark, note) so the template stays a plain
loop; ranks for every usage intensity are precomputed into ``data-rank-<key>`` attributes and the
page's script only reorders rows.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from jinja2 import Environment, PackageLoader, select_autoescape

from energybench.metrics.fullcycle import (
    BREAK_EVEN_FORMULA,
    ENERGY_FORMULA,
    GREENNESS_FORMULA,
    SCORE_FORMULA,
)
from energybench.records.manifest import MeterInfo
from energybench.records.store import RunData, atomic_write_text
from energybench.records.types import AdaptiveResult, ThroughputResult
from energybench.report import plots
from energybench.report.compare import EntryComparison, compare_boards, relative_change
from energybench.report.figures import device_footnote, phase_energy, run_figures
from energybench.report.scenario_tables import output_rows, scenario_rows
from energybench.report.tables import (
    TIE_METHOD,
    break_even_rows,
    carbon_factors,
    leaderboard,
    phase_rows,
    rank_label,
    usage_intensities,
)
from energybench.report.units import bytes_text, eng, greenness_unit

ESTIMATE_MARK = "≈"


def _missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def fmt_energy(j: Any) -> str:
    """An energy in J with an SI prefix, 3 significant digits ("–" when missing)."""
    if _missing(j):
        return "–"
    j = float(j)
    if j == 0:
        return "0 J"  # never "0 µJ": nothing was paid, not a tiny amount
    for unit, scale in (("MJ", 1e6), ("kJ", 1e3), ("J", 1.0), ("mJ", 1e-3), ("µJ", 1e-6)):
        if abs(j) >= scale or unit == "µJ":
            return f"{j / scale:.3g} {unit}"
    return f"{j:.3g} J"


def fmt(v: Any, digits: int = 3) -> str:
    """A number with ``digits`` significant digits ("–" when missing)."""
    if _missing(v):
        return "–"
    if isinstance(v, float):
        return f"{v:.{digits}g}"
    return str(v)


def sort_value(v: Any) -> str:
    """The ``data-v`` sort key of a cell (empty when missing, sorted last)."""
    if _missing(v) or (isinstance(v, float) and math.isinf(v)):
        return ""
    return repr(float(v)) if isinstance(v, (int, float)) else str(v)


@dataclass
class Cell:
    """One table cell: display text, sort value, estimate mark, optional note under the text,
    optional tooltip (``title``: shown on hover, so long texts do not make rows tall)."""

    text: str
    v: str = ""
    est: bool = False
    sub: str = ""
    badge: str = ""
    mui: str = ""
    title: str = ""


@dataclass
class Column:
    """A leaderboard column: ``key`` names it in ``#sort=<key>`` links."""

    key: str
    label: str
    name: bool = False
    mui: str = ""
    title: str = ""


def _mui_key(i: int) -> str:
    return f"m{i}"


def _columns(run: RunData, muis: list[float]) -> list[Column]:
    q, tau = run.suite.metric.quality, run.suite.metric.tau
    g_unit = greenness_unit(q, tau)
    cols = [
        Column("rank", "rank", title="rank in the selected view"),
        Column("entry", "entry", name=True),
        Column("backend", "backend", name=True, title="serving backend (inference runtime)"),
        Column("quality", f"Q ({q})"),
        Column("params", "params"),
        Column("flops", "FLOPs/item"),
        Column("tec", "TEC ± σ", title="energy before deployment, J; ± 1σ"),
        Column("iec", "IEC [95% CI]", title="J per item in the IEC scenario"),
        Column("p99", "p99 latency (ms)"),
        Column("fps", "FPS"),
    ]
    for i, m in enumerate(muis):
        k = _mui_key(i)
        cols.append(Column(f"e-{k}", f"E @ {eng(m)}", mui=k, title=ENERGY_FORMULA))
        cols.append(Column(f"g-{k}", f"G @ {eng(m)} ({g_unit})", mui=k, title=GREENNESS_FORMULA))
    cols.append(Column("score", f"score S ({g_unit})", mui="score", title=SCORE_FORMULA))
    cols.append(Column("provenance", "provenance", name=True))
    return cols


def _energy_cell(j: Any, est: bool, sub: str = "", mui: str = "") -> Cell:
    return Cell(fmt_energy(j), sort_value(j), est and not _missing(j), sub, mui=mui)


def _ci_text(lo: Any, hi: Any) -> str:
    return "" if _missing(lo) or _missing(hi) else f"[{fmt_energy(lo)}, {fmt_energy(hi)}]"


def _tec_cell(row: dict[str, Any]) -> Cell:
    """TEC ± 1σ of a leaderboard row ("–" for an unfinished entry that paid nothing yet)."""
    status = "" if row["status"] == "done" else row["status"]
    unc = row["tec_uncertainty_j"]
    nothing_paid = _missing(row["tec_j"]) or (row["tec_j"] == 0 and (_missing(unc) or unc == 0))
    tec_sub = "" if _missing(unc) or nothing_paid else f"± {fmt_energy(unc)}"
    # an entry that did not finish has no TEC yet: "–", never a zero that reads as free
    tec = None if status and nothing_paid else row["tec_j"]
    if row["shared_j"]:
        tec_sub += f" (incl. {fmt_energy(row['shared_j'])} shared)"
    return _energy_cell(tec, bool(row["tec_is_estimate"]), tec_sub.strip())


def _iec_cell(row: dict[str, Any]) -> Cell:
    """IEC of a leaderboard row with its 95 % CI."""
    ci = _ci_text(row["iec_ci_low_j"], row["iec_ci_high_j"])
    return _energy_cell(row["iec_j"], bool(row["iec_is_estimate"]), ci)


def _row_cells(row: dict[str, Any], muis: list[float], desc: str, roofline: str = "") -> list[Cell]:
    est = bool(row["is_estimate"])
    status = "" if row["status"] == "done" else row["status"]
    fps_kind = "stream" if not _missing(row["fps_achieved"]) else "throughput"
    backend = str(row["backend"] or "eager")
    cells = [
        Cell(
            rank_label(row["rank"], row["rank_lo"], row["rank_hi"]),
            sort_value(row["rank"]),
        ),
        Cell(str(row["entry"]), str(row["entry"]), badge=status, title=desc),  # see "Entries"
        Cell(backend, backend, sub=_parity(row)),
        Cell(fmt(row["quality"], 4), sort_value(row["quality"])),
        Cell(eng(row["params"]), sort_value(row["params"])),
        Cell(eng(row["flops_per_item"], "FLOP"), sort_value(row["flops_per_item"])),
        _tec_cell(row),
        _iec_cell(row),
        Cell(fmt(row["latency_p99_ms"]), sort_value(row["latency_p99_ms"])),
        Cell(
            fmt(row["fps"]),
            sort_value(row["fps"]),
            sub="" if _missing(row["fps"]) else " · ".join(t for t in (fps_kind, roofline) if t),
        ),
    ]
    for i, m in enumerate(muis):
        k = _mui_key(i)
        co2 = row[f"carbon_kgco2e@{m:g}"]
        sub = "" if _missing(co2) else f"{co2:.3g} kgCO2e"
        cells.append(_energy_cell(row[f"energy_j@{m:g}"], est, sub, mui=k))
        g = row[f"g@{m:g}"]
        cells.append(Cell(fmt(g), sort_value(g), est and not _missing(g), mui=k))
    score = row["score"]
    cells.append(Cell(fmt(score), sort_value(score), est and not _missing(score), mui="score"))
    prov = "estimate" if est else "measured"
    if row["is_simulated"]:
        prov = f"simulated {prov}"
    notes = [row["energy_scope"]]
    notes += [
        f"{what} estimate beside: {fmt_energy(row[key])}"
        for what, key in (("TEC", "tec_estimated_j"), ("IEC", "iec_estimated_j"))
        if not _missing(row[key])
    ]
    if row["is_mixed_devices"] is True:
        notes.append(f"on {row['placement']}: this ranking mixes CPU and GPU entries")
    notes.append(row["rank_note"])
    sub = "; ".join(str(n) for n in notes if isinstance(n, str) and n)
    cells.append(Cell(f"{prov}: {row['sources'] or '–'}", prov, sub=sub))
    return cells


def _parity(row: dict[str, Any]) -> str:
    d = row["backend_max_abs_diff"]
    return "" if _missing(d) else f"max |Δ| vs eager {d:.2g}"


def _ranks(row: dict[str, Any], muis: list[float]) -> dict[str, str]:
    out = {"score": sort_value(row["rank"])}
    for i, m in enumerate(muis):
        out[_mui_key(i)] = sort_value(row[f"rank@{m:g}"])
    return out


def _ties(row: dict[str, Any], muis: list[float]) -> dict[str, str]:
    """Per view, the rank range its intervals allow ("1–3"), empty when the rank is settled."""

    def span(lo: Any, hi: Any) -> str:
        return "" if _missing(lo) or _missing(hi) or lo == hi else f"{int(lo)}–{int(hi)}"

    out = {"score": span(row["rank_lo"], row["rank_hi"])}
    for i, m in enumerate(muis):
        out[_mui_key(i)] = span(row[f"rank_lo@{m:g}"], row[f"rank_hi@{m:g}"])
    return out


def roofline_text(run: RunData, row: dict[str, Any]) -> str:
    """An entry's closed-loop FLOP/s (FLOPs per item x items/s of its throughput scenario, at
    its first batch size) and its fraction of the serving device's matrix-multiply peak in the
    entry's dtype, as the run measured it (:mod:`energybench.serve.peaks`); "" when the run has
    no such peak or the entry no throughput figure."""
    from energybench.serve.peaks import serving_dtype

    name = str(row["entry"])
    entry = next((e for e in run.suite.entries if e.name == name), None)
    label, flops = run.info.placement(name), row["flops_per_item"]
    dtype = serving_dtype(entry) if entry is not None else None
    measured = run.info.peaks[label] if label in run.info.peaks else {}
    peak = measured[dtype] if dtype in measured else None
    if not peak or _missing(flops):
        return ""
    for result in run.results(name).values():
        if isinstance(result, ThroughputResult) and result.by_batch:
            batch, group = next(iter(result.by_batch.items()))
            rate = group.items_per_s.mean if group.items_per_s is not None else None
            if rate is None or _missing(rate):
                continue
            achieved = float(flops) * rate
            return (
                f"b{batch} closed loop {eng(achieved, 'FLOP/s')} = {achieved / peak:.0%} of "
                f"the {dtype} GEMM peak"
            )
    return ""


def _board_rows(run: RunData, board: pd.DataFrame, muis: list[float]) -> list[dict[str, Any]]:
    desc = {e.name: e.description for e in run.suite.entries}
    if "rank" in board and len(board):  # rank order (tied ranks adjacent), unranked last
        board = board.sort_values("rank", na_position="last", kind="stable")
    rows = []
    for row in board.to_dict("records"):
        rows.append(
            {
                "entry": row["entry"],
                "backend": row["backend"] or "eager",
                "est": bool(row["is_estimate"]),
                "p99_ms": sort_value(row["latency_p99_ms"]),
                "quality": sort_value(row["quality"]),
                "ranks": _ranks(row, muis),
                "ties": _ties(row, muis),
                "cells": _row_cells(row, muis, desc[row["entry"]], roofline_text(run, row)),
            }
        )
    return rows


def _scenario_table(run: RunData) -> list[dict[str, Any]]:
    """Serving scenarios for the report: J/item with CI, trials (and lost ones), precision."""
    rows = scenario_rows(run)
    out = []
    for r in rows.to_dict("records") if not rows.empty else []:
        lost = r["trials_without_energy"]
        trials = str(r["trials"])
        if not _missing(lost) and lost > 0:
            trials += f" ({int(lost)} lost energy)"
        rel, reached = r["rel_ci"], r["target_ci_reached"]
        prec = "–" if _missing(rel) else f"±{100 * rel:.1f} %"
        if not _missing(rel) and not bool(reached):
            prec += " (target missed)"
        out.append(
            {
                "entry": r["entry"],
                "scenario": r["scenario"],
                "kind": r["scenario_kind"],
                "batch": "–" if _missing(r["batch_size"]) else int(r["batch_size"]),
                "trials": trials,
                "jpi": r["energy_per_item_j"],
                "ci": _ci_text(r["energy_per_item_ci_low_j"], r["energy_per_item_ci_high_j"]),
                "measured": r["measured_energy_per_item_j"],
                "est": bool(r["is_estimate"]),
                "precision": prec,
                "p99": r["latency_p99_ms"],
                "flags": r["flags"] if isinstance(r["flags"], str) else "",
            }
        )
    return out


def _hardware(run: RunData) -> dict[str, Any]:
    env = run.info.environment
    drivers = sorted({str(m.driver) for m in run.info.meters if m.driver})
    cpu = env.cpu
    cores = "?" if cpu is None or cpu.logical_cores is None else cpu.logical_cores
    return {
        "cpu": f"{cpu.name if cpu else '?'} ({cores} logical cores)",
        "gpus": env.gpu_names,
        "driver": ", ".join(drivers) or "–",
        "host": env.hostname,
        "os": env.os,
    }


def _meter_source(m: MeterInfo) -> str:
    """Provenance of a meter description without a ``source`` (the NVML meter's channels)."""
    if m.meter != "nvml":
        return "?"
    channels = ["nvml-counter"] if m.counter_supported else []
    if m.power_channel:
        channels.append("nvml-power-integrated")
    sim = " (simulated)" if m.simulated else ""
    return " + ".join(channels) + sim if channels else "none"


def _meter_rows(run: RunData) -> list[dict[str, str]]:
    out = []
    for m in run.info.meters:
        detail = ", ".join(f"{k}={v}" for k, v in m.details if not isinstance(v, (dict, list)))
        note = "; ".join([*([m.note] if m.note else []), *map(str, m.notes)])
        out.append(
            {
                "meter": str(m.meter or "?"),
                "device": str(m.device or ""),
                "source": str(m.source or _meter_source(m)),
                "model": str(m.model or m.name or ""),
                "detail": detail,
                "note": note,
            }
        )
    return out


def _entry_specs(run: RunData) -> list[dict[str, str]]:
    out = []
    for e in run.suite.entries:
        deps = [*([f"inherits {e.inherit}"] if e.inherit else [])]
        deps += [f"uses {u}" for u in e.uses]
        out.append(
            {
                "name": e.name,
                "description": e.description,
                "model": e.model.name,
                "params": json.dumps(e.model.params, sort_keys=True),
                "deps": ", ".join(deps),
                "compress": ", ".join(c.method for c in e.compress),
            }
        )
    return out


def _plots(run: RunData, board: pd.DataFrame, ctx: dict[str, Any]) -> list[dict[str, Any]]:
    """Each figure of the run (see :func:`energybench.report.figures.run_figures`): slug,
    title, svg or None, why-not, caption."""
    specs = run_figures(run, board, ctx["break_even_df"], ctx["by_phase_df"])
    return [
        {"slug": f.slug, "title": f.title, "svg": f.svg(), "why": f.why, "caption": f.caption}
        for f in specs
        if not f.slug.startswith("adaptive-")  # drawn beside their own tables
    ]


def _output_table(run: RunData) -> list[dict[str, Any]]:
    """Every output each scenario kind declares (rejection rate, sweep, policy, ...)."""
    rows = output_rows(run)
    out = []
    for r in rows.to_dict("records") if not rows.empty else []:
        v = r["output_value"]
        text = r["output_text"] if _missing(v) else f"{fmt(v)} {r['output_unit']}".strip()
        out.append(
            {
                "entry": r["entry"],
                "scenario": r["scenario"],
                "kind": r["scenario_kind"],
                "output": r["output_label"],
                "value": "–" if text is None or _missing(text) else text,
                "sort": None if _missing(v) else v,
            }
        )
    return out


def memory_rows(run: RunData) -> list[dict[str, Any]]:
    """Peak CUDA memory of each phase that recorded it (entry, phase, device, bytes)."""
    out = []
    for entry, phases in run.phases.items():
        for phase, rec in phases.items():
            mem = rec.memory
            if mem is None or mem.peak_allocated_bytes is None:
                continue
            out.append(
                {
                    "entry": entry,
                    "phase": phase,
                    "device": mem.device,
                    "allocated": mem.peak_allocated_bytes,
                    "reserved": mem.peak_reserved_bytes,
                    "allocated_text": bytes_text(mem.peak_allocated_bytes),
                    "reserved_text": bytes_text(mem.peak_reserved_bytes),
                }
            )
    return out


def _adaptive(run: RunData) -> list[dict[str, Any]]:
    """Each ``adaptive`` scenario: its timeline plot and each policy run against the static one."""
    out = []
    for entry in run.phases:
        for name, sc in run.results(entry).items():
            if not isinstance(sc, AdaptiveResult):
                continue
            rows = []
            for policy, r in sc.runs.items():
                rows.append(
                    {
                        "policy": policy,
                        "miss_rate": r.deadline_miss_rate,
                        "dropped": r.dropped,
                        "frames": r.frames,
                        "fps": r.fps_achieved.mean if r.fps_achieved else None,
                        "fps_min": r.fps_achieved.min if r.fps_achieved else None,
                        "stall_s": r.longest_stall_s,
                        "psnr_db": r.psnr_mean_db,
                        "energy_j": r.energy_per_frame_j,
                        "est": r.is_estimate,
                        "switches": len(r.switches),
                        "switch_ms": r.switch_ms.mean if r.switch_ms else None,
                        "per_variant": ", ".join(
                            f"{v} {t:.3g} s" for v, t in r.time_per_variant_s.items()
                        ),
                    }
                )
            contention = ", ".join(f"{c['threads']} from {c['at_s']:g} s" for c in sc.contention)
            out.append(
                {
                    "entry": entry,
                    "scenario": name,
                    "fps": sc.target_fps,
                    "duration_s": sc.duration_s,
                    "variants": " → ".join(sc.variants),
                    "policy": sc.policy,
                    "contention": contention or "none",
                    "threads": sc.threads,
                    "rows": rows,
                    "svg": plots.adaptive_timeline_svg(sc),
                }
            )
    return out


IDLE_LABELS = {
    "before": "cold (before any work)",
    "active": "active (after a warm-up, device context open)",
    "after": "after the run",
}


def _idle_rows(run: RunData) -> list[dict[str, Any]]:
    """Each idle baseline of the run (cold, active, after) and which one the split used."""
    used = run.idle.split_uses
    rows = []
    for key, label in IDLE_LABELS.items():
        b = getattr(run.idle, key)
        if b is None:
            continue
        power = ", ".join(f"{d} {w:.3g} W" for d, w in sorted(b.power_w.items())) or "–"
        rows.append({"label": label, "power": f"{power} over {b.seconds:g} s", "used": key == used})
    return rows


def _run_context(run: RunData, index: int) -> dict[str, Any]:
    board = leaderboard(run)
    muis = [mui for mui, _w in usage_intensities(run)]
    be = break_even_rows(run)
    by_phase = phase_energy(phase_rows(run))
    ctx: dict[str, Any] = {
        "index": index,
        "run": run,
        "run_id": run.root.name,
        "manifest": run.info,
        "env": run.info.environment,
        "suite": run.suite,
        "hardware": _hardware(run),
        "meters": _meter_rows(run),
        "idle": _idle_rows(run),
        "carbon": carbon_factors(run),
        "columns": _columns(run, muis),
        "board": _board_rows(run, board, muis),
        "backends": sorted(set(board["backend"])) if "backend" in board else [],
        "any_estimate": bool(board["is_estimate"].any()) if not board.empty else False,
        "simulated": _simulated(run, board),
        "scopes": _scopes(run, board),
        "iec_reference": _iec_reference_text(run),
        "muis": [(_mui_key(i), f"{mui:g}", w) for i, (mui, w) in enumerate(usage_intensities(run))],
        "by_phase": by_phase.to_dict("records"),
        "scenarios": _scenario_table(run),
        "outputs": _output_table(run),
        "adaptive": _adaptive(run),
        "memory": memory_rows(run),
        "break_even": be.to_dict("records"),
        "entries": _entry_specs(run),
        "created": dt.datetime.fromtimestamp(run.info.created_unix_s).isoformat(timespec="seconds"),
        "break_even_df": be,
        "by_phase_df": by_phase,
    }
    ctx["plots"] = _plots(run, board, ctx)
    ctx["figure_devices"] = device_footnote(run)
    return ctx


def _scopes(run: RunData, board: pd.DataFrame) -> list[str]:
    """What the ranked energy covers, over the entries that take part in the ranking."""
    if board.empty or "energy_scope" not in board:
        return []
    ranked = {e.name for e in run.suite.entries if e.rank}
    rows = board[board["entry"].isin(ranked)]
    return sorted({str(x) for x in rows["energy_scope"] if isinstance(x, str)})


def _simulated(run: RunData, board: pd.DataFrame) -> str | None:
    """The simulated-GPU profile of a run ("figures" when only its records say so), or None."""
    if run.info.simulate:
        return run.info.simulate
    if not board.empty and "is_simulated" in board and bool(board["is_simulated"].any()):
        return "unknown profile"
    return None


def _iec_reference_text(run: RunData) -> str:
    from energybench.suite.ranking import iec_reference

    ref = iec_reference(run.suite)
    if ref is None:
        return ""
    return f"Ranked on: {ref.basis_label()}. Ranks: {TIE_METHOD} (all entries counted)."


def simulation_banner(contexts: list[dict[str, Any]]) -> str | None:
    """One sentence for the top of the report when any run is simulated (and whether real runs
    are mixed in); None when every run is real."""
    sims = [c for c in contexts if c["simulated"]]
    if not sims:
        return None
    which = ", ".join(f"{c['suite'].name}/{c['run_id']} ({c['simulated']})" for c in sims)
    text = (
        f"SIMULATED: the GPU energy of {which} comes from simulated NVIDIA GPUs "
        "(--simulate), not from hardware. Use it to dry-run a suite, never as a result."
    )
    if len(sims) < len(contexts):
        text += " This report mixes simulated and real runs: compare them with care."
    return text


#: the figures whose change against the baseline the comparison shows, in order
_CHANGED = (("score", "S"), ("IEC", "IEC"), ("TEC", "TEC"))


def change_text(rel: float | None) -> str:
    """A relative change for display: "+4.1 %", "−52.0 %", "±0 %"; "×3.2" beyond a factor of 2
    either way; "–" when there is none."""
    if rel is None:
        return "–"
    ratio = 1.0 + rel
    if ratio >= 2 or 0 < ratio <= 0.5:
        return f"×{ratio:.2g}"
    if abs(rel) < 5e-4:
        return "±0 %"
    return f"{100 * rel:+.1f} %".replace("-", "−")


def _vs_baseline_cell(c: EntryComparison | None, present: bool) -> Cell:
    """The "vs run 1" cell: the verdict of :func:`compare_boards`, each figure's change (≠ when
    outside the baseline's interval) and the comparison's note."""
    if c is None or not present:
        return Cell("–", sub="" if c is None else c.note)
    figs: dict[str, Any] = defaultdict(lambda: None, {f.figure: f for f in c.figures})
    parts = []
    for key, label in _CHANGED:
        f = figs[key]
        if f is None or f.a is None or f.b is None:
            continue
        mark = " ≠" if f.agree is False else ""
        parts.append(f"{label} {change_text(relative_change(f.a, f.b))}{mark}")
    score = figs["score"]
    rel = None if score is None else relative_change(score.a, score.b)
    return Cell(" · ".join(parts) or "–", sort_value(rel), sub=c.note, badge=c.verdict)


def _run_cells(row: dict[str, Any] | None) -> list[Cell]:
    """Rank (with its tie range), Q, S, TEC ± σ and IEC [95 % CI] of one entry in one run."""
    if row is None:
        return [Cell("–") for _ in range(5)]
    est = bool(row["is_estimate"])
    score = row["score"]
    return [
        Cell(rank_label(row["rank"], row["rank_lo"], row["rank_hi"]), sort_value(row["rank"])),
        Cell(fmt(row["quality"], 4), sort_value(row["quality"])),
        Cell(fmt(score), sort_value(score), est and not _missing(score)),
        _tec_cell(row),
        _iec_cell(row),
    ]


def comparison(runs: list[RunData]) -> dict[str, Any] | None:
    """Entry x run table for several runs (None for a single run): per run the rank, Q, score S,
    TEC and IEC as the leaderboard shows them, and per run after the first (the baseline) each
    figure's change against it and whether the two agree within their uncertainty
    (:func:`energybench.report.compare.compare_boards`, as ``energybench compare``)."""
    if len(runs) < 2:
        return None
    boards = [leaderboard(r) for r in runs]
    # an entry a run does not have reads as None (shown "–")
    rows_by_run: list[dict[str, Any]] = [
        defaultdict(lambda: None, {str(r["entry"]): r for r in b.to_dict("records")})
        for b in boards
    ]
    checks: list[dict[str, Any]] = [
        defaultdict(lambda: None, {c.entry: c for c in compare_boards(boards[0], b, "1", str(i))})
        for i, b in enumerate(boards[1:], start=2)
    ]
    names = list(dict.fromkeys(n for rows in rows_by_run for n in rows))
    heads = []
    for i, r in enumerate(runs, start=1):
        metric = r.suite.metric
        heads.append(
            {
                "label": f"{r.suite.name} / {r.root.name} ({_hardware(r)['host']})",
                "baseline": i == 1,
                "quality": metric.quality,
                "unit": greenness_unit(metric.quality, metric.tau),
            }
        )
    rows = []
    for name in names:
        base = rows_by_run[0][name]
        cells = _run_cells(base)
        for rows_i, checks_i in zip(rows_by_run[1:], checks, strict=True):
            row = rows_i[name]
            cells += _run_cells(row)
            present = base is not None and row is not None
            cells.append(_vs_baseline_cell(checks_i[name], present))
        rows.append({"entry": name, "cells": cells})
    return {"heads": heads, "rows": rows}


def render_report(runs: list[RunData]) -> str:
    """The HTML page for one or more runs: a comparison table (2+ runs), then each run."""
    env = Environment(
        loader=PackageLoader("energybench.report", "templates"),
        autoescape=select_autoescape(["html"]),
    )
    env.filters.update(energy=fmt_energy, fmt=fmt, num=sort_value, eng=eng)
    template = env.get_template("report.html")
    contexts = [_run_context(r, i) for i, r in enumerate(runs, start=1)]
    return template.render(
        runs=contexts,
        simulation_banner=simulation_banner(contexts),
        comparison=comparison(runs),
        mark=ESTIMATE_MARK,
        formulas={
            "E": ENERGY_FORMULA,
            "G": GREENNESS_FORMULA,
            "S": SCORE_FORMULA,
            "break_even": BREAK_EVEN_FORMULA,
        },
    )


def write_report(runs: list[RunData], path: Path) -> Path:
    """Render and write the report (atomically; inside a run folder no link is followed);
    returns its path."""
    atomic_write_text(path, render_report(runs))
    return path
