"""Runs written by energybench 0.1.0 (store version 1) still render and export; records are
typed, so a renamed key fails loudly, naming its file."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from energybench import cli
from energybench.records.check import RunFileError
from energybench.records.store import STORE_VERSION, load_run

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
RUN_010 = FIXTURES / "run-0.1.0"


def _invoke(*args: str) -> tuple[int, str]:
    res = CliRunner().invoke(cli.app, list(args))
    return res.exit_code, res.output


def test_a_0_1_0_run_exports_the_same_leaderboard_and_every_scenario_output(
    tmp_path: Path,
) -> None:
    out = tmp_path / "run.csv"
    code, text = _invoke("export", str(RUN_010), "--format", "csv", "-o", str(out))
    assert code == 0, text
    frame = pd.read_csv(out)
    board = frame[frame.table == "leaderboard"].set_index("entry")
    expected = pd.read_csv(FIXTURES / "run-0.1.0.leaderboard.csv").set_index("entry")
    for col in expected.columns:  # the figures 0.1.0 itself exported
        pd.testing.assert_series_equal(board[col], expected[col], check_names=False)
    outputs = frame[frame.table == "outputs"]
    load = outputs[(outputs.entry == "bicubic") & (outputs.scenario == "load")]
    by_name = dict(zip(load.output, load.output_value, strict=True))
    assert by_name["rejection_rate"] == 1.0
    assert by_name["sweep_p99_target_ms"] == 50.0 and by_name["sweep_points"] == 2
    adaptive = outputs[outputs.scenario_kind == "adaptive"]
    assert adaptive[adaptive.output == "policy"].output_text.tolist() == ["deadline"]


def test_a_0_1_0_run_renders_with_its_scenario_outputs(tmp_path: Path) -> None:
    out = tmp_path / "r.html"
    code, text = _invoke("report", str(RUN_010), "-o", str(out))
    assert code == 0, text
    html = out.read_text()
    assert "Scenario outputs" in html
    assert "sweep: highest rate within the p99 target" in html and "rejected" in html


def test_the_0_1_0_reader_drops_the_duplicate_load_keys() -> None:
    run = load_run(RUN_010)
    assert run.store_version == 1 < STORE_VERSION
    serve = run.phases["bicubic"].serve
    assert serve is not None
    load = serve.scenarios["load"]
    assert not {"p99_ms", "energy_per_request_j", "requests_per_s"} & set(load)
    assert "energy_per_request_j" not in load["trials"][0]
    sweep = run.results("bicubic")["load"].sweep
    assert sweep is not None and sweep.points
    assert all("energy_per_request_j" not in (p.model_extra or {}) for p in sweep.points)


def _copy(tmp_path: Path) -> Path:
    run = tmp_path / "run"
    shutil.copytree(RUN_010, run)
    return run


def test_a_renamed_key_fails_loudly_naming_the_file(tmp_path: Path) -> None:
    run = _copy(tmp_path)
    serve = run / "entries" / "bicubic" / "serve.json"
    rec = json.loads(serve.read_text())
    load = rec["scenarios"]["load"]
    load["rejected_fraction"] = load.pop("rejection_rate")
    serve.write_text(json.dumps(rec))
    with pytest.raises(RunFileError, match="scenarios.load.*rejection_rate"):
        load_run(run)
    code, text = _invoke("export", str(run), "--format", "csv", "-o", str(tmp_path / "x.csv"))
    assert code == 2 and "serve.json" in text and "rejection_rate" in text


def test_a_run_from_a_newer_store_is_refused(tmp_path: Path) -> None:
    run = _copy(tmp_path)
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["store_version"] = STORE_VERSION + 1
    (run / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(RunFileError, match="store version"):
        load_run(run)
