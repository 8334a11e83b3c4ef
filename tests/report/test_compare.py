"""``energybench compare RUN_A RUN_B``: entry by entry, do two runs agree within uncertainty?"""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from energybench.cli import app
from energybench.report.compare import compare_runs
from tests.helpers.report import ENTRIES, tiny_run
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
