"""A task type is a plug-in: a dataset type, a task adaptor with its own quality figure, and one
registry line each. A suite that ranks on the new figure validates, runs, and shows it in the
export and the report with no other change."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from typer.testing import CliRunner

from energybench.cli import app
from energybench.data import DATASETS
from energybench.data.photos import PhotosDataset
from energybench.suite.schema import EvaluateSettings
from energybench.tasks.base import SRTask
from energybench.tasks.registry import SR_QUALITY, TASKS, TaskPlugin
from tests.helpers.report import run_export_report


# ---- the whole plug-in: a dataset type, a task with one more quality figure ...
class SharpPhotos(PhotosDataset):
    """The bundled photos, for a task that also scores the sharpness of what a model serves."""


class SharpnessTask(SRTask):
    """Super-resolution that also reports ``sharpness``: mean |Laplacian| of the output."""

    quality_keys = (*SR_QUALITY, "sharpness")

    def evaluate(self, model: Any, settings: EvaluateSettings, device: torch.device) -> dict:
        out = super().evaluate(model, settings, device)
        lr = self.sample_inputs(1).to(device)
        with torch.inference_mode():
            sr = model(lr).float()
        lap = sr[..., 1:-1, 1:-1] * 4 - sr[..., :-2, 1:-1] - sr[..., 2:, 1:-1]
        lap = lap - sr[..., 1:-1, :-2] - sr[..., 1:-1, 2:]
        out["sharpness"] = float(lap.abs().mean())
        return out


@pytest.fixture
def toy_task() -> Iterator[None]:
    # ... and its registry lines.
    DATASETS.register("sharp-photos", SharpPhotos)
    TASKS.register(TaskPlugin("sharpness", SharpPhotos, SharpnessTask, SharpnessTask.quality_keys))
    yield
    TASKS.unregister("sharpness")
    DATASETS.unregister("sharp-photos")


SUITE = """\
name: sharp
defaults:
  dataset:
    name: sharp-photos
    params: {patch_size: 16, test_crop: 32x32, serve_lr: 16x16, seq_size: 48x48, seq_frames: 4}
  evaluate: {max_items: 1}
energy: {meters: [estimate], idle_baseline_s: 0, min_window_s: 0, min_window_iters: 2,
         trials: 1, max_trials: 1, allow_estimates_in_ranking: true}
metric: {quality: sharpness, iec_scenario: throughput}
entries:
  - name: bicubic
    model: {name: bicubic}
    serve: [{scenario: throughput, batch_sizes: [1], warmup: 1, iterations: 2}]
  - name: small
    model: {name: espcn, params: {channels: 4, layers: 2, first_kernel: 3}}
    train: {steps: 2, batch_size: 2}
    serve: [{scenario: throughput, batch_sizes: [1], warmup: 1, iterations: 2}]
"""


def test_without_the_task_its_figure_is_refused(tmp_path: Path) -> None:
    suite = tmp_path / "s.yaml"
    suite.write_text(SUITE)
    res = CliRunner().invoke(app, ["validate", str(suite)])
    assert res.exit_code == 2
    assert "found 'sharpness'" in " ".join(res.output.split())


def test_the_toy_task_runs_and_ranks_on_its_own_figure(tmp_path: Path, toy_task: None) -> None:
    run_dir, frame, html = run_export_report(SUITE, tmp_path)
    board = frame[frame["table"] == "leaderboard"].set_index("entry")
    assert set(board.index) == {"bicubic", "small"}
    assert (board["quality"] > 0).all()  # Q is the sharpness, not PSNR or SSIM
    assert not (board["quality"] == board["psnr_db"]).any()
    assert board["rank"].notna().all()
    assert "sharpness" in html
