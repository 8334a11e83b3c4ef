"""``energybench compare RUN_A RUN_B``: entry by entry, do two runs agree within uncertainty?
And the report's comparison of several runs, which reads the same verdicts against run 1."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from energybench.cli import app
from energybench.records.store import load_run
from energybench.report.compare import compare_runs, relative_change
from energybench.report.html import Cell, change_text, comparison
from energybench.report.tables import leaderboard, rank_label
from tests.helpers.report import ENTRIES, XSS, tiny_run
from tests.helpers.runs import make_run


def test_two_runs_whose_intervals_overlap_agree() -> None:
    a = make_run(allow_estimates=False, variant_frames=(2.0, 2.2))
    b = make_run(allow_estimates=False, variant_frames=(2.1, 2.3))
    rows = {r.entry: r for r in compare_runs(a, b)}
    assert rows["variant"].verdict == rows["base"].verdict == "agree"
    figures = {c.figure: c for c in rows["variant"].figures}
    assert figures["IEC"].agree and figures["IEC"].a == 2.1 and figures["IEC"].b == 2.2
    assert figures["IEC"].a_range is not None and figures["IEC"].a_range[0] < 2.1


def test_an_iec_outside_the_others_interval_differs() -> None:
    a = make_run(allow_estimates=False, variant_frames=(2.0, 2.01))
    b = make_run(allow_estimates=False, variant_frames=(4.0, 4.01))
    rows = {r.entry: r for r in compare_runs(a, b)}
    assert rows["variant"].verdict == "differ" and "IEC" in rows["variant"].note
    # base's own figures are the same; only its rank moved because the variant's did
    base = {c.figure: c.agree for c in rows["base"].figures}
    assert base == {"IEC": True, "TEC": True, "score": True, "rank": False}
    assert rows["base"].note == "rank outside each other's interval"


def test_ranked_in_one_run_only_differs_and_another_basis_is_not_compared() -> None:
    a = make_run(allow_estimates=False)
    b = make_run(allow_estimates=False, shared=True)  # variant measured on a shared GPU
    rows = {r.entry: r for r in compare_runs(a, b)}
    assert rows["variant"].verdict == "differ"
    assert "ranked in run A only" in rows["variant"].note and "shared" in rows["variant"].note
    c = make_run(allow_estimates=True)
    rows = {r.entry: r for r in compare_runs(a, c)}
    assert rows["base"].verdict == "not compared" and "energy basis" in rows["base"].note


def test_compare_cli_on_one_run_twice_agrees(tmp_path: Path) -> None:
    run = tiny_run()
    res = CliRunner().invoke(app, ["compare", str(run), str(run)])
    assert res.exit_code == 0, res.output
    assert "differ" in res.output and "0 differ" in res.output
    res = CliRunner().invoke(app, ["compare", str(run), str(run), "--format", "json"])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)
    assert {r["entry"] for r in rows} == set(ENTRIES)
    assert {r["verdict"] for r in rows if r["entry"] != "teacher"} <= {"agree"}


def test_compare_cli_bad_input_exits_2(tmp_path: Path) -> None:
    res = CliRunner().invoke(app, ["compare", str(tmp_path), str(tmp_path)])
    assert res.exit_code == 2 and "Traceback" not in res.output
    res = CliRunner().invoke(app, ["compare", str(tiny_run()), str(tiny_run()), "-f", "xml"])
    assert res.exit_code == 2 and "unknown format" in res.output


def test_change_text_reads_as_percent_or_ratio() -> None:
    assert change_text(relative_change(2.0, 2.082)) == "+4.1 %"
    assert change_text(relative_change(2.0, 1.0)) == "×0.5"
    assert change_text(relative_change(1.0, 3.0)) == "×3"
    assert change_text(relative_change(3.0, 2.0)) == "−33.3 %"
    assert change_text(relative_change(0.0, 0.0)) == "±0 %"
    assert change_text(relative_change(0.0, 1.0)) == change_text(None) == "–"


def _texts(cells: list[Cell]) -> list[str]:
    return [c.text for c in cells]


def test_comparison_table_ranks_scores_and_agreement_against_the_baseline() -> None:
    a = make_run(allow_estimates=False, variant_frames=(2.0, 2.01))
    b = make_run(allow_estimates=False, variant_frames=(4.0, 4.01))
    table = comparison([a, b, a])
    assert table is not None
    heads = table["heads"]
    assert [h["baseline"] for h in heads] == [True, False, False]
    assert {h["unit"] for h in heads} == {"psnr_db/J"}
    rows = {r["entry"]: r["cells"] for r in table["rows"]}
    # per run: rank, Q, S, TEC, IEC; after the baseline also "vs run 1"
    variant = rows["variant"]
    assert len(variant) == 5 + 6 + 6
    assert _texts(variant[:5]) == ["1", "30", "0.00969", "1.09 kJ", "2 J"]
    assert variant[4].sub == "[1.8 J, 2.21 J]" and variant[3].sub.startswith("± 49.8 J")
    assert _texts(variant[5:10]) == ["2", "30", "0.00589", "1.09 kJ", "4 J"]
    vs_b = variant[10]
    assert vs_b.badge == "differ" and vs_b.text == "S −39.3 % ≠ · IEC +99.8 % ≠ · TEC ±0 %"
    assert vs_b.sub == "IEC, score, rank outside each other's interval"
    assert float(vs_b.v) == pytest.approx(0.00589 / 0.00969 - 1, abs=1e-3)  # sorts by S change
    vs_a = variant[16]
    assert vs_a.badge == "agree" and vs_a.text == "S ±0 % · IEC ±0 % · TEC ±0 %"
    assert rows["base"][10].badge == "differ" and "rank" in rows["base"][10].sub


def test_comparison_shows_dash_for_an_entry_missing_in_a_run() -> None:
    table = comparison([make_run(allow_estimates=False), load_run(tiny_run())])
    assert table is not None
    rows = {r["entry"]: r["cells"] for r in table["rows"]}
    assert list(rows) == ["base", "variant", *ENTRIES]
    base, teacher = rows["base"], rows["teacher"]
    assert _texts(base[5:]) == ["–"] * 6 and base[10].sub == "only in run 1" and not base[10].badge
    assert _texts(teacher[:5]) == ["–"] * 5 and teacher[10].sub == "only in run 2"
    assert teacher[5].text != "–" and teacher[7].text != "–"  # its rank and score in run 2


def test_report_of_two_runs_opens_with_the_comparison(tmp_path: Path) -> None:
    """Two tiny runs through ``report A B``: baseline named, ranks, scores with their unit,
    agreement, and user strings (here the host name) escaped."""
    run = tmp_path / "run"
    shutil.copytree(tiny_run(), run, ignore=shutil.ignore_patterns("checkpoints"))
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["environment"]["hostname"] = XSS
    (run / "manifest.json").write_text(json.dumps(manifest))
    out = tmp_path / "cmp.html"
    res = CliRunner().invoke(app, ["report", str(tiny_run()), str(run), "-o", str(out)])
    assert res.exit_code == 0, res.output
    html = out.read_text()
    table = html[html.index('class="sortable comparison"') :]
    table = table[: table.index("</table>")]
    assert "run 1 (baseline): tiny-report /" in table and "run 2: tiny-report /" in table
    assert XSS not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in table
    assert table.count("S (psnr_db/J)</th>") == 2 and table.count(">vs run 1</th>") == 1
    board = leaderboard(load_run(run)).set_index("entry")
    for entry in ENTRIES:
        r = board.loc[entry]
        assert rank_label(r["rank"], r["rank_lo"], r["rank_hi"]) in table
    # the same records twice: every entry agrees with no change
    assert table.count(">agree</span>") == len(ENTRIES) and "differ</span>" not in table
    assert table.count("S ±0 %</span>") == len(ENTRIES)
