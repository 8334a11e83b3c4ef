"""Answers at a glance in the terminal: the leaderboard and break-even lines after a run.

Reads the run store through :mod:`energybench.report.tables` (the same numbers as the HTML
report and the CSV export) and renders them with rich. It must not measure, rank differently
from the report, or write files.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from energybench.records.store import RunData
from energybench.records.types import LoadResult
from energybench.report.tables import TIE_METHOD, break_even_rows, leaderboard, rank_label
from energybench.report.units import eng, greenness_unit

ESTIMATE_MARK = "≈"


def _missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def _num(v: Any, digits: int = 4) -> str:
    return "–" if _missing(v) else f"{float(v):.{digits}g}"


def marks(row: dict[str, Any]) -> str:
    """Provenance marks of a leaderboard row: estimate, simulated, shared device, and the kind
    of device when the ranking mixes CPU and GPU entries."""
    out = []
    if row["is_estimate"]:
        out.append("est.")
    if row["is_simulated"]:
        out.append("simulated")
    if row["is_shared"]:
        out.append("shared")
    if row["is_mixed_devices"] is True and isinstance(row["placement"], str):
        out.append("on CPU" if row["placement"] == "cpu" else "on GPU")
    return ", ".join(out)


def leaderboard_table(run: RunData, board: pd.DataFrame | None = None) -> Table:
    """Rank, entry, Q, TEC, IEC, score and estimate marks, best first (unranked last)."""
    board = leaderboard(run) if board is None else board
    q = run.suite.metric.quality
    table = Table(
        title=f"leaderboard: {run.suite.name} ({run.root.name})",
        box=None,
        header_style="bold underline",
        pad_edge=False,
    )
    units = sorted({_unit(run, str(e)) for e in board["entry"]}) if not board.empty else []
    iec = f"IEC /{units[0]}" if len(units) == 1 else "IEC /item"
    # the serving backend, shown once any entry is served on something other than eager
    backends = "backend" in board and bool((board["backend"] != "eager").any())
    for name, justify in (
        ("rank", "right"),
        ("entry", "left"),
        *((("backend", "left"),) if backends else ()),
        (f"Q ({q})", "right"),
        ("TEC", "right"),
        (iec, "right"),
        (f"score ({greenness_unit(q, run.suite.metric.tau)})", "right"),
        ("marks", "left"),
    ):
        table.add_column(
            name,
            justify=justify,
            no_wrap=name != "marks",
            min_width=14 if name == "marks" else None,
        )
    if board.empty:
        return table
    rows = board.to_dict("records")
    rows.sort(key=lambda r: (_missing(r["rank"]), r["rank"] or 0, str(r["entry"])))
    for r in rows:
        est = ESTIMATE_MARK if r["is_estimate"] else ""

        def cell(v: Any, text: str, est: str = est) -> str:
            return "–" if _missing(v) else est + text

        note = marks(r)
        if _missing(r["rank"]):
            note = ", ".join(x for x in (note, "unranked") if x)
        table.add_row(
            rank_label(r["rank"], r["rank_lo"], r["rank_hi"]),
            str(r["entry"]),
            *((str(r["backend"]),) if backends else ()),
            _num(r["quality"]),
            cell(r["tec_j"], eng(r["tec_j"], "J")),
            cell(r["iec_j"], eng(r["iec_j"], "J")),
            cell(r["score"], _num(r["score"], 3)),
            note,
        )
    return table


def basis_lines(board: pd.DataFrame) -> list[str]:
    """What the ranking is on (the IEC basis) and, when some ranks are tied, what that means."""
    if board.empty:
        return []
    out = []
    bases = sorted({str(b) for b in board["iec_basis"] if isinstance(b, str)})
    if bases:
        out.append("ranked on: " + "; ".join(bases))
    if "rank_lo" in board and bool((board["rank_lo"] != board["rank_hi"]).any()):
        groups = board.dropna(subset=["tie_group"]).groupby("tie_group")["entry"]
        tied = [", ".join(map(str, g)) for _, g in groups if len(g) > 1]
        if tied:  # unranked entries (NaN ranks) are no tie
            out.append(f"tied: {' | '.join(tied)} ({TIE_METHOD})")
    return out


def unranked_lines(board: pd.DataFrame) -> list[str]:
    """Why each unranked entry is not ranked (one line each, under the table)."""
    if board.empty or "rank" not in board:
        return []
    rows = board[board["rank"].isna()].to_dict("records")
    return [f"{r['entry']}: {r['rank_note']}" for r in rows if r["rank_note"]]


def _unit(run: RunData, entry: str) -> str:
    from energybench.report.tables import iec_group

    g = iec_group(run, entry)
    return (g.unit if g else None) or "item"


def _count(v: Any) -> str:
    """An item count: plain below 1000, engineering notation above (1.2 M)."""
    return "–" if _missing(v) else (f"{float(v):.3g}" if abs(float(v)) < 1e3 else eng(v))


def break_even_lines(run: RunData) -> list[str]:
    """One sentence per break-even pair: who is cheaper beyond which usage intensity."""
    be = break_even_rows(run)
    out = []
    for r in be.to_dict("records") if not be.empty else []:
        a, b, kind = r["entry"], r["other"], r["kind"]
        est = f" ({ESTIMATE_MARK} estimate)" if r["is_estimate"] else ""
        if kind == "at":
            band = ""
            if not _missing(r["mui_lo"]) and not _missing(r["mui_hi"]):
                band = f" (uncertain in [{_count(r['mui_lo'])}, {_count(r['mui_hi'])}])"
            out.append(
                f"{a} vs {b}: break-even at {_count(r['mui'])} items{band}; "
                f"{r['cheaper_above']} is cheaper above{est}"
            )
        elif kind in ("always", "never"):
            band = ""
            if not _missing(r["mui_lo"]) and not _missing(r["mui_hi"]):
                band = f", not settled by the uncertainty for [{_count(r['mui_lo'])}, "
                band += f"{_count(r['mui_hi'])}] items"
            out.append(f"{a} vs {b}: {r['cheaper_above']} is cheaper at every usage{band}{est}")
        elif kind == "identical":
            out.append(f"{a} vs {b}: identical energy at every usage{est}")
        else:
            out.append(f"{a} vs {b}: break-even undefined ({r['note']})")
    return out


def sweep_lines(run: RunData) -> list[str]:
    """One sentence per load sweep: its maximum ("≥" for a lower bound) and the point behind it."""
    out = []
    for entry in run.phases:
        for name, sc in run.results(entry).items():
            sw = sc.sweep if isinstance(sc, LoadResult) else None
            if sw is None:
                continue
            head = f"{entry}/{name}: max rate at p99 <= {sw.p99_target_ms:g} ms"
            if sw.max_rate_per_s is None:
                low = min((p.rate_per_s for p in sw.points), default=None)
                tried = f" (lowest tried {low:.4g}/s)" if low is not None else ""
                out.append(f"{head}: no rate tried met it{tried}")
                continue
            served = ""
            if sw.served_at_max is not None and sw.duration_s_at_max is not None:
                served = f"; {sw.served_at_max} requests served in {sw.duration_s_at_max:.3g} s"
            if sw.bound == "lower":
                why = "lower bound: the highest rate tried still met it"
            else:
                nxt = sw.first_failing_rate_per_s
                why = f"{nxt:.4g}/s failed" if nxt is not None else "measured"
            out.append(f"{head}: {sw.max_rate_text()} requests/s ({why}{served})")
    return out


def glance(run: RunData) -> RenderableType:
    """The leaderboard table, then the break-even lines (what a user reads first)."""
    board = leaderboard(run)
    parts: list[RenderableType] = [leaderboard_table(run, board)]
    parts += [Text(line) for line in basis_lines(board)]
    notes = unranked_lines(board)
    if notes:
        parts.append(Text("not ranked:", style="bold"))
        parts += [Text("  " + line) for line in notes]
    lines = break_even_lines(run)
    if lines:
        parts.append(Text("break-even:", style="bold"))
        parts += [Text("  " + line) for line in lines]
    sweeps = sweep_lines(run)
    if sweeps:
        parts.append(Text("load sweeps (Camelot max load):", style="bold"))
        parts += [Text("  " + line) for line in sweeps]
    if "is_estimate" in board and board["is_estimate"].fillna(False).astype(bool).any():
        parts.append(
            Text(f"{ESTIMATE_MARK}, est.: from a power model (codecarbon), not a measurement")
        )
    return Group(*parts)


def _answer_row(i: int, a: Any) -> list[str]:
    p = a.point
    est = ESTIMATE_MARK if p.is_estimate else ""
    energy = "–" if p.energy_per_item_j is None else est + eng(p.energy_per_item_j, "J")
    if p.energy_ci_j:
        energy += f" [{eng(p.energy_ci_j[0], 'J')}, {eng(p.energy_ci_j[1], 'J')}]"
    margin = "–" if a.margin_ms is None else f"{a.margin_ms:+.3g} ms"
    return [
        str(i),
        p.entry,
        f"{p.scenario}, batch {p.batch}, {p.backend}",
        f"{p.rate_per_s:.3g}/s" + ("" if a.basis == "at-rate" else " ↑"),
        "∞" if p.p99_ms is None else f"{p.p99_ms:.3g} ms",
        margin,
        energy,
        _num(p.quality),
    ]


def _plan_rejections(result: Any) -> list[Text]:
    """The configurations a plan rejected, each with its reasons, then those not measured."""
    parts = []
    if result.misses:
        parts.append(Text("rejected:", style="bold"))
        for a in result.misses:
            p = a.point
            why = "; ".join(a.reasons) or "does not meet the query"
            parts.append(
                Text(f"  {p.entry} / {p.scenario} ({p.backend}, {p.rate_per_s:.4g}/s): {why}")
            )
    if result.not_measured:
        parts.append(Text("not measured / not applicable:", style="bold"))
        parts += [Text("  " + s) for s in result.not_measured]
    return parts


def plan_text(result: Any) -> RenderableType:
    """The ``energybench plan`` answer for the terminal (see :mod:`energybench.plan`)."""
    q = result.min_quality
    query = f"p99 <= {result.p99_ms:g} ms at {result.rate_per_s:g}/s" + (
        f", Q >= {q:g}" if q is not None else ""
    )
    cols = ["#", "entry", "configuration", "measured at", "p99", "margin", "J/item [95% CI]", "Q"]
    notes: list[Text] = []

    def table(title: str, answers: list[Any]) -> Table:
        t = Table(title=title, box=None, header_style="bold underline", pad_edge=False)
        for c in cols:
            t.add_column(c, no_wrap=c not in ("configuration", "J/item [95% CI]"))
        for a in answers:
            i = len(notes) + 1
            t.add_row(*_answer_row(i, a))
            notes.append(Text(f"  #{i} {a.point.run_id}: {a.note or 'measured at the rate asked'}"))
        return t

    parts: list[RenderableType] = []
    if result.status == "meets":
        parts.append(table(f"meets {query} (cheapest first)", result.meets))
        best = result.meets[0].point
        parts.append(
            Text(
                f"cheapest: {best.entry} / {best.scenario} ({best.backend}) at "
                f"{eng(best.energy_per_item_j, 'J')} per item",
                style="bold green",
            )
        )
    elif result.status == "none-meets":
        parts.append(Text(f"none meets {query}", style="bold red"))
        if result.nearest_miss is not None:
            parts.append(table("nearest miss", [result.nearest_miss]))
    else:
        parts.append(
            Text(
                f"not measured: no run measured a load point that answers {result.rate_per_s:g}/s "
                "(nothing is interpolated); run a load scenario at that rate or with "
                "p99_target_ms for a sweep",
                style="bold red",
            )
        )
    parts += notes
    parts += _plan_rejections(result)
    parts.append(
        Text(
            "↑: measured at a higher rate than asked (the nearest measured point above); "
            f"{ESTIMATE_MARK}: estimated energy; ∞: requests were rejected"
        )
    )
    return Group(*parts)


def _span(c: Any) -> str:
    """ "A / B" of one compared figure (points; "=" when their intervals overlap, "≠" not)."""
    if c is None or c.a is None or c.b is None:
        return "–"
    unit = "J" if c.figure in ("IEC", "TEC") else ""

    def one(v: float) -> str:
        if c.figure == "rank":
            return f"{v:.0f}"
        return eng(v, unit) if unit else f"{v:.2g}"

    return f"{one(c.a)} {'=' if c.agree else '≠'} {one(c.b)}"


def compare_table(rows: list[Any], name_a: str, name_b: str) -> RenderableType:
    """Entry by entry: IEC, TEC, score and rank in run A / run B, and whether they agree."""
    table = Table(
        title=f"compare: A = {name_a}, B = {name_b}",
        box=None,
        header_style="bold underline",
        pad_edge=False,
    )
    for col in ("entry", "verdict", "IEC A/B", "TEC A/B", "score A/B", "rank A/B"):
        table.add_column(col, no_wrap=col != "entry", overflow="fold")
    for r in rows:
        figs = {c.figure: c for c in r.figures}
        style = {"agree": "green", "differ": "red"}.get(r.verdict, "yellow")  # a plain map
        table.add_row(
            r.entry,
            Text(r.verdict, style=style),
            *(_span(figs.get(f)) for f in ("IEC", "TEC", "score", "rank")),  # a plain map
        )
    notes = [Text(f"  {r.entry}: {r.note}") for r in rows if r.note]
    differ = sum(1 for r in rows if r.verdict == "differ")
    agree = sum(1 for r in rows if r.verdict == "agree")
    summary = (
        f"{agree} entr{'y' if agree == 1 else 'ies'} agree within their uncertainty, "
        f"{differ} differ (=: the two intervals overlap: IEC 95 % CI, TEC ± 2σ, score and rank "
        "ranges; --format json gives the intervals)"
    )
    return Group(table, *notes, Text(summary))
