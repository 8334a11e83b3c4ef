"""Exports: documented schema, dtype round trips, the tables, --split, the LaTeX fragment."""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
import textwrap
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from energybench.cli import app
from energybench.records.store import load_run
from energybench.report.export import SCHEMA, TABLES, latex_escape, table_columns
from energybench.report.latex import latex_document, tex_num
from energybench.report.tables import leaderboard
from tests.helpers.report import ENTRIES, SUITE, tiny_run

DOC = Path(__file__).resolve().parents[2] / "docs" / "export-schema.md"
DTYPES = {c: spec["dtype"] for c, spec in SCHEMA.items()}


@pytest.fixture(scope="module")
def run_dir() -> Path:
    return tiny_run()


def _export(run_dir: Path, *args: str) -> str:
    res = CliRunner().invoke(app, ["export", str(run_dir), *args])
    assert res.exit_code == 0, res.output
    return res.stdout


@pytest.fixture(scope="module")
def frame(run_dir: Path) -> pd.DataFrame:
    return pd.read_csv(io.StringIO(_export(run_dir, "-o", "-")), dtype=DTYPES)


def test_doc_and_schema_agree() -> None:
    rows = re.findall(r"^\| `([^`]+)` \| (\S+) \| ([^|]+) \| (.+) \|$", DOC.read_text(), re.M)
    documented = {c: (dtype, tables.strip(), desc.strip()) for c, dtype, tables, desc in rows}
    assert list(documented) == list(SCHEMA)
    for col, spec in SCHEMA.items():
        tables = "all" if spec["tables"] == TABLES else ", ".join(spec["tables"])
        assert documented[col] == (spec["dtype"], tables, spec["description"]), col


def test_schema_names_carry_units() -> None:
    unitless = {
        "table",
        "schema_version",
        "suite",
        "run_id",
        "entry",
        "phase",
        "status",
        "window",
        "device",
        "device_kind",
        "device_name",
        "source",
        "scenario",
        "scenario_kind",
        "batch_size",
        "unit",
        "trials",
        "samples",
        "complete",
        "quality",
        "ssim",
        "params",
        "weight",
        "greenness",
        "pue",
        "score",
        "rank",
        "rank_note",
        "other",
        "kind",
        "cheaper_above",
        "is_estimate",
        "tec_is_estimate",
        "iec_is_estimate",
        "sources",
        "flags",
        "note",
        "iec_scenario",
        "latency_n",
        "deadline_miss_rate",
        "fps",
        "target_fps",
        "fps_achieved",
        "flops_per_item",
        "items_per_s",
        "iec_batch_size",
        "energy_scope",
        "trials_without_energy",
        "rel_ci",
        "rel_stat_ci",
        "target_ci_reached",
        "iec_basis",
        "energy_basis",
        "energy_gaps",
        "greenness_lo",
        "greenness_hi",
        "score_lo",
        "score_hi",
        "rank_lo",
        "rank_hi",
        "tie_group",
        "charged",
        "is_shared",
        "is_simulated",
        "is_mixed_devices",
        "placement",
        "backend",
        "backend_max_abs_diff",
        "output",
        "output_label",
        "output_unit",
        "output_value",
        "output_text",
    }  # fmt: skip  (outputs: the unit is output_unit)
    for col in set(SCHEMA) - unitless:
        assert re.search(r"_(j|w|s|ms|db|bytes|items|kgco2e|g_per_kwh)$", col), col


def test_csv_round_trips_with_documented_dtypes(frame: pd.DataFrame) -> None:
    assert list(frame.columns) == list(SCHEMA)
    for col, dtype in DTYPES.items():
        assert str(frame[col].dtype) == dtype, col
    assert set(frame["table"]) == set(TABLES)
    assert set(frame["entry"].dropna()) == set(ENTRIES)
    assert (frame["schema_version"] == 3).all()


