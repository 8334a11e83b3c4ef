"""A tiny classification suite through the CLI: train, prune, merge, serve, evaluate,
and a leaderboard ranked on top-1 (seconds on a CPU)."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from energybench.cli import app
from energybench.records.store import load_run
from energybench.report.tables import leaderboard

SUITE = """\
name: cls-tiny
defaults:
  dataset: {name: digits, params: {image_size: 16}}
  train: {steps: 3, batch_size: 8}
  evaluate: {split: val, max_items: 30}
  serve:
    - {name: tp, scenario: throughput, batch_sizes: [1, 2], warmup: 1, iterations: 2}
energy: {idle_baseline_s: 0, min_window_s: 0, min_window_iters: 2, trials: 1, max_trials: 1,
         allow_estimates_in_ranking: true}
metric: {quality: top1, iec_scenario: tp}
entries:
  - name: lcnet
    model: {name: "timm:lcnet_050"}
  - name: lcnet-pruned
    model: {name: "timm:lcnet_050"}
    inherit: lcnet
    compress:
      - {method: prune, amount: 0.5, finetune: {steps: 1}}
  - name: repvgg-merged
    model: {name: "timm:repvgg_a0"}
    train: {steps: 1, batch_size: 4}
    compress: [{method: reparameterize}]
    serve:
      - {name: tp, scenario: throughput, batch_sizes: [1], warmup: 1, iterations: 2}
      - {name: load, scenario: load, rate_per_s: 50, deadline_ms: 1000, max_batch: 2,
         requests: 4, warmup: 1}
"""


def test_tiny_classification_suite_runs_end_to_end(tmp_path: Path) -> None:
    suite = tmp_path / "cls.yaml"
    suite.write_text(SUITE)
    res = CliRunner().invoke(app, ["run", str(suite), "--out", str(tmp_path), "--no-report"])
    assert res.exit_code == 0, res.output
    run_dir = next((tmp_path / "cls-tiny").iterdir())
    run = load_run(run_dir)
    for entry in ("lcnet", "lcnet-pruned", "repvgg-merged"):
        ev = json.loads((run_dir / "entries" / entry / "evaluate.json").read_text())
        q = ev["quality"]
        assert 0 <= q["top1"] <= q["top5"] <= 1 and q["items"] == 30
    comp = json.loads((run_dir / "entries" / "lcnet-pruned" / "compress.json").read_text())
    prune = comp["methods"][0]
    assert prune["after"]["params"] < prune["before"]["params"] and prune["channels_removed"] > 0
    merged = json.loads((run_dir / "entries" / "repvgg-merged" / "compress.json").read_text())
    assert merged["methods"][0]["after"]["params"] < merged["methods"][0]["before"]["params"]
    serve = json.loads((run_dir / "entries" / "repvgg-merged" / "serve.json").read_text())
    assert set(serve["scenarios"]) == {"tp", "load"}
    assert serve["model"]["input_shape"] == [1, 1, 16, 16] and serve["model"]["flops_per_item"] > 0
    board = leaderboard(run).set_index("entry")
    assert board["quality"].between(0, 1).all() and board["iec_j"].gt(0).all()
    # --resume reloads the compressed classifiers from their tensors-only checkpoints (rebuilt
    # from the recipe: the task's channels/size/classes, the pruned widths, the merged branches)
    before = {
        e: json.loads((run_dir / "entries" / e / "evaluate.json").read_text())["quality"]["top1"]
        for e in ("lcnet-pruned", "repvgg-merged")
    }
    for e in before:
        for phase in ("serve", "evaluate"):
            (run_dir / "entries" / e / f"{phase}.json").unlink()
    res = CliRunner().invoke(app, ["run", str(suite), "--resume", str(run_dir), "--no-report"])
    assert res.exit_code == 0, res.output
    for e, top1 in before.items():
        ev = json.loads((run_dir / "entries" / e / "evaluate.json").read_text())
        assert ev["quality"]["top1"] == top1, e  # the same model came back
