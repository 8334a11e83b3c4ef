"""The report's figures, one place for all of them: matplotlib (Agg) figures sized for papers.

Each ``*_figure`` function takes tidy tables (from :mod:`energybench.report.tables`) and a width
in inches and returns a matplotlib :class:`~matplotlib.figure.Figure`, or None when there is
nothing to draw (the report then says why); each ``*_svg`` function returns the same figure at
the report's width as an inline ``<svg>`` string. :mod:`energybench.report.figures` names them
and writes them as SVG and PDF at :data:`ONE_COLUMN_IN` and :data:`TWO_COLUMN_IN`. Nothing here
reads the run store except :func:`read_traces`, which reads the trace CSVs of a run directory.

Paper rules every figure follows: every energy axis carries error bars (or a band) in the
report's convention (± 1σ for measured totals, the 95 % interval for J/item and for lifecycle
energy: TEC ± 2σ with the IEC 95 % CI); lines differ in colour, line style and marker, so they
read in greyscale; legends sit outside the axes (never over data); devices are named by
index and model (``GPU0 H100 80GB HBM3``), never by UUID (the report lists the UUIDs).

All text is plain text: entry and scenario names come from users, and a name such as
``$\\undefined$`` must not be parsed as mathtext (or LaTeX), which would fail after the run's
work is done. Every figure is drawn under :data:`PLAIN_TEXT` (``text.parse_math=False``,
``text.usetex=False``); do not use ``$...$`` markup in labels here.
"""

from __future__ import annotations

import functools
import io
import math
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, ParamSpec, TypeVar, cast

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter  # noqa: E402

from energybench.meters.sampler import TRACE_COLUMNS  # noqa: E402
from energybench.records.phases import PHASES
from energybench.records.types import AdaptiveResult  # noqa: E402
from energybench.report.units import eng  # noqa: E402

#: rcParams every figure is drawn with: user strings are never parsed as math or LaTeX
PLAIN_TEXT = {"text.parse_math": False, "text.usetex": False}
#: Paper widths (inches) of one column and of two columns (IEEE and ACM two-column layouts);
#: the report draws every figure at the two-column width.
ONE_COLUMN_IN = 3.5
TWO_COLUMN_IN = 7.16
#: Type sizes that print at 7-8 pt at the paper widths; deterministic SVG ids; TrueType in PDFs.
PAPER_RC = {
    "font.size": 8,
    "axes.labelsize": 8,
    "axes.titlesize": 8,
    "legend.fontsize": 7,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "svg.hashsalt": "energybench",
    "pdf.fonttype": 42,
}
#: A GPU or MIG UUID as NVML reports it (``GPU-1a2b3c4d-...``): never printed in a figure.
UUID_RE = re.compile(
    r"\b(?:GPU-|MIG-)?[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b"
)
#: Colour, line style and marker of the i-th series: they differ together, so lines stay
#: apart in greyscale print and for colour-blind readers.
LINE_STYLES = ("-", "--", "-.", ":")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")

_P = ParamSpec("_P")
_R = TypeVar("_R")


def plain_text(fn: Callable[_P, _R]) -> Callable[_P, _R]:
    """Run a figure function with :data:`PLAIN_TEXT` and :data:`PAPER_RC` (text objects are
    created and drawn in it)."""

    @functools.wraps(fn)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        with matplotlib.rc_context(cast(Any, {**PAPER_RC, **PLAIN_TEXT})):
            return fn(*args, **kwargs)

    return wrapper


def short_tick(v: float) -> str:
    """A log-axis tick label in plain text that stays short: ``0.01``, ``100``, ``10k``, ``1M``
    (nine decades fit under a 250-pixel axis without overlapping)."""
    return eng(v, "").replace(" ", "") if abs(v) >= 1000 else f"{v:g}"


def mui_text(mui: float) -> str:
    """A usage intensity in a label: three significant digits (``0.777``, ``14.9``, ``2k``)."""
    return short_tick(mui) if abs(mui) >= 1000 else f"{mui:.3g}"


