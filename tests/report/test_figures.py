"""Figures for papers: `report --figures` files, error bars, legends outside the axes, line
styles, break-even marks and short device names (never a GPU UUID)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import LineCollection, PolyCollection
from matplotlib.figure import Figure
from matplotlib.text import Text
from typer.testing import CliRunner

from energybench.cli import app
from energybench.records.store import load_run
from energybench.report import plots
from energybench.report.figures import WIDTHS_IN, device_footnote, device_names, run_figures
from energybench.report.tables import leaderboard
from tests.helpers.report import tiny_run

RC = {**plots.PAPER_RC, **plots.PLAIN_TEXT}


@pytest.fixture(autouse=True)
def _close_figures() -> Iterator[None]:
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def run_dir() -> Path:
    return tiny_run()


@pytest.fixture(scope="module")
def gpu_run_dir() -> Path:
    return tiny_run("h100")  # one simulated H100, read through the fake NVML


def _figures(run_dir: Path) -> list[tuple[str, float, Figure]]:
    out = []
    with matplotlib.rc_context(RC):  # type: ignore[arg-type]
        for spec in run_figures(load_run(run_dir)):
            for inches in WIDTHS_IN.values():
                fig = spec.draw(inches)
                if fig is not None:
                    out.append((spec.slug, inches, fig))
    return out


def _legends_over_axes(fig: Figure) -> list[str]:
    """First label of each legend whose box overlaps an axes' data area."""
    fig.draw_without_rendering()
    renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
    legends = [*fig.legends, *(ax.get_legend() for ax in fig.axes if ax.get_legend())]
    return [
        leg.get_texts()[0].get_text()
        for leg in legends
        if any(
            leg.get_window_extent(renderer).overlaps(ax.get_window_extent(renderer))
            for ax in fig.axes
        )
    ]


def test_report_figures_writes_svg_and_pdf_at_both_paper_widths(
    run_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "figs"
    res = CliRunner().invoke(
        app, ["report", str(run_dir), "-o", str(tmp_path / "r.html"), "--figures", str(out)]
    )
    assert res.exit_code == 0, res.output
    drawn = [s.slug for s in run_figures(load_run(run_dir)) if s.draw(3.5) is not None]
    assert {"lifecycle-energy", "quality-vs-iec", "energy-by-phase", "latency"} <= set(drawn)
    for slug in drawn:
        for width, inches in WIDTHS_IN.items():
            svg = (out / f"{slug}-{width}.svg").read_text()
            assert f'width="{inches * 72:g}pt"' in svg, (slug, width)
            assert (out / f"{slug}-{width}.pdf").read_bytes()[:5] == b"%PDF-"
    index = (out / "figures.md").read_text()
    assert "quality-vs-iec-1col.pdf" in index and "No data" not in index
    assert "Power traces**: not drawn: no power trace" in index  # a CPU run has none


def test_report_figures_refuses_a_file_as_its_folder(run_dir: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "figs"
    blocker.write_text("x")
    res = CliRunner().invoke(
        app, ["report", str(run_dir), "-o", str(tmp_path / "r.html"), "--figures", str(blocker)]
    )
    assert res.exit_code == 2 and "--figures" in res.output


def test_quality_vs_iec_has_each_entrys_95_ci_as_error_bars(run_dir: Path) -> None:
    board = leaderboard(load_run(run_dir)).dropna(subset=["iec_j", "quality"])
    with matplotlib.rc_context(RC):  # type: ignore[arg-type]
        fig = plots.quality_vs_iec_figure(board, "psnr_db")
    assert fig is not None
    (bars,) = [c for c in fig.axes[0].collections if c.get_gid() == "iec-error-bars"]
    assert isinstance(bars, LineCollection)
    spans = sorted((float(s[:, 0].min()), float(s[:, 0].max())) for s in bars.get_segments())
    expected = sorted(zip(board["iec_ci_low_j"], board["iec_ci_high_j"], strict=True))
    np.testing.assert_allclose(spans, expected, rtol=1e-9)
    assert fig.axes[0].get_xaxis().get_label().get_text().startswith("IEC")
    assert len([t for t in fig.axes[0].get_xticklabels() if t.get_text()]) >= 3


@pytest.mark.parametrize("which", ["cpu", "gpu"])
def test_no_legend_covers_data_at_either_width(
    which: str, run_dir: Path, gpu_run_dir: Path
) -> None:
    figures = _figures(run_dir if which == "cpu" else gpu_run_dir)
    assert len(figures) >= 8
    covered = {(slug, w): _legends_over_axes(fig) for slug, w, fig in figures}
    assert {k: v for k, v in covered.items() if v} == {}


def test_gpu_figures_name_devices_by_index_and_model_never_by_uuid(gpu_run_dir: Path) -> None:
    run = load_run(gpu_run_dir)
    names = device_names(run)
    assert list(names.values()) == ["GPU0 H100 80GB HBM3"]
    (foot,) = device_footnote(run)
    assert foot["label"] == "GPU0 H100 80GB HBM3" and plots.UUID_RE.fullmatch(foot["uuid"])
    texts = [t.get_text() for _slug, _w, fig in _figures(gpu_run_dir) for t in fig.findobj(Text)]
    assert not [t for t in texts if plots.UUID_RE.search(t)]
    assert any("GPU0 H100 80GB HBM3" in t for t in texts)


def test_a_device_id_without_a_name_loses_its_uuid() -> None:
    uuid = "GPU-0badf00d-5151-4e00-8000-000000000001"
    assert plots.device_label(f"gpu:{uuid}") == "gpu:GPU-0badf00d…"
    assert plots.device_label(f"gpu:{uuid}", {f"gpu:{uuid}": "GPU1 A100"}) == "GPU1 A100"


def _board(n: int) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "entry": [f"e{i}" for i in range(n)],
            "tec_j": [1000.0 * (i + 1) for i in range(n)],
            "tec_uncertainty_j": [50.0] * n,
            "iec_j": [1.0 / (i + 1) for i in range(n)],
            "iec_ci_low_j": [0.9 / (i + 1) for i in range(n)],
            "iec_ci_high_j": [1.1 / (i + 1) for i in range(n)],
            "is_estimate": [False] * n,
        }
    )


