"""A tiny finished run shared by the report and export tests (built once per test session)."""

from __future__ import annotations

import atexit
import io
import shutil
import tempfile
import textwrap
from functools import lru_cache
from pathlib import Path

import pandas as pd
from typer.testing import CliRunner

from energybench.cli import app

XSS = "<script>alert(1)</script>"

SUITE = f"""\
name: tiny-report
description: "report test suite {XSS} & co"
defaults:
  dataset:
    name: photos
    params: {{patch_size: 16, test_crop: 32x32, serve_lr: 16x16, seq_size: 48x48, seq_frames: 4}}
  train: {{steps: 2, batch_size: 2}}
  evaluate: {{max_items: 1}}
energy:
  idle_baseline_s: 0
  min_window_s: 0
  min_window_iters: 2
  trials: 2
  max_trials: 2
  allow_estimates_in_ranking: true
carbon: {{grid_intensity_g_per_kwh: 300, pue: 1.2}}
metric:
  quality: psnr_db
  iec_scenario: stream
  usage_intensities:
    - {{mui: 1000, weight: 1}}
    - {{mui: 10000000, weight: 2}}
entries:
  - name: teacher
    description: "the teacher {XSS}"
    model: {{name: espcn, params: {{channels: 4, layers: 2, first_kernel: 3}}}}
    serve:
      - {{scenario: throughput, batch_sizes: [1, 2], warmup: 0, iterations: 2}}
      - {{scenario: stream, fps: 200, frames: 3, warmup: 0}}
  - name: grafted_v1
    model: {{name: ckbg, params: {{channels: 4, blocks: 1, grafts: true}}}}
    uses: [teacher]
    serve:
      - {{scenario: stream, fps: 200, frames: 3, warmup: 0}}
  - name: merged
    model: {{name: ckbg, params: {{channels: 4, blocks: 1, grafts: true}}}}
    inherit: grafted_v1
    uses: [teacher]
    compress: [{{method: reparameterize}}]
    serve:
      - {{scenario: stream, fps: 200, frames: 3, warmup: 0}}
"""

ENTRIES = ("teacher", "grafted_v1", "merged")


@lru_cache(maxsize=2)
def tiny_run(simulate: str | None = None) -> Path:
    """Run the tiny suite once (about 5 s on 2 CPU cores; ``simulate``: on a simulated GPU
    profile such as ``h100``, measured through the fake NVML); returns the run directory."""
    tmp = Path(tempfile.mkdtemp(prefix="eb-report-"))
    atexit.register(shutil.rmtree, tmp, ignore_errors=True)
    suite = tmp / "tiny.yaml"
    suite.write_text(textwrap.dedent(SUITE))
    sim = ["--simulate", simulate] if simulate else []
    res = CliRunner().invoke(
        app, ["run", str(suite), "--out", str(tmp / "results"), "--no-report", *sim]
    )
    assert res.exit_code == 0, res.output
    (manifest,) = (tmp / "results").glob("tiny-report/*/manifest.json")
    return manifest.parent


def run_export_report(suite_text: str, tmp_path: Path) -> tuple[Path, pd.DataFrame, str]:
    """Run ``suite_text`` through the CLI (``run --report``) and export it as CSV: the run
    folder, the export as a data frame, and the report's HTML."""
    suite = tmp_path / "suite.yaml"
    suite.write_text(textwrap.dedent(suite_text))
    out, html = tmp_path / "out", tmp_path / "report.html"
    res = CliRunner().invoke(app, ["run", str(suite), "--out", str(out), "--report", str(html)])
    assert res.exit_code == 0, res.output
    (run_dir,) = out.glob("*/*/")
    exp = CliRunner().invoke(app, ["export", str(run_dir), "--format", "csv", "-o", "-"])
    assert exp.exit_code == 0, exp.output
    return run_dir, pd.read_csv(io.StringIO(exp.stdout), low_memory=False), html.read_text()
