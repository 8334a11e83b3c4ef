"""The leaderboard as a LaTeX table for papers (``energybench export RUN --format latex``).

One ``table`` float per run: a booktabs ``tabular`` in rank order, its caption and label, and
a footnote under it. The uncertainty convention is the report's and the caption says it: TEC
as ``value ± σ`` (1σ, the root-sum-square of the measured items' uncertainties), IEC as
``value [lo, hi]`` (its 95 % confidence interval); E and G at each of the suite's usage
intensities (MUI) as points. ``*`` marks a figure estimated from a power model (the footnote
says so); "--" (an en dash) is a figure that was not run or does not apply. Needs
``\\usepackage{booktabs}`` only; the text is escaped, so any entry name compiles.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from energybench.records.store import RunData
from energybench.report.tables import leaderboard, rank_label, usage_intensities

#: the mark of an estimated figure and its footnote
ESTIMATE_MARK = r"$^{*}$"
ESTIMATE_NOTE = (
    r"$^{*}$Estimated from a power model (codecarbon), not measured. "
    r"--: not run or not applicable."
)
CONVENTION = (
    r"TEC: value $\pm$ 1$\sigma$; IEC: value [95\,\% confidence interval]; "
    r"E and G at usage intensity MUI (items over the model's life)."
)

_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "–": "--",
    "≈": r"$\approx$",
    "·": r"$\cdot$",
    "τ": r"$\tau$",
    "σ": r"$\sigma$",
    "µ": r"$\mu$",
}


def latex_escape(text: Any) -> str:
    """``text`` with LaTeX special characters escaped (and the few non-ASCII signs the
    leaderboard uses written as LaTeX, so pdflatex needs no Unicode setup)."""
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in str(text))  # a plain map


def _missing(v: Any) -> bool:
    return v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v))


def tex_num(v: Any, digits: int = 3) -> str:
    """A number with ``digits`` significant digits: plain in [1e-3, 1e5) (``1120``, ``0.633``),
    else ``$a\\times10^{b}$`` (``$10^{6}$`` for a power of ten); "--" when missing."""
    if _missing(v):
        return "--"
    x = float(v)
    if x != 0 and not 1e-3 <= abs(x) < 1e5:
        mant, exp = f"{x:.{digits - 1}e}".split("e")
        mant = mant.rstrip("0").rstrip(".")
        power = f"10^{{{int(exp)}}}"
        return f"${power}$" if mant == "1" else f"${mant}\\times{power}$"
    r = float(f"{x:.{digits}g}")
    return str(int(r)) if r == int(r) else repr(r)


def _est(text: str, est: bool) -> str:
    return text + ESTIMATE_MARK if est and text != "--" else text


def _tec_cell(r: dict[str, Any]) -> str:
    tec, sigma = r["tec_j"], r["tec_uncertainty_j"]
    text = tex_num(tec)
    if text != "--" and not _missing(sigma) and float(sigma) > 0:
        text += f" $\\pm$ {tex_num(sigma, 2)}"
    return _est(text, bool(r["tec_is_estimate"]))


def _iec_cell(r: dict[str, Any]) -> str:
    text = tex_num(r["iec_j"])
    lo, hi = r["iec_ci_low_j"], r["iec_ci_high_j"]
    if text != "--" and not (_missing(lo) or _missing(hi)):
        text += f" [{tex_num(lo, 2)}, {tex_num(hi, 2)}]"
    return _est(text, bool(r["iec_is_estimate"]))


def _header(run: RunData, muis: list[float]) -> list[str]:
    metric = run.suite.metric
    q = latex_escape(metric.quality)
    tau = metric.tau
    g_unit = f"{q}/J" if tau == 1 else f"{q}$^{{{tau:g}}}$/J"
    head = ["Rank", "Entry", f"Q ({q})", "TEC (J)", "IEC (J/item)", "p99 (ms)"]
    head += [f"G@{tex_num(m)} ({g_unit})" for m in muis]
    return [*head, f"Score $S$ ({g_unit})"]


def _row(r: dict[str, Any], muis: list[float]) -> list[str]:
    est = bool(r["is_estimate"])
    rank = rank_label(r["rank"], r["rank_lo"], r["rank_hi"])
    cells = [
        latex_escape(rank),
        latex_escape(r["entry"]),
        tex_num(r["quality"], 4),
        _tec_cell(r),
        _iec_cell(r),
        tex_num(r["latency_p99_ms"]),
    ]
    cells += [_est(tex_num(r[f"g@{m:g}"]), est) for m in muis]
    return [*cells, _est(tex_num(r["score"]), est)]


def run_latex(run: RunData, caption: str | None = None, label: str | None = None) -> str:
    """One run's leaderboard as a ``table`` float: booktabs tabular, caption (``caption``, or
    one naming the suite and run, then :data:`CONVENTION`), label, estimate footnote."""
    board = leaderboard(run)
    muis = [m for m, _w in usage_intensities(run)]
    head = _header(run, muis)
    suite = latex_escape(run.suite.name)
    text = latex_escape(caption.strip()) if caption and caption.strip() else (
        f"energybench leaderboard of suite {suite} (run {latex_escape(run.root.name)}), best "
        "first; a rank range (lo--hi) means the entries' score intervals overlap."
    )  # fmt: skip
    lines = [
        f"% energybench leaderboard: suite {suite}, run {latex_escape(run.root.name)}",
        "% needs \\usepackage{booktabs}",
        "\\begin{table*}[t]",
        "\\centering",
        "\\small",
        f"\\caption{{{text}{'' if text.endswith(('.', '?', '!')) else '.'} {CONVENTION}}}",
        *([f"\\label{{{_label(label)}}}"] if label else []),
        "\\begin{tabular}{rl" + "r" * (len(head) - 2) + "}",
        "\\toprule",
        " & ".join(head) + " \\\\",
        "\\midrule",
    ]
    if not board.empty:
        board = board.assign(_r=board["rank"].fillna(math.inf)).sort_values("_r", kind="stable")
    lines += [" & ".join(_row(r, muis)) + " \\\\" for r in board.to_dict("records")]
    lines += [
        "\\bottomrule",
        "\\end{tabular}",
        "",
        f"\\smallskip\\footnotesize {ESTIMATE_NOTE}",
        "\\end{table*}",
        "",
    ]
    return "\n".join(lines)


def _label(label: str) -> str:
    """A label as given, minus the characters that break ``\\label`` (braces, backslash, %)."""
    return "".join(ch for ch in label if ch not in "{}\\%#")


def leaderboard_latex(
    runs: list[RunData], caption: str | None = None, label: str | None = None
) -> str:
    """Each run's leaderboard table (see :func:`run_latex`); with several runs, the label of
    the n-th gets ``-n`` from the second on, so each stays unique."""
    return "\n".join(
        run_latex(run, caption, f"{label}-{i + 1}" if label and i else label)
        for i, run in enumerate(runs)
    )


def latex_document(body: str) -> str:
    """``body`` (tables from :func:`leaderboard_latex`) in a minimal article, to compile alone."""
    return (
        "\\documentclass{article}\n\\usepackage{booktabs}\n"
        "\\begin{document}\n"
        f"{body}\n\\end{{document}}\n"
    )