def test_lifecycle_lines_differ_in_style_and_carry_a_95_band() -> None:
    board = _board(6)
    with matplotlib.rc_context(RC):  # type: ignore[arg-type]
        fig = plots.energy_vs_mui_figure(board, [1e3, 1e6])
    assert fig is not None
    ax = fig.axes[0]
    lines = [ln for ln in ax.get_lines() if ln.get_label() in set(board["entry"])]
    styles = {(ln.get_color(), ln.get_linestyle(), ln.get_marker()) for ln in lines}
    assert len(lines) == len(styles) == 6
    assert {ln.get_linestyle() for ln in lines} >= {"-", "--", "-.", ":"}
    bands = [c for c in ax.collections if isinstance(c, PolyCollection)]
    assert len(bands) == 6
    # the band of e0 at MUI = 1e3: TEC ± 2σ plus MUI x the IEC interval
    lo, hi = plots.lifecycle_band(board.iloc[0], np.array([1e3]))
    assert (lo[0], hi[0]) == pytest.approx((900.0 + 900.0, 1100.0 + 1100.0))
    assert ax.get_legend() is None and len(fig.legends) == 1  # the legend sits under the axes


def test_break_even_crossings_are_marked_and_labelled() -> None:
    board = _board(2)  # e0: 1000 J + 1 J/item, e1: 2000 J + 0.5 J/item: they cross at 2000
    be = pd.DataFrame([{"entry": "e1", "other": "e0", "kind": "at", "mui": 2000.0}])
    with matplotlib.rc_context(RC):  # type: ignore[arg-type]
        fig = plots.energy_vs_mui_figure(board, [1e3], be)
    assert fig is not None
    ax = fig.axes[0]
    (marks,) = [c for c in ax.collections if c.get_label() == "break-even MUI*"]
    np.testing.assert_allclose(marks.get_offsets(), [[2000.0, 3000.0]])
    assert [t.get_text() for t in ax.texts] == ["MUI* 2k"]


def test_energy_by_phase_has_each_entrys_total_error_bar() -> None:
    by_phase = pd.DataFrame(
        [
            {"entry": "a", "phase": "train", "device": "gpu:x", "energy_j": 100.0,
             "static_j": 40.0, "dynamic_j": 60.0, "uncertainty_j": 3.0},
            {"entry": "a", "phase": "serve", "device": "gpu:x", "energy_j": 50.0,
             "static_j": 10.0, "dynamic_j": 40.0, "uncertainty_j": 4.0},
        ]
    )  # fmt: skip
    with matplotlib.rc_context(RC):  # type: ignore[arg-type]
        fig = plots.energy_by_phase_figure(by_phase)
    assert fig is not None
    (bars,) = [c for c in fig.axes[0].collections if c.get_gid() == "energy-error-bars"]
    (seg,) = bars.get_segments()
    assert (seg[0][0], seg[1][0]) == pytest.approx((150.0 - 5.0, 150.0 + 5.0))  # 1σ: √(3²+4²)


def test_figure_text_is_never_parsed_as_math() -> None:
    board = _board(2).assign(entry=["$\\undefined$", "a^b_c"], quality=[1.0, 2.0])
    for inches in WIDTHS_IN.values():
        with matplotlib.rc_context(RC):  # type: ignore[arg-type]
            for fig in (
                plots.energy_vs_mui_figure(board, [1e3], width_in=inches),
                plots.quality_vs_iec_figure(board, width_in=inches),
            ):
                assert fig is not None
                assert "$\\undefined$" in plots.to_svg(fig)


def test_several_runs_get_a_folder_each(run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "figs"
    res = CliRunner().invoke(
        app,
        [
            "report",
            str(run_dir),
            str(run_dir),
            "-o",
            str(tmp_path / "r.html"),
            "--figures",
            str(out),
        ],
    )
    assert res.exit_code == 0, res.output
    folders = sorted(p.name for p in out.iterdir() if p.is_dir())
    assert folders == [run_dir.name, f"{run_dir.name}-2"]
    for f in folders:
        assert (out / f / "quality-vs-iec-1col.pdf").exists()