def test_tables_content(frame: pd.DataFrame) -> None:
    by = dict(tuple(frame.groupby("table")))
    board = by["leaderboard"].set_index("entry")
    assert list(board.index) == list(ENTRIES)
    assert board["rank"].notna().all() and (board["tec_j"] > 0).all()
    assert (board["iec_ci_low_j"] >= 0).all()
    metric = by["metric"]
    assert len(metric) == len(ENTRIES) * 2 and set(metric["mui_items"]) == {1e3, 1e7}
    e = (
        board.loc[metric["entry"], "tec_j"].to_numpy()
        + metric["mui_items"].to_numpy() * board.loc[metric["entry"], "iec_j"].to_numpy()
    )
    assert metric["energy_j"].to_numpy() == pytest.approx(e)
    carbon = metric["energy_j"] / 3.6e6 * 1.2 * 300 / 1000
    assert metric["carbon_kgco2e"].to_numpy() == pytest.approx(carbon.to_numpy())
    scen = by["scenarios"]
    teacher = scen[(scen["entry"] == "teacher") & (scen["scenario_kind"] == "throughput")]
    assert sorted(teacher["batch_size"]) == [1, 2]
    # every ranked IEC is the same kind of figure: J/frame of the stream scenario
    assert set(board["iec_scenario"]) == {"stream"} and set(board["iec_batch_size"]) == {1}
    assert (scen["latency_p99_ms"] >= scen["latency_p50_ms"]).all()
    be = by["break_even"]
    assert ("merged", "grafted_v1") in set(zip(be["entry"], be["other"], strict=True))
    phases = by["phases"]
    assert {"train", "compress", "serve", "evaluate"} <= set(phases["phase"])
    done = phases.dropna(subset=["energy_j"])
    assert done["source"].notna().all() and done["energy_j"].ge(0).all()


def test_json_export(run_dir: Path) -> None:
    rows = json.loads(_export(run_dir, "--format", "json", "-o", "-"))
    assert rows and set(rows[0]) == set(SCHEMA)
    assert {r["table"] for r in rows} == set(TABLES)


