"""Do two runs agree? Entry by entry, whether their ranked figures agree within their uncertainty.

Reads two run stores through :func:`energybench.report.tables.leaderboard` (the figures the
leaderboard ranks) and compares, per entry present in either run:

- IEC: the two 95 % CIs overlap;
- TEC: the two ranges TEC ± 2σ overlap (an exact TEC, e.g. 0 J for bicubic, is its own range);
- score S: the two score intervals overlap (``score_lo``..``score_hi``, see
  :mod:`energybench.metrics.ranking`);
- rank: the two rank ranges (``rank_lo``..``rank_hi``) overlap.

Two figures whose intervals overlap agree: neither run shows the other wrong. Figures on a
different basis (another IEC scenario, measured vs estimated) are not compared. An entry agrees
when every figure both runs have agrees; it differs when one does not. Never measures.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import pandas as pd

from energybench.records.store import RunData
from energybench.report.tables import leaderboard

Verdict = Literal["agree", "differ", "not compared"]

#: (figure, point column, interval columns or a ± column scaled by 2)
_FIGURES: tuple[tuple[str, str, tuple[str, str] | str], ...] = (
    ("IEC", "iec_j", ("iec_ci_low_j", "iec_ci_high_j")),
    ("TEC", "tec_j", "tec_uncertainty_j"),
    ("score", "score", ("score_lo", "score_hi")),
    ("rank", "rank", ("rank_lo", "rank_hi")),
)


def _num(v: Any) -> float | None:
    if v is None or (isinstance(v, float) and math.isnan(v)) or pd.isna(v):
        return None
    return float(v)


@dataclass(frozen=True)
class FigureCheck:
    """One figure of one entry in both runs: values, intervals and whether they overlap."""

    figure: str
    a: float | None
    b: float | None
    a_range: tuple[float, float] | None
    b_range: tuple[float, float] | None
    agree: bool | None  # None: not compared (missing in a run)


@dataclass(frozen=True)
class EntryComparison:
    """The verdict for one entry, with each figure checked and why it was not compared."""

    entry: str
    verdict: Verdict
    figures: list[FigureCheck] = field(default_factory=list)
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _range(row: dict[str, Any], point: str, spec: tuple[str, str] | str) -> tuple[float, float]:
    v = _num(row[point])
    assert v is not None
    if isinstance(spec, str):
        u = 2.0 * (_num(row[spec]) or 0.0)
        return max(v - u, 0.0), v + u
    lo, hi = _num(row[spec[0]]), _num(row[spec[1]])
    return (v if lo is None else min(lo, v)), (v if hi is None else max(hi, v))


def _check(a: dict[str, Any], b: dict[str, Any]) -> list[FigureCheck]:
    out = []
    for figure, point, spec in _FIGURES:
        va, vb = _num(a[point]), _num(b[point])
        if va is None or vb is None:
            out.append(FigureCheck(figure, va, vb, None, None, None))
            continue
        ra, rb = _range(a, point, spec), _range(b, point, spec)
        out.append(FigureCheck(figure, va, vb, ra, rb, ra[0] <= rb[1] and rb[0] <= ra[1]))
    return out


def _basis_note(a: dict[str, Any], b: dict[str, Any]) -> str:
    for key, what in (("iec_basis", "IEC basis"), ("energy_basis", "energy basis")):
        if a[key] != b[key] and not (pd.isna(a[key]) and pd.isna(b[key])):
            return f"{what} differs: {a[key]} vs {b[key]}"
    return ""


def compare_runs(a: RunData, b: RunData) -> list[EntryComparison]:
    """Entry by entry (run A's order, then entries only in B): do the runs agree?"""
    rows_a = {str(r["entry"]): r for r in leaderboard(a).to_dict("records")}
    rows_b = {str(r["entry"]): r for r in leaderboard(b).to_dict("records")}
    out = []
    for name in [*rows_a, *(n for n in rows_b if n not in rows_a)]:
        if name not in rows_a or name not in rows_b:
            only = "A" if name in rows_a else "B"
            out.append(EntryComparison(name, "not compared", note=f"only in run {only}"))
            continue
        ra, rb = rows_a[name], rows_b[name]
        note = _basis_note(ra, rb)
        if note:
            out.append(EntryComparison(name, "not compared", note=note))
            continue
        checks = _check(ra, rb)
        if (_num(ra["rank"]) is None) != (_num(rb["rank"]) is None):
            which, other = ("A", rb) if _num(ra["rank"]) is not None else ("B", ra)
            why = other["rank_note"] or "no reason recorded"
            out.append(
                EntryComparison(name, "differ", checks, f"ranked in run {which} only: {why}")
            )
            continue
        differ = [c.figure for c in checks if c.agree is False]
        compared = [c for c in checks if c.agree is not None]
        if differ:
            verdict: Verdict = "differ"
            note = f"{', '.join(differ)} outside each other's interval"
        elif compared:
            verdict = "agree"
            unranked = _num(ra["rank"]) is None  # in both runs (checked above)
            missing = [c.figure for c in checks if c.agree is None]
            if unranked:
                missing = [m for m in missing if m != "rank"]
            note = "unranked in both runs" if unranked else ""
            if missing:
                note = "; ".join(x for x in (note, f"not in both runs: {', '.join(missing)}") if x)
        else:
            verdict, note = "not compared", "no figure in both runs"
        out.append(EntryComparison(name, verdict, checks, note))
    return out
