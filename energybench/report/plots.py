"""The report's figures: matplotlib (Agg) rendered to inline SVG strings.

Each function takes tidy tables (from :mod:`energybench.report.tables`) and returns an ``<svg>``
string, or None when there is nothing to draw (the report then says why). Nothing here reads
the run store except :func:`power_traces_svg`, which reads the trace CSVs of a run directory.

All text is plain text: entry and scenario names come from users, and a name such as
``$\\undefined$`` must not be parsed as mathtext (or LaTeX), which would fail after the run's
work is done. Every figure is drawn under :data:`PLAIN_TEXT` (``text.parse_math=False``,
``text.usetex=False``); do not use ``$...$`` markup in labels here.
"""

from __future__ import annotations

import functools
import io
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any, ParamSpec, TypeVar, cast

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402
from matplotlib.ticker import FuncFormatter, NullFormatter  # noqa: E402

from energybench.meters.sampler import TRACE_COLUMNS  # noqa: E402
from energybench.records.phases import PHASES
from energybench.records.types import AdaptiveResult  # noqa: E402
from energybench.report.units import eng  # noqa: E402

#: rcParams every figure is drawn with: user strings are never parsed as math or LaTeX
PLAIN_TEXT = {"text.parse_math": False, "text.usetex": False}

_P = ParamSpec("_P")
_R = TypeVar("_R")


def plain_text(fn: Callable[_P, _R]) -> Callable[_P, _R]:
    """Run a figure function with :data:`PLAIN_TEXT` (text objects are created and drawn in it)."""

    @functools.wraps(fn)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        with matplotlib.rc_context(cast(Any, PLAIN_TEXT)):
            return fn(*args, **kwargs)

    return wrapper


def short_tick(v: float) -> str:
    """A log-axis tick label in plain text that stays short: ``0.01``, ``100``, ``10k``, ``1M``
    (nine decades fit under a 250-pixel axis without overlapping)."""
    return eng(v, "").replace(" ", "") if abs(v) >= 1000 else f"{v:g}"


def _plain_log_ticks(fig: Figure) -> None:
    """Log axes label their ticks in plain text (``1k``, ``0.01``): matplotlib's default log
    labels are mathtext (``$\\mathdefault{10^{3}}$``), shown raw under :data:`PLAIN_TEXT`."""
    from matplotlib.ticker import FuncFormatter, NullFormatter

    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            if axis.get_scale() == "log":
                axis.set_major_formatter(FuncFormatter(lambda v, _pos: short_tick(v)))
                axis.set_minor_formatter(NullFormatter())


def to_svg(fig: Figure) -> str:
    """The figure as an inline ``<svg>`` element (XML prologue and doctype dropped)."""
    _plain_log_ticks(fig)
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None})
    plt.close(fig)
    svg = buf.getvalue()
    return svg[svg.index("<svg") :]


def _linestyle(is_estimate: Any) -> str:
    return "--" if bool(is_estimate) else "-"


@plain_text
def energy_vs_mui_svg(
    board: pd.DataFrame, muis: list[float], break_even: pd.DataFrame | None = None
) -> str | None:
    """(a) Lifecycle energy E(MUI) = TEC + MUI·IEC per entry, log-log; break-even points marked."""
    rows = board.dropna(subset=["iec_j"]) if "iec_j" in board else board.iloc[0:0]
    if rows.empty or not muis:
        return None
    marks = _break_even_points(break_even, rows, muis)
    lo = min([*muis, *(m for m, _ in marks)]) / 10
    hi = max([*muis, *(m for m, _ in marks)]) * 10
    x = np.logspace(math.log10(lo), math.log10(hi), 200)
    fig, ax = plt.subplots(figsize=(7, 4))
    for _, r in rows.iterrows():
        tec = r["tec_j"] if pd.notna(r["tec_j"]) else 0.0
        ax.plot(x, tec + x * r["iec_j"], label=str(r["entry"]), ls=_linestyle(r["is_estimate"]))
    for m in muis:
        ax.axvline(m, color="#bbb", linewidth=0.8)
    if marks:
        ax.scatter(*zip(*marks, strict=True), marker="o", color="k", zorder=5, label="break-even")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("usage intensity MUI (items over the model's life)")
    ax.set_ylabel("lifecycle energy E (J)")
    ax.legend(fontsize=7)
    ax.grid(True, which="major", alpha=0.3)
    fig.tight_layout()
    return to_svg(fig)


def _break_even_points(
    be: pd.DataFrame | None, rows: pd.DataFrame, muis: list[float]
) -> list[tuple[float, float]]:
    """(MUI*, E at MUI*) of each break-even of kind "at" with MUI* > 0."""
    if be is None or be.empty or "mui" not in be:
        return []
    costs = rows.set_index("entry")
    out = []
    for _, b in be.iterrows():
        m = b["mui"]
        if b["kind"] != "at" or m is None or pd.isna(m) or m <= 0 or b["entry"] not in costs.index:
            continue
        c = costs.loc[b["entry"]]
        tec = c["tec_j"] if pd.notna(c["tec_j"]) else 0.0
        out.append((float(m), float(tec + m * c["iec_j"])))
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