def _plain_log_ticks(fig: Figure) -> None:
    """Log axes label their ticks in plain text (``1k``, ``0.01``): matplotlib's default log
    labels are mathtext (``$\\mathdefault{10^{3}}$``), shown raw under :data:`PLAIN_TEXT`.
    Axes that set their own formatter (a :class:`FuncFormatter`) keep it."""
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            if axis.get_scale() == "log" and not isinstance(
                axis.get_major_formatter(), FuncFormatter
            ):
                axis.set_major_formatter(FuncFormatter(lambda v, _pos: short_tick(v)))
                axis.set_minor_formatter(NullFormatter())


def to_svg(fig: Figure) -> str:
    """The figure as an inline ``<svg>`` element (XML prologue and doctype dropped)."""
    buf = io.StringIO()
    save(fig, buf, "svg")
    svg = buf.getvalue()
    return svg[svg.index("<svg") :]


def save(fig: Figure, target: Any, fmt: str, close: bool = True) -> None:
    """Write ``fig`` as ``fmt`` (svg or pdf) to a path or file object, without a date (the same
    run gives the same file); close it unless ``close`` is False."""
    _plain_log_ticks(fig)
    meta = {"Date": None} if fmt == "svg" else {"CreationDate": None}
    with matplotlib.rc_context(cast(Any, {**PAPER_RC, **PLAIN_TEXT})):
        fig.savefig(target, format=fmt, metadata=meta)
    if close:
        plt.close(fig)


def rss(values: Any) -> float:
    """Root-sum-square of the known values (independent uncertainties added), NaN if none."""
    a = pd.to_numeric(pd.Series(values), errors="coerce").dropna().to_numpy(dtype=float)
    return float(np.sqrt((a * a).sum())) if a.size else math.nan


def _svg(fig: Figure | None) -> str | None:
    return None if fig is None else to_svg(fig)


def series_style(i: int) -> dict[str, Any]:
    """Colour, line style and marker of the i-th series (see :data:`LINE_STYLES`)."""
    return {
        "color": f"C{i % 10}",
        "ls": LINE_STYLES[i % len(LINE_STYLES)],
        "marker": MARKERS[i % len(MARKERS)],
    }


def device_label(device: Any, devices: Mapping[str, str] | None = None) -> str:
    """The short name of a device id for a figure: ``devices[id]`` (index and model, see
    :func:`energybench.report.figures.device_names`), else the id with any UUID shortened."""
    text = str(device)
    if devices and text in devices:
        return devices[text]
    return UUID_RE.sub(lambda m: m.group(0)[:12] + "…", text)


def _height(width_in: float, aspect: float, extra_in: float = 0.0) -> float:
    """A figure height: ``aspect`` x width, taller at one column (where text takes more room)."""
    return width_in * aspect * (1.25 if width_in < 5 else 1.0) + extra_in


def _legend_below(fig: Figure, handles: list[Any], labels: list[str], width_in: float) -> None:
    """A legend under the axes, outside them (constrained layout makes room for it)."""
    if not handles:
        return
    longest = max(len(x) for x in labels)
    per_row = max(1, int(width_in * 12 / max(longest + 4, 8)))
    fig.legend(
        handles, labels, loc="outside lower center", ncols=min(per_row, len(labels)), frameon=False
    )


def _num(v: Any) -> float | None:
    """A finite float, or None for a missing, NaN or non-numeric value."""
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _entry_label(r: Mapping[str, Any]) -> str:
    """An entry's legend text: its name, ``≈`` first when its figures are estimates."""
    return ("≈ " if bool(r.get("is_estimate")) else "") + str(r["entry"])  # a board row (plain map)


