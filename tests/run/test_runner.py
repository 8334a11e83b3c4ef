"""The lifecycle end to end, as a user runs it: run, report, export, crash and resume."""

from __future__ import annotations

import io
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from energybench.cli import app
from energybench.records.store import load_run

SUITE = """\
name: tiny
description: a tiny suite for the runner tests
defaults:
  dataset:
    name: photos
    params: {patch_size: 16, test_crop: 32x32, serve_lr: 16x16, seq_size: 48x48, seq_frames: 4}
  train: {steps: 3, batch_size: 2}
  evaluate: {max_items: 1}
energy:
  idle_baseline_s: 0
  min_window_s: 0
  min_window_iters: 2
  trials: 1
  max_trials: 1
  allow_estimates_in_ranking: true
  cooldown: {enabled: true, max_s: 1}
metric:
  quality: psnr_db
entries:
  - name: teacher
    model: {name: espcn, params: {channels: 4, layers: 2, first_kernel: 3}}
    serve:
      - {scenario: throughput, batch_sizes: [1], warmup: 0, iterations: 2}
  - name: grafted
    model: {name: ckbg, params: {channels: 4, blocks: 1, grafts: true}}
    uses: [teacher]
    train: {steps: STEPS, batch_size: 1}
    serve:
      - {scenario: stream, fps: 200, frames: 3, warmup: 0}
  - name: merged
    model: {name: ckbg, params: {channels: 4, blocks: 1, grafts: true}}
    inherit: grafted
    uses: [teacher]
    compress: [{method: reparameterize}]
    serve:
      - {scenario: stream, fps: 200, frames: 3, warmup: 0}
"""


def write_suite(tmp_path: Path, steps: int = 2) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(textwrap.dedent(SUITE).replace("STEPS", str(steps)))
    return path


def hold(tmp: Path, point: str) -> dict[str, str]:
    """Environment that holds a run just before phase ``point`` (runner.test_hold)."""
    (tmp / "hold").write_text("")
    return {**os.environ, "ENERGYBENCH_TEST_HOLD": f"{point}:{tmp / 'hold'}"}


def wait_held(proc: subprocess.Popen, tmp: Path) -> None:
    """Block until the run reached its hold point (no sleeps that a loaded machine outruns)."""
    deadline = time.monotonic() + 300
    while not (tmp / "hold.ready").exists():
        assert proc.poll() is None and time.monotonic() < deadline, "run ended too early"
        time.sleep(0.02)


def run_dirs(out: Path) -> list[Path]:
    return sorted(p.parent for p in out.glob("tiny/*/manifest.json"))


def records(run_dir: Path) -> dict[str, dict]:
    return {
        f"{p.parent.name}/{p.stem}": json.loads(p.read_text())
        for p in sorted(run_dir.glob("entries/*/*.json"))
    }


