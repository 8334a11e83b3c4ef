"""The complete script of docs/measure-your-own-code.md runs as printed, and every command the
page names reads the run folder it writes (report, export, site; plan says why it cannot answer)."""

from __future__ import annotations

import csv
import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PAGE = REPO / "docs" / "measure-your-own-code.md"


def _example(name: str) -> str:
    match = re.search(rf"<!-- example: {name} -->\n```python\n(.*?)```", PAGE.read_text(), re.S)
    assert match, f"{PAGE.name} has no example '{name}'"
    return match.group(1)


def _run(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=300)  # fmt: skip


def test_the_measure_your_own_code_script_runs_and_every_command_reads_its_run(
    tmp_path: Path,
) -> None:
    (tmp_path / "script.py").write_text(_example("script"))
    done = _run(tmp_path, "script.py")
    assert done.returncode == 0, done.stderr[-3000:]
    run = tmp_path / "results" / "loops"
    cli = ("-m", "energybench")
    report = _run(tmp_path, *cli, "report", str(run), "-o", "r.html")
    assert report.returncode == 0, report.stderr[-2000:]
    assert "matmul" in report.stdout and "Traceback" not in report.stderr
    export = _run(tmp_path, *cli, "export", str(run), "--format", "csv", "-o", "r.csv")
    assert export.returncode == 0, export.stderr[-2000:]
    with (tmp_path / "r.csv").open() as f:
        (board,) = [r for r in csv.DictReader(f) if r["table"] == "leaderboard"]
    assert board["entry"] == "matmul" and float(board["tec_j"]) > 0 and float(board["iec_j"]) > 0
    site = _run(tmp_path, *cli, "site", str(run), "-o", "site")
    assert site.returncode == 0 and (tmp_path / "site" / "index.html").is_file(), site.stderr
    plan = _run(tmp_path, *cli, "plan", str(run), "--p99-ms", "50", "--rate", "10")
    assert plan.returncode == 1 and "cannot answer a latency at a load" in plan.stdout
