"""An adaptive entry end to end: its Q is that of the frames it served (its variants' figures
mixed by frames served) and its TEC counts the training of every model it switches among."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from energybench.cli import app
from energybench.records.store import load_run
from energybench.report.tables import entry_costs, leaderboard

SUITE = """\
name: tiny-adaptive
description: an adaptive entry switching between a trained model and bicubic
defaults:
  dataset:
    name: photos
    params: {patch_size: 16, test_crop: 32x32, serve_lr: 16x16, seq_size: 48x48, seq_frames: 4}
  train: {steps: 2, batch_size: 1}
  evaluate: {max_items: 1}
energy:
  idle_baseline_s: 0
  min_window_s: 0
  min_window_iters: 2
  trials: 1
  max_trials: 1
  allow_estimates_in_ranking: true
metric:
  quality: psnr_db
entries:
  - name: trained
    model: {name: ckbg, params: {channels: 4, blocks: 1, grafts: false}}
    serve:
      - {scenario: stream, fps: 100, frames: 3, warmup: 0}
  - name: bicubic
    model: {name: bicubic}
    serve:
      - {scenario: stream, fps: 100, frames: 3, warmup: 0}
  - name: adaptive
    model: {name: bicubic}
    rank: false
    serve:
      - {name: adaptive, scenario: adaptive, fps: 10, duration_s: 0.5, variants: [trained, bicubic],
         policy: static, baseline: false, warmup: 1}
"""


@pytest.fixture(scope="module")
def adaptive_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("adaptive")
    suite = tmp / "s.yaml"
    suite.write_text(textwrap.dedent(SUITE))
    res = CliRunner().invoke(app, ["run", str(suite), "--out", str(tmp), "--no-report"])
    assert res.exit_code == 0, res.output
    (manifest,) = tmp.glob("tiny-adaptive/*/manifest.json")
    return manifest.parent


def test_quality_is_of_the_frames_served_not_the_fallback_model(adaptive_run: Path) -> None:
    run = load_run(adaptive_run)
    ev = {e: run.entry(e).evaluate for e in ("trained", "bicubic", "adaptive")}
    assert all(r is not None for r in ev.values())
    raw = json.loads((adaptive_run / "entries" / "adaptive" / "evaluate.json").read_text())
    basis = raw["quality_basis"]
    # the static policy served every frame with the first variant: its quality, not bicubic's
    assert basis["scenario"] == "adaptive" and basis["weights"] == {"trained": 1.0, "bicubic": 0}
    assert ev["adaptive"].score("psnr_db") == pytest.approx(ev["trained"].score("psnr_db"))
    assert ev["adaptive"].score("psnr_db") != pytest.approx(ev["bicubic"].score("psnr_db"))


def test_tec_counts_the_training_of_every_model_it_switches_among(adaptive_run: Path) -> None:
    run = load_run(adaptive_run)
    costs = {c.name: c for c in entry_costs(run)}
    items = costs["adaptive"].items
    shared = [i for i in items if i.shared]
    assert [i.origin for i in shared] == ["trained"] and shared[0].phase == "upstream"
    assert "served by adaptive's adaptive scenario" in shared[0].label
    assert costs["adaptive"].tec_j == pytest.approx(costs["trained"].tec_j)
    assert costs["adaptive"].tec_j > 0
    board = leaderboard(run).set_index("entry")
    assert board.loc["adaptive", "tec_j"] == pytest.approx(costs["trained"].tec_j)