def place_labels(ax: Any, points: list[tuple[float, float]], labels: list[str]) -> list[Any]:
    """Annotate ``points`` (data coordinates) with ``labels`` so that no two labels overlap.

    Greedy: each label takes the first candidate offset (8 directions at growing distances)
    whose box overlaps neither a label placed before it nor a marker, and stays in the figure;
    a label with no free place falls back to a leader line at the first free farther offset.
    Call after the axes' limits and layout are final (positions are in display space).
    """
    fig = ax.figure
    renderer = fig.canvas.get_renderer()
    fig_box = fig.bbox
    markers = [ax.transData.transform(p) for p in points]
    pad = 3.0  # px around every box
    marker_r = 5.0  # px: a marker's half size
    taken: list[tuple[float, float, float, float]] = [
        (x - marker_r, y - marker_r, x + marker_r, y + marker_r) for x, y in markers
    ]
    texts = []

    def free(box: tuple[float, float, float, float]) -> bool:
        x0, y0, x1, y1 = box
        if x0 < fig_box.x0 or x1 > fig_box.x1 or y0 < fig_box.y0 or y1 > fig_box.y1:
            return False
        return all(
            x1 + pad <= a or a1 + pad <= x0 or y1 + pad <= b or b1 + pad <= y0
            for a, b, a1, b1 in taken
        )

    px_per_pt = fig.dpi / 72.0
    for (x, y), (mx, my), label in zip(points, markers, labels, strict=True):
        probe = ax.text(0, 0, label, fontsize=7, transform=None)
        ext = probe.get_window_extent(renderer)
        probe.remove()
        w, h = ext.width, ext.height
        chosen = None
        for dist in (6, 12, 20, 30, 45, 65, 90):
            for dx, dy in _LABEL_DIRECTIONS:
                ox, oy = dx * dist * px_per_pt, dy * dist * px_per_pt
                # anchor: the text's left edge on the right, its right edge on the left
                x0 = mx + ox if dx > 0 else (mx + ox - w if dx < 0 else mx + ox - w / 2)
                y0 = my + oy - h / 2
                box = (x0, y0, x0 + w, y0 + h)
                if free(box):
                    chosen = (box, dist)
                    break
            if chosen:
                break
        if chosen is None:  # nowhere free: keep it right of the marker (rare, crowded plots)
            chosen = ((mx + 6 * px_per_pt, my, mx + 6 * px_per_pt + w, my + h), 6)
        box, dist = chosen
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


def quality_vs_iec_figure(board: pd.DataFrame, quality_name: str = "Q") -> Figure | None:
    """The figure behind :func:`quality_vs_iec_svg` (labels placed so that none overlap)."""
    if not {"iec_j", "quality"} <= set(board.columns):
        return None
    rows = board.dropna(subset=["iec_j", "quality"])
    rows = rows[rows["iec_j"] > 0]
    if rows.empty:
        return None
    fig, ax = plt.subplots(figsize=(7, 4))
    for i, (_, r) in enumerate(rows.iterrows()):
        c = f"C{i % 10}"
        face = "none" if bool(r["is_estimate"]) else c
        ax.scatter(r["iec_j"], r["quality"], s=36, facecolors=face, edgecolors=c, zorder=3)
    front = pareto_front(list(zip(rows["iec_j"], rows["quality"], strict=True)))
    if front:
        fx, fy = zip(*front, strict=True)
        ax.step(fx, fy, where="post", color="k", lw=1, alpha=0.6, label="Pareto front")
        ax.legend(fontsize=7)
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: eng(v, "J")))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("IEC (energy per item)")
    ax.set_ylabel(f"quality ({quality_name})")
    ax.grid(True, alpha=0.3)
    ax.margins(x=0.25, y=0.2)  # room for labels beside the outermost points
    fig.tight_layout()
    place_labels(
        ax,
        [(float(a), float(b)) for a, b in zip(rows["iec_j"], rows["quality"], strict=True)],
        [_point_label(r) for _, r in rows.iterrows()],
    )
    return fig


def _point_label(r: pd.Series) -> str:
    """The entry's name, with its serving backend unless it is eager PyTorch (or already named)."""
    name, backend = str(r["entry"]), str(r.get("backend") or "eager")  # a plain map: may lack it
    return name if backend == "eager" else f"{name} [{backend}]"


@plain_text
def quality_vs_iec_svg(board: pd.DataFrame, quality_name: str = "Q") -> str | None:
    """(b) Quality vs IEC (J/item, log x) per entry, with the Pareto front drawn as a step line;
    entry labels never overlap (see :func:`place_labels`)."""
    fig = quality_vs_iec_figure(board, quality_name)
    return None if fig is None else to_svg(fig)


