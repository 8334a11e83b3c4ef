"""Peak CUDA memory per phase: typed in the records (old runs without it still read) and shown in
the HTML report."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from energybench.records.store import load_run
from energybench.report.html import memory_rows, render_report
from tests.helpers.report import tiny_run


def test_phase_memory_is_typed_and_shown(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    shutil.copytree(tiny_run(), run_dir)
    before = load_run(run_dir)
    assert before.entry("teacher").train.memory is None  # a CPU run: no figure, none made up
    assert memory_rows(before) == []
    assert "no phase recorded CUDA memory" in render_report([before])
    path = run_dir / "entries" / "teacher" / "serve.json"
    rec = json.loads(path.read_text())
    rec["memory"] = {"device": "cuda:1", "peak_allocated_bytes": 2_100_000_000,
                     "peak_reserved_bytes": 3_000_000_000}  # fmt: skip
    path.write_text(json.dumps(rec))
    run = load_run(run_dir)
    mem = run.entry("teacher").serve.memory
    assert mem is not None and mem.peak_reserved_bytes == 3_000_000_000
    (row,) = memory_rows(run)
    assert (row["entry"], row["phase"], row["device"]) == ("teacher", "serve", "cuda:1")
    html = render_report([run])
    section = html[html.index("Peak GPU memory by phase") :]
    assert "cuda:1" in section[:3000] and "2.1 GB" in section and "3 GB" in section