# --------------------------------------------------------------------------- lifecycle energy
def lifecycle_band(r: Mapping[str, Any], mui: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """The 95 % band of E(MUI) = TEC + MUI·IEC: TEC ± 2σ with the IEC 95 % CI (J), the lower
    edge clipped at 0 J; None when neither TEC's σ nor the IEC interval is known."""
    tec = _num(r.get("tec_j")) or 0.0  # a board row: a plain map
    sigma = _num(r.get("tec_uncertainty_j"))  # plain map
    lo_i, hi_i = _num(r.get("iec_ci_low_j")), _num(r.get("iec_ci_high_j"))  # plain map
    if sigma is None and (lo_i is None or hi_i is None):
        return None
    iec = float(r["iec_j"])
    s2 = 2 * (sigma or 0.0)
    lo = max(tec - s2, 0.0) + mui * (lo_i if lo_i is not None else iec)
    hi = tec + s2 + mui * (hi_i if hi_i is not None else iec)
    return lo, hi


def energy_vs_mui_figure(
    board: pd.DataFrame,
    muis: list[float],
    break_even: pd.DataFrame | None = None,
    width_in: float = TWO_COLUMN_IN,
) -> Figure | None:
    """(a) Lifecycle energy E(MUI) = TEC + MUI·IEC per entry, log-log, each with its 95 % band;
    break-even crossings marked and labelled with their MUI*; the legend under the axes."""
    rows = board.dropna(subset=["iec_j"]) if "iec_j" in board else board.iloc[0:0]
    if rows.empty or not muis:
        return None
    marks = _break_even_points(break_even, rows, muis)
    lo = min([*muis, *(m for m, _ in marks)]) / 10
    hi = max([*muis, *(m for m, _ in marks)]) * 10
    x = np.logspace(math.log10(lo), math.log10(hi), 200)
    fig, ax = plt.subplots(figsize=(width_in, _height(width_in, 0.55)), layout="constrained")
    lines = [(r, (_num(r["tec_j"]) or 0.0) + x * float(r["iec_j"])) for _, r in rows.iterrows()]
    positive = [float(y[0]) for _, y in lines if y[0] > 0]
    floor = min(positive) / 3 if positive else None
    for i, (r, y) in enumerate(lines):
        st = series_style(i)
        band = lifecycle_band(r, x)
        if band is not None:
            b_lo = np.maximum(band[0], floor) if floor else band[0]
            ax.fill_between(x, b_lo, band[1], color=st["color"], alpha=0.1, lw=0)
        ax.plot(
            x, y, color=st["color"], ls=st["ls"], marker=st["marker"], ms=3.5, lw=1.2,
            markevery=(3 * i % 25, 25), mfc="none" if bool(r["is_estimate"]) else st["color"],
            label=_entry_label(r),
        )  # fmt: skip
    for m in muis:
        ax.axvline(m, color="#bbb", linewidth=0.8, zorder=0)
    if marks:
        mx, my = zip(*marks, strict=True)
        ax.scatter(mx, my, s=40, facecolors="none", edgecolors="k", lw=1.2, zorder=5,
                   label="break-even MUI*")  # fmt: skip
    ax.set_xscale("log")
    ax.set_yscale("log")
    if floor:
        ax.set_ylim(bottom=floor)
    ax.set_xlabel("usage intensity MUI (items over the model's life)")
    ax.set_ylabel("lifecycle energy E (J)")
    ax.grid(True, which="major", alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    _legend_below(fig, handles, labels, width_in)
    if marks:
        _freeze_layout(fig)
        place_labels(ax, marks, [f"MUI* {mui_text(m)}" for m, _ in marks])
    return fig


def _freeze_layout(fig: Figure) -> None:
    """Run the layout once and keep it: labels placed afterwards keep their display positions."""
    _plain_log_ticks(fig)
    fig.draw_without_rendering()
    fig.set_layout_engine("none")


@plain_text
def energy_vs_mui_svg(
    board: pd.DataFrame, muis: list[float], break_even: pd.DataFrame | None = None
) -> str | None:
    """:func:`energy_vs_mui_figure` at the report's width, as inline SVG."""
    return _svg(energy_vs_mui_figure(board, muis, break_even))


def _break_even_points(
    be: pd.DataFrame | None, rows: pd.DataFrame, muis: list[float]
) -> list[tuple[float, float]]:
    """(MUI*, E at MUI*) of each break-even of kind "at" with MUI* > 0."""
    if be is None or be.empty or "mui" not in be:
        return []
    costs = rows.set_index("entry")
    out = []
    for _, b in be.iterrows():
        m = _num(b["mui"])
        if b["kind"] != "at" or m is None or m <= 0 or b["entry"] not in costs.index:
            continue
        c = costs.loc[b["entry"]]
        out.append((m, (_num(c["tec_j"]) or 0.0) + m * float(c["iec_j"])))
    return out


def pareto_front(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Points (cost, quality) not dominated by another (lower cost and higher quality), by cost."""
    front: list[tuple[float, float]] = []
    for cost, q in sorted(points, key=lambda p: (p[0], -p[1])):
        if not front or q > front[-1][1]:
            front.append((cost, q))
    return front


#: Offsets (points) tried for a point's label, nearest first: right, left, above, below, corners.
_LABEL_DIRECTIONS = ((1, 0.3), (-1, 0.3), (0, 1), (0, -1.4), (1, 1), (-1, 1), (1, -1), (-1, -1))


_Box = tuple[float, float, float, float]
#: Display pixels kept free around every label box.
_LABEL_PAD_PX = 3.0
#: A marker's half size (display pixels).
_MARKER_R_PX = 5.0


def _marker_and_bar_boxes(
    ax: Any, markers: list[Any], hbars: Sequence[tuple[float, float, float]]
) -> list[_Box]:
    """Display-space boxes no label may cover: each marker and each horizontal error bar."""
    marker_r = _MARKER_R_PX
    taken: list[_Box] = [
        (x - marker_r, y - marker_r, x + marker_r, y + marker_r) for x, y in markers
    ]
    for x_lo, x_hi, y in hbars:
        (a, b), (c, _d) = ax.transData.transform([(x_lo, y), (x_hi, y)])
        taken.append((min(a, c), b - 1.5, max(a, c), b + 1.5))
    return taken


def _is_free(box: _Box, taken: list[_Box], fig_box: Any) -> bool:
    """Whether ``box`` lies inside the figure and, with its padding, overlaps nothing taken."""
    pad = _LABEL_PAD_PX
    x0, y0, x1, y1 = box
    if x0 < fig_box.x0 or x1 > fig_box.x1 or y0 < fig_box.y0 or y1 > fig_box.y1:
        return False
    return all(
        x1 + pad <= a or a1 + pad <= x0 or y1 + pad <= b or b1 + pad <= y0 for a, b, a1, b1 in taken
    )


def _label_box(
    marker: tuple[float, float],
    size: tuple[float, float],
    px_per_pt: float,
    taken: list[_Box],
    fig_box: Any,
) -> tuple[_Box, int]:
    """The first free box (and its distance in points) for a ``size`` label near ``marker``:
    nearest distance first, then :data:`_LABEL_DIRECTIONS` in order; right of the marker when
    nothing is free."""
    mx, my = marker
    w, h = size
    for dist in (6, 12, 20, 30, 45, 65, 90):
        for dx, dy in _LABEL_DIRECTIONS:
            ox, oy = dx * dist * px_per_pt, dy * dist * px_per_pt
            # anchor: the text's left edge on the right, its right edge on the left
            x0 = mx + ox if dx > 0 else (mx + ox - w if dx < 0 else mx + ox - w / 2)
            y0 = my + oy - h / 2
            box = (x0, y0, x0 + w, y0 + h)
            if _is_free(box, taken, fig_box):
                return box, dist
    # nowhere free: keep it right of the marker (rare, crowded plots)
    return (mx + 6 * px_per_pt, my, mx + 6 * px_per_pt + w, my + h), 6


def place_labels(
    ax: Any,
    points: list[tuple[float, float]],
    labels: list[str],
    hbars: Sequence[tuple[float, float, float]] = (),
) -> list[Any]:
    """Annotate ``points`` (data coordinates) with ``labels`` so that no two labels overlap.

    Greedy: each label takes the first candidate offset (8 directions at growing distances)
    whose box overlaps neither a label placed before it, a marker nor a horizontal error bar
    (``hbars``: (x_lo, x_hi, y) in data coordinates), and stays in the figure; a label with no
    free place falls back to a leader line at the first free farther offset. Call after the
    axes' limits and layout are final (positions are in display space).
    """
    fig = ax.figure
    renderer = fig.canvas.get_renderer()
    markers = [ax.transData.transform(p) for p in points]
    taken = _marker_and_bar_boxes(ax, markers, hbars)
    texts = []
    px_per_pt = fig.dpi / 72.0
    for (x, y), (mx, my), label in zip(points, markers, labels, strict=True):
        probe = ax.text(0, 0, label, fontsize=7, transform=None)
        ext = probe.get_window_extent(renderer)
        probe.remove()
        box, dist = _label_box((mx, my), (ext.width, ext.height), px_per_pt, taken, fig.bbox)
        taken.append(box)
        leader = {"arrowstyle": "-", "lw": 0.5, "color": "0.5"} if dist > 20 else None
        t = ax.annotate(
            label,
            (x, y),
            fontsize=7,
            textcoords="offset points",
            xytext=((box[0] - mx) / px_per_pt, (box[1] - my) / px_per_pt),
            ha="left",
            va="bottom",
            arrowprops=leader,
        )
        texts.append(t)
    return texts


# --------------------------------------------------------------------------- quality vs IEC
def _iec_interval(rows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Each row's IEC 95 % CI (J/item); the IEC itself where no interval is recorded."""
    iec = rows["iec_j"].astype(float).to_numpy()
    lo = rows["iec_ci_low_j"] if "iec_ci_low_j" in rows else pd.Series(np.nan, index=rows.index)
    hi = rows["iec_ci_high_j"] if "iec_ci_high_j" in rows else pd.Series(np.nan, index=rows.index)
    lo_a = pd.to_numeric(lo, errors="coerce").to_numpy(dtype=float)
    hi_a = pd.to_numeric(hi, errors="coerce").to_numpy(dtype=float)
    return np.where(np.isnan(lo_a), iec, np.minimum(lo_a, iec)), np.where(
        np.isnan(hi_a), iec, np.maximum(hi_a, iec)
    )


def _energy_x_axis(ax: Any, lo: float, hi: float, unit: str) -> None:
    """An energy x axis over [lo, hi]: log when it spans a decade and stays above 0, else linear
    from 0; ticks in engineering notation with ``unit``, at least three of them."""
    axis = ax.xaxis
    if lo > 0 and hi / lo >= 10:
        ax.set_xscale("log")
        decades = math.log10(hi / lo)
        subs = (1.0,) if decades > 3 else (1.0, 2.0, 5.0)
        axis.set_major_locator(LogLocator(base=10, subs=subs))
        axis.set_minor_formatter(NullFormatter())
    else:
        axis.set_major_locator(MaxNLocator(5))
        ax.set_xlim(left=0)
    axis.set_major_formatter(FuncFormatter(lambda v, _pos: eng(v, unit) if v else f"0 {unit}"))


def quality_vs_iec_figure(
    board: pd.DataFrame, quality_name: str = "Q", width_in: float = TWO_COLUMN_IN
) -> Figure | None:
    """(b) Quality vs IEC per entry with the IEC 95 % CI as horizontal error bars (group id
    ``iec-error-bars`` in SVG) and the Pareto front as a step line; labels never overlap."""
    if not {"iec_j", "quality"} <= set(board.columns):
        return None
    rows = board.dropna(subset=["iec_j", "quality"])
    rows = rows[rows["iec_j"] > 0]
    if rows.empty:
        return None
    fig, ax = plt.subplots(figsize=(width_in, _height(width_in, 0.5)), layout="constrained")
    x = rows["iec_j"].astype(float).to_numpy()
    y = rows["quality"].astype(float).to_numpy()
    lo, hi = _iec_interval(rows)
    colors = [f"C{i % 10}" for i in range(len(rows))]
    if (hi > lo).any():
        bars = ax.errorbar(x, y, xerr=[x - lo, hi - x], fmt="none", ecolor="0.45",
                           elinewidth=1.0, capsize=2.5, zorder=2)  # fmt: skip
        for coll in bars.lines[2]:
            coll.set_color(colors)  # each bar in its entry's colour (caps stay grey)
            coll.set_gid("iec-error-bars")
    est = rows["is_estimate"].astype(bool).to_numpy() if "is_estimate" in rows else x < 0
    faces = ["none" if e else c for e, c in zip(est, colors, strict=True)]
    ax.scatter(x, y, s=30, facecolors=faces, edgecolors=colors, zorder=3)
    front = pareto_front(list(zip(x, y, strict=True)))
    if front:
        fx, fy = zip(*front, strict=True)
        ax.step(fx, fy, where="post", color="k", lw=1, alpha=0.6)
    _energy_x_axis(ax, float(lo.min()), float(hi.max()), "J")
    ax.set_xlabel("IEC, energy per item (J/item), bars: 95 % CI")
    ax.set_ylabel(f"quality ({quality_name})")
    ax.grid(True, alpha=0.3)
    ax.margins(x=0.15, y=0.2)  # room for labels beside the outermost points
    _freeze_layout(fig)
    place_labels(
        ax, [(float(a), float(b)) for a, b in zip(x, y, strict=True)],
        [_point_label(r) for _, r in rows.iterrows()],
        [(float(a), float(b), float(c)) for a, b, c in zip(lo, hi, y, strict=True) if b > a],
    )  # fmt: skip
    return fig


def _point_label(r: pd.Series) -> str:
    """The entry's name, with its serving backend unless it is eager PyTorch (or already named)."""
    name = str(r["entry"])
    backend = str(r["backend"]) if "backend" in r and isinstance(r["backend"], str) else "eager"
    return name if backend == "eager" else f"{name} [{backend}]"


@plain_text
def quality_vs_iec_svg(board: pd.DataFrame, quality_name: str = "Q") -> str | None:
    """:func:`quality_vs_iec_figure` at the report's width, as inline SVG."""
    return _svg(quality_vs_iec_figure(board, quality_name))


# --------------------------------------------------------------------------- energy by phase
def energy_by_phase_figure(
    by_phase: pd.DataFrame,
    width_in: float = TWO_COLUMN_IN,
    devices: Mapping[str, str] | None = None,
) -> Figure | None:
    """(c) Each entry's own measured energy stacked by phase and device, static part hatched,
    with each entry's total ± 1σ as an error bar (when ``uncertainty_j`` is given).

    ``by_phase``: rows with entry, phase, device, static_j, dynamic_j, energy_j and optionally
    uncertainty_j (J).
    """
    if by_phase.empty or "energy_j" not in by_phase or by_phase["energy_j"].fillna(0).eq(0).all():
        return None
    df = by_phase.fillna({"static_j": 0.0, "dynamic_j": 0.0, "energy_j": 0.0})
    entries = list(dict.fromkeys(df["entry"]))
    keys = sorted(
        {(p, d) for p, d in zip(df["phase"], df["device"], strict=True)},
        key=lambda k: (PHASES.index(k[0]) if k[0] in PHASES else 9, str(k[1])),
    )
    colors = plt.get_cmap("tab20")
    legend_rows = math.ceil((len(keys) + 1) / (1 if width_in < 5 else 2))
    size = (width_in, 0.8 + 0.32 * len(entries) + 0.16 * legend_rows)
    fig, ax = plt.subplots(figsize=size, layout="constrained")
    left = np.zeros(len(entries))
    for i, (phase, device) in enumerate(keys):
        part = (
            df[(df["phase"] == phase) & (df["device"] == device)]
            .groupby("entry")
            .sum(numeric_only=True)
        )
        static, dynamic = (
            np.array([_nonneg(part, e, col) for e in entries]) for col in ("static_j", "dynamic_j")
        )
        total = np.array([_nonneg(part, e, "energy_j") for e in entries])
        dynamic = np.where(static + dynamic > 0, dynamic, total)  # no split known: all "dynamic"
        c = colors(i % 20)
        ax.barh(entries, static, left=left, color=c, alpha=0.45, hatch="//", edgecolor="w")
        left += static
        ax.barh(
            entries, dynamic, left=left, color=c, label=f"{phase} · {device_label(device, devices)}"
        )
        left += dynamic
    if "uncertainty_j" in df:
        sigma = df.groupby("entry")["uncertainty_j"].agg(rss)
        err = np.array([_num(sigma.get(e)) or 0.0 for e in entries])  # a plain Series
        if (err > 0).any():
            bars = ax.errorbar(left, np.arange(len(entries)), xerr=err, fmt="none", ecolor="k",
                               elinewidth=0.9, capsize=2.5, zorder=4)  # fmt: skip
            for coll in bars.lines[2]:
                coll.set_gid("energy-error-bars")
    handles, labels = ax.get_legend_handles_labels()
    handles.append(Patch(facecolor="#999", alpha=0.45, hatch="//", edgecolor="w"))
    labels.append("static (idle) part, hatched")
    _legend_below(fig, handles, labels, width_in)
    ax.invert_yaxis()
    ax.set_xlabel("energy (J); bars: total ± 1σ")
    ax.grid(True, axis="x", alpha=0.3)
    return fig


@plain_text
def energy_by_phase_svg(
    by_phase: pd.DataFrame, devices: Mapping[str, str] | None = None
) -> str | None:
    """:func:`energy_by_phase_figure` at the report's width, as inline SVG."""
    return _svg(energy_by_phase_figure(by_phase, devices=devices))


def _nonneg(part: pd.DataFrame, entry: str, col: str) -> float:
    if entry not in part.index or col not in part:
        return 0.0
    v = part.loc[entry, col]
    return max(float(v), 0.0) if pd.notna(v) else 0.0


# --------------------------------------------------------------------------- power traces
def read_traces(run_dir: Path) -> pd.DataFrame:
    """All power trace rows of a run (``traces/*.csv``, columns ``TRACE_COLUMNS``), or empty."""
    frames = []
    for path in sorted((Path(run_dir) / "traces").glob("*.csv")):
        try:
            df = pd.read_csv(path)
        except (OSError, ValueError, pd.errors.EmptyDataError):
            continue
        if {"unix_s", "device", "power_w"} <= set(df.columns) and not df.empty:
            frames.append(df[[c for c in TRACE_COLUMNS if c in df.columns]])
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def power_traces_figure(
    traces: pd.DataFrame,
    windows: pd.DataFrame,
    width_in: float = TWO_COLUMN_IN,
    devices: Mapping[str, str] | None = None,
) -> Figure | None:
    """(d) Sampled power per phase (one panel each): W vs seconds into the window, per
    entry/device; each panel's legend beside it (two columns) or under it (one column).

    ``windows``: rows with entry, phase, window, start_unix_s, duration_s (one per window).
    """
    if traces.empty or windows.empty or "start_unix_s" not in windows:
        return None
    panels: dict[str, list[tuple[str, pd.DataFrame]]] = {}
    for _, w in windows.dropna(subset=["start_unix_s", "duration_s"]).iterrows():
        t0, t1 = w["start_unix_s"], w["start_unix_s"] + w["duration_s"]
        sel = traces[(traces["unix_s"] >= t0) & (traces["unix_s"] <= t1)]
        for device, g in sel.groupby("device"):
            if len(g) >= 2:
                g = g.assign(t_s=g["unix_s"] - t0)
                label = f"{w['entry']} {w['window']} · {device_label(device, devices)}"
                panels.setdefault(w["phase"], []).append((label, g))
    if not panels:
        return None
    names = [p for p in PHASES if p in panels] + [p for p in panels if p not in PHASES]
    narrow = width_in < 5
    shown = {p: panels[p][:12] for p in names}
    heights = [1.5 + (0.13 * len(shown[p]) + 0.2 if narrow else 0.0) for p in names]
    fig, axes = plt.subplots(
        len(names), 1, figsize=(width_in, sum(heights)), squeeze=False, layout="constrained",
        gridspec_kw={"height_ratios": heights},
    )  # fmt: skip
    for ax, phase in zip(axes[:, 0], names, strict=True):
        for i, (label, g) in enumerate(shown[phase]):
            st = series_style(i)
            ax.plot(g["t_s"], g["power_w"], lw=0.9, color=st["color"], ls=st["ls"], label=label)
        ax.set_ylabel("power (W)")
        ax.grid(True, alpha=0.3)
        if narrow:  # the legend above its panel, titled with the phase
            ax.legend(title=phase, loc="lower center", bbox_to_anchor=(0.5, 1.0), fontsize=6,
                      title_fontsize=8, frameon=False)  # fmt: skip
        else:
            ax.set_title(phase)
            ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=6, frameon=False)
    axes[-1, 0].set_xlabel("seconds since the window opened")
    return fig


@plain_text
def power_traces_svg(
    traces: pd.DataFrame, windows: pd.DataFrame, devices: Mapping[str, str] | None = None
) -> str | None:
    """:func:`power_traces_figure` at the report's width, as inline SVG."""
    return _svg(power_traces_figure(traces, windows, devices=devices))


# --------------------------------------------------------------------------- latency
def latency_figure(scenarios: pd.DataFrame, width_in: float = TWO_COLUMN_IN) -> Figure | None:
    """(e) Latency per entry and scenario from the recorded percentiles (raw latencies are not
    stored): box p50–p90 with the median at p50, whiskers min–p99, a dot at the maximum."""
    need = {"latency_p50_ms", "latency_p90_ms", "latency_p99_ms"}
    if scenarios.empty or not need <= set(scenarios.columns):
        return None
    rows = scenarios.dropna(subset=sorted(need))
    if rows.empty:
        return None
    stats = []
    for _, r in rows.iterrows():
        batch = _num(r["batch_size"]) if "batch_size" in r else None
        b = f" b{int(batch)}" if batch is not None else ""
        lo = _num(r["latency_min_ms"]) if "latency_min_ms" in r else None
        hi = _num(r["latency_max_ms"]) if "latency_max_ms" in r else None
        stats.append(
            {
                "label": f"{r['entry']}\n{r['scenario']}{b}",
                "whislo": r["latency_p50_ms"] if lo is None else lo,
                "q1": r["latency_p50_ms"],
                "med": r["latency_p50_ms"],
                "q3": r["latency_p90_ms"],
                "whishi": r["latency_p99_ms"],
                "fliers": [r["latency_p99_ms"] if hi is None else hi],
            }
        )
    fig, ax = plt.subplots(figsize=(width_in, _height(width_in, 0.5)), layout="constrained")
    ax.bxp(stats, showmeans=False, showfliers=True)
    ax.set_yscale("log")
    ax.set_ylabel("latency per item (ms)")
    ax.tick_params(axis="x", labelsize=6 if width_in < 5 or len(stats) > 8 else 7)
    if width_in < 5 and len(stats) > 4:
        ax.tick_params(axis="x", labelrotation=60)
    ax.grid(True, axis="y", alpha=0.3)
    return fig


@plain_text
def latency_svg(scenarios: pd.DataFrame) -> str | None:
    """:func:`latency_figure` at the report's width, as inline SVG."""
    return _svg(latency_figure(scenarios))


# --------------------------------------------------------------------------- adaptive serving
def adaptive_timeline_figure(sc: AdaptiveResult, width_in: float = TWO_COLUMN_IN) -> Figure | None:
    """Timeline of an ``adaptive`` scenario record: achieved fps per second (each policy run,
    target dashed), the variant serving each frame, misses, and the declared contention."""
    runs = sc.runs
    if not runs:
        return None
    variants = list(sc.variants)
    fig, (ax_fps, ax_var, ax_con) = plt.subplots(
        3, 1, figsize=(width_in, _height(width_in, 0.75)), sharex=True, layout="constrained",
        gridspec_kw={"height_ratios": [3, 2, 1]},
    )  # fmt: skip
    for i, (name, r) in enumerate(runs.items()):
        st = series_style(i)
        tl = r.fps_timeline
        if tl:
            ax_fps.step(
                [p.t_s for p in tl] + [tl[-1].t_s + 1],
                [p.fps for p in tl] + [tl[-1].fps],
                where="post", color=st["color"], ls=st["ls"],
                label=f"{name}: miss rate {r.deadline_miss_rate or 0:.0%}",
            )  # fmt: skip
        pf = r.per_frame
        t = pf.t_s
        ax_var.step(t, pf.variant, where="post", color=st["color"], ls=st["ls"], lw=1.2)
        miss_t = [x for x, m in zip(t, pf.missed, strict=False) if m]
        miss_v = [v for v, m in zip(pf.variant, pf.missed, strict=False) if m]
        ax_var.scatter(miss_t, [v + 0.08 * (i + 1) for v in miss_v], s=6, color=st["color"],
                       marker="x")  # fmt: skip
    target = sc.target_fps
    if target:
        ax_fps.axhline(target, color="k", ls="--", lw=0.8, label=f"target {target:g} fps")
    ax_fps.set_ylabel("achieved fps")
    ax_fps.grid(True, alpha=0.3)
    ax_var.set_yticks(range(len(variants)))
    ax_var.set_yticklabels(variants, fontsize=7)
    ax_var.invert_yaxis()
    ax_var.set_ylabel("variant")
    ax_var.grid(True, alpha=0.3)
    con = sc.contention
    end = float(sc.duration_s or 0)
    xs = [0.0] + [float(c["at_s"]) for c in con] + [end]
    ys = [0] + [int(c["threads"]) for c in con]
    ax_con.step(xs, ys + [ys[-1]], where="post", color="0.3")
    ax_con.fill_between(xs, ys + [ys[-1]], step="post", color="0.8")
    ax_con.set_ylabel("contention\nworkers")
    ax_con.set_xlabel("time into the stream (s)")
    handles, labels = ax_fps.get_legend_handles_labels()
    _legend_below(fig, handles, labels, width_in)
    return fig


@plain_text
def adaptive_timeline_svg(sc: AdaptiveResult) -> str | None:
    """:func:`adaptive_timeline_figure` at the report's width, as inline SVG."""
    return _svg(adaptive_timeline_figure(sc))
