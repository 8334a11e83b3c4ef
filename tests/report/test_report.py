"""The HTML report: self-contained, escaped, every entry and plot, client-side ranking/sorting."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from energybench import __version__
from energybench.cli import app
from energybench.records.store import load_run
from energybench.report import plots
from energybench.report.html import render_report
from energybench.report.tables import leaderboard, phase_rows
from tests.helpers.report import ENTRIES, XSS, tiny_run

CHROMIUM = Path("/usr/bin/chromium")
needs_chromium = pytest.mark.skipif(not CHROMIUM.exists(), reason="no /usr/bin/chromium")


@pytest.fixture(scope="module")
def run_dir() -> Path:
    return tiny_run()


@pytest.fixture(scope="module")
def page(run_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    html = tmp_path_factory.mktemp("report") / "report.html"
    res = CliRunner().invoke(app, ["report", str(run_dir), "-o", str(html)])
    assert res.exit_code == 0, res.output
    return html


def _tbody_order(dom: str, table_id: str = "lb-1") -> list[str]:
    table = dom[dom.index(f'id="{table_id}"') :]
    table = table[: table.index("</table>")]
    return re.findall(r'<tr[^>]*data-entry="([^"]+)"', table)


def _chromium(url: str, tmp: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    cmd = [
        str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--no-first-run", f"--user-data-dir={tmp / 'profile'}", "--enable-logging=stderr",
        "--v=0", "--virtual-time-budget=3000", *extra, url,
    ]  # fmt: skip
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def _console_lines(stderr: str) -> list[str]:
    return [ln for ln in stderr.splitlines() if ":CONSOLE" in ln or "Uncaught" in ln]


# --------------------------------------------------------------------------- static checks
def test_page_is_self_contained_and_escapes_user_strings(page: Path) -> None:
    html = page.read_text()
    assert XSS not in html  # suite and entry descriptions are user text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert not re.search(r"""(src|href|url)\s*[=(]\s*["']?(https?:)?//""", html)
    assert "<link" not in html and "<img src=" not in html
    assert html.count("<script>") == 1  # only the page's own inline script


def test_header_leaderboard_and_plots(page: Path, run_dir: Path) -> None:
    html = page.read_text()
    for text in (
        "gCO2e/kWh",
        "suite value (carbon.grid_intensity_g_per_kwh)",
        "PUE 1.2",
        f"energybench {__version__}",
        "G(MUI) = Q^τ / (TEC + MUI · IEC)",
        "source <q>",
    ):
        assert text in html, text
    assert sorted(_tbody_order(html)) == sorted(ENTRIES)  # every entry; rank order: see below
    assert '<select class="mui-select"' in html and 'value="m1"' in html
    assert html.count("data-rank-m1=") == len(ENTRIES)
    # four plots have data; a CPU run has no power traces, and the page says so
    assert len(re.findall(r'<figure class="plot"[^>]*><svg', html)) == 4
    assert "No data because no power trace" in html
    # log axes (energy vs MUI, latency) label their ticks in plain text, not raw mathtext
    assert "mathdefault" not in html and "10^{" not in html
    assert re.search(r"\[[^\]]+J, [^\]]+J\]", html)  # IEC 95 % CI as [lo, hi]
    board = leaderboard(load_run(run_dir))
    if board["is_estimate"].any():
        assert 'class="est-mark"' in html


def test_comparison_of_two_runs(run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "cmp.html"
    res = CliRunner().invoke(app, ["report", str(run_dir), str(run_dir), "-o", str(out)])
    assert res.exit_code == 0, res.output
    html = out.read_text()
    assert "Comparison of runs" in html
    cmp_table = html[html.index('class="sortable comparison"') :]
    cmp_table = cmp_table[: cmp_table.index("</table>")]
    assert all(f'data-v="{e}"' in cmp_table for e in ENTRIES)
    assert cmp_table.count('<th data-key="tec-') == 2
    assert 'id="run-1"' in html and 'id="run-2"' in html


def test_power_trace_plot_from_trace_csv(run_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy, ignore=shutil.ignore_patterns("checkpoints"))
    windows = phase_rows(load_run(copy)).dropna(subset=["start_unix_s"])
    rows = []
    for _, w in windows.drop_duplicates("window").iterrows():
        for k in range(5):
            t = w["start_unix_s"] + k * w["duration_s"] / 4
            rows.append({"unix_s": t, "device": "gpu:cuda:0", "power_w": 50 + k})
    (copy / "traces").mkdir(exist_ok=True)
    pd.DataFrame(rows).to_csv(copy / "traces" / "power-nvml.csv", index=False)
    html = render_report([load_run(copy)])
    assert len(re.findall(r'<figure class="plot"[^>]*><svg', html)) == 5
    assert "No data because" not in html


def test_plots_return_none_without_data() -> None:
    empty = pd.DataFrame()
    assert plots.energy_vs_mui_svg(empty, [1e3]) is None
    assert plots.quality_vs_iec_svg(empty) is None
    assert plots.energy_by_phase_svg(empty) is None
    assert plots.power_traces_svg(empty, empty) is None
    assert plots.latency_svg(empty) is None


def test_pareto_front() -> None:
    pts = [(1.0, 0.5), (2.0, 0.4), (2.0, 0.7), (3.0, 0.9), (4.0, 0.8)]
    assert plots.pareto_front(pts) == [(1.0, 0.5), (2.0, 0.7), (3.0, 0.9)]


# --------------------------------------------------------------------------- in a browser
@needs_chromium
def test_browser_renders_without_errors(page: Path, tmp_path: Path) -> None:
    res = _chromium(page.as_uri(), tmp_path, "--dump-dom")
    assert res.returncode == 0, res.stderr[-2000:]
    assert not _console_lines(res.stderr), _console_lines(res.stderr)
    dom = res.stdout
    assert all(f'data-entry="{e}"' in dom for e in ENTRIES)
    assert len(re.findall(r'<figure class="plot"[^>]*><svg', dom)) == 4
    assert XSS not in dom


@needs_chromium
def test_browser_screenshot(page: Path, tmp_path: Path) -> None:
    shot = tmp_path / "shot.png"
    res = _chromium(page.as_uri(), tmp_path, f"--screenshot={shot}", "--window-size=1400,2000")
    assert res.returncode == 0, res.stderr[-2000:]
    assert shot.stat().st_size > 10_000
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@needs_chromium
@pytest.mark.parametrize(
    "key,column,asc", [("tec", "tec_j", False), ("p99", "latency_p99_ms", True)]
)
def test_sort_from_url_fragment(
    page: Path, run_dir: Path, tmp_path: Path, key: str, column: str, asc: bool
) -> None:
    url = f"{page.as_uri()}#sort={key}&dir={'asc' if asc else 'desc'}"
    res = _chromium(url, tmp_path, "--dump-dom")
    assert not _console_lines(res.stderr), _console_lines(res.stderr)
    board = leaderboard(load_run(run_dir))
    expected = board.sort_values(column, ascending=asc, kind="stable", na_position="last")
    if key == "tec":  # teacher < grafted_v1 < merged (inherits both): a real reordering
        assert list(expected["entry"]) == list(reversed(ENTRIES))
    assert _tbody_order(res.stdout) == list(expected["entry"])
    assert re.search(f'<th data-key="{key}"[^>]*data-sort="{"asc" if asc else "desc"}"', res.stdout)


@needs_chromium
def test_usage_intensity_selector_reranks(page: Path, run_dir: Path, tmp_path: Path) -> None:
    res = _chromium(f"{page.as_uri()}#mui=m1", tmp_path, "--dump-dom")
    assert not _console_lines(res.stderr), _console_lines(res.stderr)
    board = leaderboard(load_run(run_dir))
    col = "rank@1e+07"
    expected = board.sort_values(col, kind="stable", na_position="last")["entry"]
    assert _tbody_order(res.stdout) == list(expected)
    assert 'class="mui-active"' in res.stdout


def _visible_rows(dom: str, table_id: str = "lb-1") -> dict[str, str]:
    """entry -> displayed rank of the rows not hidden by the filters."""
    table = dom[dom.index(f'id="{table_id}"') :]
    table = table[: table.index("</table>")]
    out = {}
    for tr in re.findall(r"<tr[^>]*data-entry=[^>]*>.*?</tr>", table, flags=re.S):
        if re.search(r"<tr[^>]*\shidden", tr):
            continue
        entry = re.search(r'data-entry="([^"]+)"', tr)
        rank = re.search(r"<td[^>]*>([^<]*)</td>", tr)
        assert entry and rank
        out[entry.group(1)] = rank.group(1)
    return out


@needs_chromium
def test_deadline_and_quality_filters_rerank_offline(
    page: Path, run_dir: Path, tmp_path: Path
) -> None:
    board = leaderboard(load_run(run_dir)).dropna(subset=["latency_p99_ms", "quality"])
    assert len(board) >= 2
    # a deadline that the fastest entry meets and the slowest does not
    p99 = board["latency_p99_ms"].sort_values().tolist()
    deadline = (p99[0] + p99[-1]) / 2 if p99[0] < p99[-1] else p99[0]
    floor = board["quality"].min()  # inclusive: every entry meets the quality floor
    keep = board[(board["latency_p99_ms"] <= deadline) & (board["quality"] >= floor)]
    assert 0 < len(keep) <= len(board)
    res = _chromium(f"{page.as_uri()}#deadline={deadline!r}&qmin={floor!r}", tmp_path, "--dump-dom")
    assert not _console_lines(res.stderr), _console_lines(res.stderr)
    shown = _visible_rows(res.stdout)
    assert set(shown) == set(keep["entry"])
    ranked = keep.dropna(subset=["rank"]).sort_values("rank")
    expected = {
        e: str(1 + int((ranked["rank"] < r).sum()))
        for e, r in zip(ranked["entry"], ranked["rank"], strict=True)
    }
    assert {e: shown[e] for e in expected} == expected
    assert "entries meet" in res.stdout
    # a quality floor above every entry: none is shown, and the page says so
    res = _chromium(f"{page.as_uri()}#qmin={board['quality'].max() + 1}", tmp_path, "--dump-dom")
    assert _visible_rows(res.stdout) == {}
    assert "none meets both" in res.stdout


def test_log_tick_labels_stay_short() -> None:
    from energybench.report.plots import short_tick

    assert [short_tick(v) for v in (0.01, 1, 100, 1e3, 1e5, 1e7)] == [
        "0.01",
        "1",
        "100",
        "1k",
        "100k",
        "10M",
    ]


def test_tied_ranks_show_their_range_and_the_basis_is_named(page: Path, run_dir: Path) -> None:
    board = leaderboard(load_run(run_dir)).dropna(subset=["rank"])
    html = page.read_text()
    assert "Ranked on: " in html and "score intervals" in html
    for r in board.to_dict("records"):
        span = "" if r["rank_lo"] == r["rank_hi"] else f"{int(r['rank_lo'])}–{int(r['rank_hi'])}"
        row = re.search(rf'<tr[^>]*data-entry="{r["entry"]}"[^>]*>', html)
        assert row is not None and f'data-tie-score="{span}"' in row.group(0)
        if span:
            assert f">{int(r['rank'])} ({span})<" in html


@needs_chromium
def test_the_leaderboard_opens_in_rank_order(page: Path, run_dir: Path, tmp_path: Path) -> None:
    """With no view selected, rows read 1, 2, 3, ... with unranked entries last."""
    res = _chromium(page.as_uri(), tmp_path, "--dump-dom")
    assert not _console_lines(res.stderr), _console_lines(res.stderr)
    board = leaderboard(load_run(run_dir))
    expected = board.sort_values("rank", na_position="last", kind="stable")["entry"]
    assert _tbody_order(res.stdout) == list(expected)


def test_zero_is_zero_joules_and_g_and_s_carry_their_unit(page: Path) -> None:
    from energybench.report.html import fmt_energy

    assert fmt_energy(0.0) == "0 J" and fmt_energy(None) == "–" and fmt_energy(2e-6) == "2 µJ"
    html = page.read_text()
    # a zero is "0 J", never "0 µJ" or "± 0 µJ" (whole numbers: "10 µJ", "± 0.8 µJ" are fine)
    assert not re.search(r"(?<![\d.])0 µJ", html) and not re.search(r"± 0 µJ", html)
    assert re.search(r"G @ [^<]+ \([\w^.]+/J\)", html) and re.search(r"score S \([\w^.]+/J\)", html)


# --------------------------------------------------------------------------- figures in a browser
def _figure(dom: str, slug: str) -> str:
    start = dom.index(f'data-figure="{slug}"')
    return dom[start : dom.index("</figure>", start)]


def _legend_texts(svg: str) -> list[str]:
    """The text of every legend of an inline matplotlib SVG (drawn as glyphs; matplotlib writes
    each text as a comment before its glyphs)."""
    texts = []
    for m in re.finditer(r'<g id="legend_\d+">', svg):
        depth, i = 1, m.end()
        while depth:  # the legend group, up to its own closing tag
            nxt = re.compile(r"<g[\s>]|</g>").search(svg, i)
            assert nxt is not None
            depth += 1 if nxt.group(0).startswith("<g") else -1
            i = nxt.end()
        texts += re.findall(r"<!-- (.*?) -->", svg[m.end() : i])
    return texts


@pytest.fixture(scope="module")
def gpu_page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny suite's report from a run on a simulated H100 (devices with UUIDs)."""
    html = tmp_path_factory.mktemp("gpu-report") / "report.html"
    res = CliRunner().invoke(app, ["report", str(tiny_run("h100")), "-o", str(html)])
    assert res.exit_code == 0, res.output
    return html


@needs_chromium
def test_browser_figures_have_error_bars_short_device_names_and_downloads(
    gpu_page: Path, tmp_path: Path
) -> None:
    res = _chromium(gpu_page.as_uri(), tmp_path, "--dump-dom")
    assert res.returncode == 0 and not _console_lines(res.stderr), res.stderr[-2000:]
    dom = res.stdout
    # quality vs IEC: each entry's IEC 95 % CI as a horizontal error bar
    quality = _figure(dom, "quality-vs-iec")
    bars = re.search(r'<g id="iec-error-bars">(.*?)</g>', quality, re.S)
    assert bars is not None and bars.group(1).count("<path") >= 2
    assert "IEC, energy per item (J/item)" in quality
    # legends name devices by index and model; the UUIDs are only in the footnote table
    legends = [t for slug in ("energy-by-phase", "power-traces") for t in
               _legend_texts(_figure(dom, slug))]  # fmt: skip
    assert legends and any("GPU0 H100 80GB HBM3" in t for t in legends)
    assert not [t for t in legends if plots.UUID_RE.search(t)]
    footnote = dom[dom.index('<table class="figure-devices">') :]
    footnote = footnote[: footnote.index("</table>")]
    assert "GPU0 H100 80GB HBM3" in footnote and plots.UUID_RE.search(footnote)
    # every figure has a link that downloads its SVG (a blob made from the inline figure)
    figures = re.findall(r'<figure class="plot" data-figure="([^"]+)"', dom)
    links = re.findall(r'<a class="fig-dl" download="([^"]+)" href="([^"]+)"', dom)
    assert len(figures) == len(links) >= 5
    assert all(name.endswith(".svg") and href.startswith("blob:") for name, href in links)


def test_entry_descriptions_are_tooltips_in_the_leaderboard_not_row_text(page: Path) -> None:
    html = page.read_text()
    board = html[html.index('id="lb-1"') :]
    board = board[: board.index("</table>")]
    row = board[board.index('data-entry="teacher"') :]
    row = row[: row.index("</tr>")]
    # the description is on hover (title), escaped, and not a line under the name
    assert '<span class="described" title="the teacher' in row
    assert "&lt;" in row.split('title="', 1)[1].split('"', 1)[0]  # user text, escaped
    assert '<span class="note">the teacher' not in row
    assert "the teacher" in html[html.index('class="entries"') :]  # still in the Entries table


def test_no_estimate_mark_on_a_missing_figure() -> None:
    # the 0.2.0 fixture: an unranked entry with estimated energy and no score
    run = load_run(Path(__file__).parents[1] / "fixtures" / "run-0.2.0")
    html = render_report([run])
    assert re.search(r'<span class="est-mark"[^>]*>[^<]*</span>[0-9]', html)  # marks exist
    assert not re.search(r'<span class="est-mark"[^>]*>[^<]*</span>–<', html)
