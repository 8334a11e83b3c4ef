"""A compression method is a plug-in: one settings class, one function, one registry line.

The toy method below is everything a new method needs; a tiny suite that uses it validates,
runs, and shows it in the CSV export and the HTML report with no other change.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import pytest
import torch
from pydantic import Field
from torch import nn
from typer.testing import CliRunner

from energybench.cli import app
from energybench.suite.methods import COMPRESS_METHODS, CompressSettings
from tests.helpers.report import run_export_report


# ---- the whole plug-in: its settings class, its function ...
class ScaleWeights(CompressSettings):
    """Multiply every weight by a factor (a toy: changes no structure)."""

    method: Literal["scale-weights"]
    factor: float = Field(0.5, gt=0, le=1)


def scale_weights(step: ScaleWeights, model: nn.Module, ctx: Any) -> tuple[nn.Module, dict]:
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(step.factor)
    return model, {"factor": step.factor}


@pytest.fixture
def toy_method() -> Iterator[None]:
    # ... and its one registry line.
    COMPRESS_METHODS.register("scale-weights", scale_weights, settings=ScaleWeights)
    yield
    COMPRESS_METHODS.unregister("scale-weights")


SUITE = """\
name: toytiny
defaults:
  dataset:
    name: photos
    params: {patch_size: 16, test_crop: 32x32, serve_lr: 16x16, seq_size: 48x48, seq_frames: 4}
  train: {steps: 2, batch_size: 2}
  evaluate: {max_items: 1}
energy:
  meters: [estimate]
  idle_baseline_s: 0
  min_window_s: 0
  min_window_iters: 2
  trials: 1
  max_trials: 1
  allow_estimates_in_ranking: true
metric:
  quality: psnr_db
entries:
  - name: scaled
    model: {name: espcn, params: {channels: 4, layers: 2, first_kernel: 3}}
    compress:
      - {method: scale-weights, factor: 0.9}
    serve:
      - {scenario: throughput, batch_sizes: [1], warmup: 0, iterations: 2}
"""


def test_an_unregistered_method_is_refused_by_validate(tmp_path: Path) -> None:
    suite = tmp_path / "toy.yaml"
    suite.write_text(textwrap.dedent(SUITE))
    res = CliRunner().invoke(app, ["validate", str(suite)])
    assert res.exit_code == 2
    assert "unknown kind 'scale-weights'" in res.output and "Traceback" not in res.output


def test_the_toy_method_validates_its_own_settings(tmp_path: Path, toy_method: None) -> None:
    suite = tmp_path / "toy.yaml"
    suite.write_text(textwrap.dedent(SUITE).replace("factor: 0.9", "factr: 2"))
    res = CliRunner().invoke(app, ["validate", str(suite)])
    assert res.exit_code == 2
    assert "unknown field 'factr'; did you mean 'factor'?" in res.output


def test_a_toy_method_runs_and_reaches_the_export_and_the_report(
    tmp_path: Path, toy_method: None
) -> None:
    _, frame, text = run_export_report(SUITE, tmp_path)
    phases = frame[frame["table"] == "phases"]
    compress = phases[phases["phase"] == "compress"]
    assert set(compress["window"]) == {"compress/0-scale-weights"}
    assert (compress["energy_j"] > 0).all()
    assert frame[frame["table"] == "leaderboard"]["rank"].notna().all()
    assert "scale-weights" in text