@plain_text
def energy_by_phase_svg(by_phase: pd.DataFrame) -> str | None:
    """(c) Each entry's own measured energy stacked by phase and device; static part hatched.

    ``by_phase``: rows with entry, phase, device, static_j, dynamic_j, energy_j (J).
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
    fig, ax = plt.subplots(figsize=(7, 0.5 + 0.45 * len(entries) + 0.2 * len(keys)))
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
        ax.barh(entries, dynamic, left=left, color=c, label=f"{phase} · {device}")
        left += dynamic
    handles, labels = ax.get_legend_handles_labels()
    handles.append(Patch(facecolor="#999", alpha=0.45, hatch="//", edgecolor="w"))
    labels.append("static (idle) part, hatched")
    ax.legend(handles, labels, fontsize=7, loc="lower right")
    ax.invert_yaxis()
    ax.set_xlabel("energy (J) — each entry's own windows, shared upstream costs not repeated")
    ax.grid(True, axis="x", alpha=0.3)
    fig.tight_layout()
    return to_svg(fig)


def _nonneg(part: pd.DataFrame, entry: str, col: str) -> float:
    if entry not in part.index or col not in part:
        return 0.0
    v = part.loc[entry, col]
    return max(float(v), 0.0) if pd.notna(v) else 0.0


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


@plain_text
def power_traces_svg(traces: pd.DataFrame, windows: pd.DataFrame) -> str | None:
    """(d) Sampled power per phase (one panel each): W vs seconds into the window, per entry/device.

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
                label = f"{w['entry']} {w['window']} · {device}"
                panels.setdefault(w["phase"], []).append((label, g))
    if not panels:
        return None
    names = [p for p in PHASES if p in panels] + [p for p in panels if p not in PHASES]
    fig, axes = plt.subplots(len(names), 1, figsize=(7, 2.3 * len(names)), squeeze=False)
    for ax, phase in zip(axes[:, 0], names, strict=True):
        for label, g in panels[phase][:12]:
            ax.plot(g["t_s"], g["power_w"], lw=0.9, label=label)
        ax.set_title(phase, fontsize=9)
        ax.set_ylabel("power (W)")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=6)
    axes[-1, 0].set_xlabel("seconds since the window opened")
    fig.tight_layout()
    return to_svg(fig)


@plain_text
def latency_svg(scenarios: pd.DataFrame) -> str | None:
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
        b = f" b{int(r['batch_size'])}" if pd.notna(r["batch_size"]) else ""
        lo = r["latency_min_ms"] if pd.notna(r["latency_min_ms"]) else r["latency_p50_ms"]
        hi = r["latency_max_ms"] if pd.notna(r["latency_max_ms"]) else r["latency_p99_ms"]
        stats.append(
            {
                "label": f"{r['entry']}\n{r['scenario']}{b}",
                "whislo": lo,
                "q1": r["latency_p50_ms"],
                "med": r["latency_p50_ms"],
                "q3": r["latency_p90_ms"],
                "whishi": r["latency_p99_ms"],
                "fliers": [hi],
                "mean": r["latency_mean_ms"],
            }
        )
    fig, ax = plt.subplots(figsize=(max(5.0, 0.9 * len(stats) + 1), 4))
    ax.bxp(stats, showmeans=False, showfliers=True)
    ax.set_yscale("log")
    ax.set_ylabel("latency per item (ms)")
    ax.tick_params(axis="x", labelsize=7)
    ax.grid(True, axis="y", alpha=0.3)
    fig.tight_layout()
    return to_svg(fig)


@plain_text
def adaptive_timeline_svg(sc: AdaptiveResult) -> str | None:
    """Timeline of an ``adaptive`` scenario record: achieved fps per second (each policy run,
    target dashed), the variant serving each frame, misses, and the declared contention."""
    runs = sc.runs
    if not runs:
        return None
    variants = list(sc.variants)
    fig, (ax_fps, ax_var, ax_con) = plt.subplots(
        3, 1, figsize=(7, 5), sharex=True, gridspec_kw={"height_ratios": [3, 2, 1]}
    )
    for i, (name, r) in enumerate(runs.items()):
        c = f"C{i % 10}"
        tl = r.fps_timeline
        if tl:
            ax_fps.step(
                [p.t_s for p in tl] + [tl[-1].t_s + 1],
                [p.fps for p in tl] + [tl[-1].fps],
                where="post",
                color=c,
                label=f"{name}: miss rate {r.deadline_miss_rate or 0:.0%}",
            )
        pf = r.per_frame
        t = pf.t_s
        ax_var.step(t, pf.variant, where="post", color=c, lw=1.2, label=name)
        miss_t = [x for x, m in zip(t, pf.missed, strict=False) if m]
        miss_v = [v for v, m in zip(pf.variant, pf.missed, strict=False) if m]
        ax_var.scatter(miss_t, [v + 0.08 * (i + 1) for v in miss_v], s=6, color=c, marker="x")
    target = sc.target_fps
    if target:
        ax_fps.axhline(target, color="k", ls="--", lw=0.8, label=f"target {target:g} fps")
    ax_fps.set_ylabel("achieved fps")
    ax_fps.legend(fontsize=7, loc="lower left")
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
    ax_con.set_ylabel("contention\nworkers", fontsize=8)
    ax_con.set_xlabel("time into the stream (s)")
    fig.tight_layout()
    return to_svg(fig)