@pytest.fixture(scope="module")
def finished_cli(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    tmp = tmp_path_factory.mktemp("run")
    suite = write_suite(tmp)
    result = CliRunner().invoke(
        app, ["run", str(suite), "--out", str(tmp / "results"), "--report", str(tmp / "r.html")]
    )
    assert result.exit_code == 0, result.output
    (run_dir,) = run_dirs(tmp / "results")
    return suite, run_dir, result.output


@pytest.fixture(scope="module")
def finished_run(finished_cli: tuple[Path, Path, str]) -> tuple[Path, Path]:
    return finished_cli[0], finished_cli[1]


@pytest.fixture(scope="module")
def finished_output(finished_cli: tuple[Path, Path, str]) -> str:
    return finished_cli[2]


def test_run_records_every_phase_with_provenance(finished_run: tuple[Path, Path]) -> None:
    _, run_dir = finished_run
    recs = records(run_dir)
    assert set(recs) == {
        f"{e}/{p}"
        for e in ("teacher", "grafted", "merged")
        for p in ("train", "compress", "serve", "evaluate")
    }
    assert recs["merged/train"]["status"] == "skipped"
    assert recs["merged/train"]["inherited_from"] == "grafted"
    assert recs["merged/compress"]["methods"][0]["method"] == "reparameterize"
    for key in ("teacher/train", "grafted/train", "merged/compress"):
        m = recs[key]["measurement"]
        assert m["energy_j"] > 0 and m["devices"], key
        assert all(d["source"] for d in m["devices"])
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["config_hash"] and manifest["environment"]["versions"]["torch"]
    # no temperature sensor here: the cool-down says so instead of waiting
    assert set(manifest["cooldowns"]) == {"grafted", "merged"}
    assert all("sensor" in c["skipped"] for c in manifest["cooldowns"].values())
    assert (run_dir / "entries/grafted/checkpoints/train.pt").is_file()


def test_run_ends_with_the_terminal_leaderboard(
    finished_run: tuple[Path, Path], finished_output: str
) -> None:
    from energybench.report.tables import leaderboard

    _, run_dir = finished_run
    out = finished_output
    board = leaderboard(load_run(run_dir))
    head = out.index("leaderboard: tiny")
    assert head < out.index("report:")  # the leaderboard comes before the report path
    table = out[head : out.index("report:")]
    for col in ("rank", "entry", "TEC", "IEC", "score", "marks"):
        assert col in table
    # rows in rank order, with the estimate mark on estimated figures (the fake run estimates)
    ranked = board.dropna(subset=["rank"]).sort_values("rank")["entry"].tolist()
    assert ranked and all(name in table for name in board["entry"])
    positions = [table.index(f" {name} ") for name in ranked]
    assert positions == sorted(positions)
    assert ("≈" in table) == bool(board["is_estimate"].any())
    assert "break-even:" in out and "merged vs grafted" in out


def test_inherit_and_uses_count_upstream_training(finished_run: tuple[Path, Path]) -> None:
    from energybench.report.tables import entry_costs

    _, run_dir = finished_run
    costs = {c.name: c for c in entry_costs(load_run(run_dir))}
    own = {item.label for item in costs["merged"].items}
    assert any("grafted" in lbl for lbl in own) and any("teacher" in lbl for lbl in own)
    assert costs["merged"].tec_j > costs["teacher"].tec_j


def test_report_shows_every_entry_and_export_round_trips(
    finished_run: tuple[Path, Path], tmp_path: Path
) -> None:
    _, run_dir = finished_run
    html = tmp_path / "report.html"
    res = CliRunner().invoke(app, ["report", str(run_dir), "-o", str(html)])
    assert res.exit_code == 0, res.output
    page = html.read_text()
    assert all(name in page for name in ("teacher", "grafted", "merged"))
    assert not re.search(r"""(src|href|url)\s*[=(]\s*["']?(https?:)?//""", page)  # offline
    res = CliRunner().invoke(app, ["export", str(run_dir), "--format", "csv", "-o", "-"])
    assert res.exit_code == 0, res.output
    df = pd.read_csv(io.StringIO(res.stdout))
    assert {"table", "entry"} <= set(df.columns)
    assert set(df["entry"].dropna()) >= {"teacher", "grafted", "merged"}


def test_resume_of_a_finished_run_reuses_everything(finished_run: tuple[Path, Path]) -> None:
    suite, run_dir = finished_run
    before = records(run_dir)
    res = CliRunner().invoke(app, ["run", str(suite), "--resume", str(run_dir), "--no-report"])
    assert res.exit_code == 0, res.output
    assert "ran 0 phase(s), reused 12 finished" in res.output
    assert records(run_dir) == before


def test_resume_refuses_a_changed_suite(finished_run: tuple[Path, Path]) -> None:
    suite, run_dir = finished_run
    res = CliRunner().invoke(
        app,
        ["run", str(suite), "--resume", str(run_dir), "--set", "entries.grafted.train.steps=7"],
    )
    assert res.exit_code == 2
    assert "grafted" in res.output and "cannot resume" in res.output


def test_a_killed_run_resumes_without_redoing_finished_phases(tmp_path: Path) -> None:
    suite = write_suite(tmp_path, steps=2)  # held by the test hook, not by length
    out = tmp_path / "results"
    cmd = [sys.executable, "-m", "energybench", "run", str(suite), "--out", str(out)]
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=hold(tmp_path, "grafted/train"),
    )
    wait_held(proc, tmp_path)  # the run is about to train grafted
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    (run_dir,) = run_dirs(out)
    done_before = records(run_dir)
    assert "teacher/evaluate" in done_before and "grafted/train" not in done_before

    res = subprocess.run(
        [*cmd[:-2], "--resume", str(run_dir), "--no-report"], capture_output=True, text=True
    )
    assert res.returncode == 0, res.stdout + res.stderr
    after = records(run_dir)
    for key, rec in done_before.items():  # finished phases are kept as they were
        assert after[key] == rec, key
    assert after["grafted/train"]["status"] == "done"
    assert after["merged/compress"]["status"] == "done"
    assert f"reused {len(done_before)} finished" in res.stdout


def test_a_failing_entry_exits_1_and_blocks_dependents(tmp_path: Path) -> None:
    text = (
        textwrap.dedent(SUITE)
        .replace("STEPS", "1")
        .replace(
            "compress: [{method: reparameterize}]",
            "compress: [{method: quantize, dtype: int8, mode: dynamic}]",  # refused: no Conv2d
        )
    )
    suite = tmp_path / "tiny.yaml"
    suite.write_text(text)
    res = CliRunner().invoke(app, ["run", str(suite), "--out", str(tmp_path), "--no-report"])
    assert res.exit_code == 1
    assert "merged" in res.output and "dynamic" in res.output
    (run_dir,) = run_dirs(tmp_path)
    assert records(run_dir)["grafted/evaluate"]["status"] == "done"


def test_bad_dataset_parameters_exit_2_before_anything_runs(tmp_path: Path) -> None:
    suite = write_suite(tmp_path)
    res = CliRunner().invoke(
        app,
        [
            "run",
            str(suite),
            "--out",
            str(tmp_path / "out"),
            "--set",
            "defaults.dataset.params.test=[astronaut, astronot]",
        ],
    )
    assert res.exit_code == 2, res.output
    assert "dataset 'photos'" in res.output and "astronot" in res.output
    assert not (tmp_path / "out").exists()


def test_ctrl_c_exits_130_and_keeps_finished_phases(tmp_path: Path) -> None:
    suite = write_suite(tmp_path, steps=2)  # held by the test hook, not by length
    out = tmp_path / "results"
    cmd = [sys.executable, "-m", "energybench", "run", str(suite), "--out", str(out)]
    proc = subprocess.Popen(
        [*cmd, "--no-report"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=hold(tmp_path, "grafted/train"),
        cwd=tmp_path,
    )
    wait_held(proc, tmp_path)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stdout + stderr
    assert "interrupted" in stderr and "--resume" in stderr and "Traceback" not in stderr
    (run_dir,) = run_dirs(out)
    recs = records(run_dir)
    assert recs["teacher/evaluate"]["status"] == "done"
    assert "grafted/train" not in recs  # the interrupted phase left no record