def test_split_writes_one_file_per_table(run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "split"
    _export(run_dir, "--split", "-o", str(out))
    for table in TABLES:
        df = pd.read_csv(out / f"{table}.csv", dtype={c: DTYPES[c] for c in table_columns(table)})
        assert list(df.columns) == table_columns(table)
        assert (df["table"] == table).all() and len(df) > 0


def test_parquet(run_dir: Path, tmp_path: Path) -> None:
    pytest.importorskip("pyarrow")
    path = tmp_path / "x.parquet"
    _export(run_dir, "--format", "parquet", "-o", str(path))
    df = pd.read_parquet(path)
    assert list(df.columns) == list(SCHEMA)


def test_bad_format_is_a_user_error(run_dir: Path) -> None:
    res = CliRunner().invoke(app, ["export", str(run_dir), "--format", "xlsx"])
    assert res.exit_code == 2 and "unknown format" in res.output


def _tabular(tex: str) -> tuple[list[str], list[str]]:
    """(header cells, body rows) of the one tabular in ``tex``."""
    lines = tex.splitlines()
    top, mid, bottom = (lines.index(r) for r in ("\\toprule", "\\midrule", "\\bottomrule"))
    assert top < mid < bottom and lines.index("\\end{tabular}") == bottom + 1
    return lines[top + 1].removesuffix(" \\\\").split(" & "), lines[mid + 1 : bottom]


def test_latex_table(run_dir: Path) -> None:
    tex = _export(run_dir, "--format", "latex", "-o", "-", "--caption", "Energy_1 & more",
                  "--label", "tab:energy")  # fmt: skip
    assert "\\documentclass" not in tex and "\\begin{document}" not in tex
    assert tex.count("\\begin{table*}") == tex.count("\\end{table*}") == 1
    # caption (escaped) with the report's uncertainty convention, and the label
    (caption,) = [ln for ln in tex.splitlines() if ln.startswith("\\caption{")]
    assert caption.startswith("\\caption{Energy\\_1 \\& more. TEC: value $\\pm$ 1$\\sigma$; IEC: ")
    assert "[95\\,\\% confidence interval]" in caption
    assert "\\label{tab:energy}" in tex
    head, body = _tabular(tex)
    assert head[:6] == ["Rank", "Entry", "Q (psnr\\_db)", "TEC (J)", "IEC (J/item)", "p99 (ms)"]
    assert head[6:] == ["G@1000 (psnr\\_db/J)", "G@$10^{7}$ (psnr\\_db/J)",
                        "Score $S$ (psnr\\_db/J)"]  # fmt: skip
    assert f"\\begin{{tabular}}{{rl{'r' * (len(head) - 2)}}}" in tex
    assert len(body) == len(ENTRIES)
    for row in body:
        assert row.endswith("\\\\") and len(re.findall(r"(?<!\\)&", row)) == len(head) - 1, row
    cells = {r.split(" & ")[1]: r.removesuffix(" \\\\").split(" & ") for r in body}
    assert "grafted\\_v1" in cells  # escaped underscore
    board = leaderboard(load_run(run_dir)).set_index("entry")
    for entry, c in cells.items():
        r = board.loc[entry.replace("\\_", "_")]
        # TEC value ± 1σ, IEC value [95 % CI], each marked when estimated
        assert re.fullmatch(
            rf"{re.escape(tex_num(r['tec_j']))}( \$\\pm\$ \S+)?(\$\^{{\*}}\$)?", c[3]
        )
        assert f"{tex_num(r['iec_j'])} [{tex_num(r['iec_ci_low_j'], 2)}, " in c[4]
        assert c[4].endswith("$^{*}$") == bool(r["iec_is_estimate"])
    assert "$^{*}$Estimated from a power model" in tex  # the footnote under the table
    assert [r.split(" & ")[0].split(" ")[0] for r in body] == ["1", "2", "3"]  # sorted by rank
    for entry, c in cells.items():  # the rank interval as the board has it (measured: may vary)
        r = board.loc[entry.replace("\\_", "_")]
        lo, hi = int(r["rank_lo"]), int(r["rank_hi"])
        assert c[0] == (f"{int(r['rank'])} ({lo}--{hi})" if lo != hi else str(int(r["rank"])))
    assert tex.count("{") == tex.count("}")


def test_latex_numbers() -> None:
    assert [tex_num(v) for v in (1120.4, 0.6334, 26.72, 0.0, None, float("nan"))] == [
        "1120", "0.633", "26.7", "0", "--", "--",
    ]  # fmt: skip
    assert tex_num(4.21e-5) == "$4.21\\times10^{-5}$" and tex_num(1e6) == "$10^{6}$"


def test_caption_and_label_are_for_latex_only(run_dir: Path) -> None:
    res = CliRunner().invoke(app, ["export", str(run_dir), "-o", "-", "--caption", "x"])
    assert res.exit_code == 2 and "--format latex only" in res.output


@pytest.mark.skipif(
    shutil.which("pdflatex") is None, reason="no pdflatex (texlive-latex-recommended)"
)
def test_latex_table_compiles_with_pdflatex(run_dir: Path, tmp_path: Path) -> None:
    hostile = "Entry #1: 100% of $x_i$ & {y} ~ ^ \\ end"
    tex = _export(run_dir, "--format", "latex", "-o", "-", "--caption", hostile, "--label", "t:1")
    (tmp_path / "doc.tex").write_text(latex_document(tex))
    res = subprocess.run(
        ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "doc.tex"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert res.returncode == 0, res.stdout[-3000:]
    assert (tmp_path / "doc.pdf").read_bytes()[:5] == b"%PDF-"
    assert "Undefined control sequence" not in res.stdout


def test_not_run_is_a_dash_in_terminal_csv_and_latex(tmp_path: Path) -> None:
    """Entries an --only run left out: "–" in the terminal, empty CSV cells, "--" in LaTeX."""
    suite = tmp_path / "tiny.yaml"
    suite.write_text(textwrap.dedent(SUITE))
    out = tmp_path / "res"
    res = CliRunner().invoke(app, ["run", str(suite), "--only", "teacher", "--out", str(out),
                                   "--no-report"])  # fmt: skip
    assert res.exit_code == 0, res.output
    (run,) = out.glob("tiny-report/*/")
    rows = {ln.split()[1]: ln.split() for ln in res.stdout.splitlines()
            if ln.split()[1:2] and ln.split()[1] in ENTRIES}  # fmt: skip
    assert rows["merged"][:6] == ["–", "merged", "–", "–", "–", "–"]  # rank Q TEC IEC score
    assert "tied: " not in res.stdout  # one ranked entry: no tie to explain
    board = pd.read_csv(io.StringIO(_export(run, "-o", "-")), dtype=DTYPES)
    board = board[board["table"] == "leaderboard"].set_index("entry")
    assert board.loc[["grafted_v1", "merged"], ["tec_j", "iec_j", "score"]].isna().all().all()
    assert board.loc["teacher", "tec_j"] > 0
    _head, body = _tabular(_export(run, "--format", "latex", "-o", "-"))
    (merged,) = [r for r in body if r.split(" & ")[1] == "merged"]
    assert set(merged.removesuffix(" \\\\").split(" & ")[2:]) == {"--"}


def test_latex_escape() -> None:
    assert latex_escape("a_b 5% & #1 $x") == r"a\_b 5\% \& \#1 \$x"
    assert latex_escape("{~^\\}") == r"\{\textasciitilde{}\textasciicircum{}\textbackslash{}\}"
