"""A serving scenario is a plug-in: a settings class, a result type declaring its own outputs,
a scenario class with ``run(ctx)``, and one registry line.

The toy scenario below is everything a new scenario needs; a tiny suite that serves it
validates, runs, and shows it (its energy, latency and declared outputs) in the CSV export and
the HTML report with no other change.
"""

from __future__ import annotations

import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import pytest
import torch
from pydantic import Field
from typer.testing import CliRunner

from energybench.cli import app
from energybench.records.types import FlatResult, Output, Trial, attr
from energybench.serve.base import Scenario, ScenarioContext
from energybench.serve.trials import aggregate_trials, run_trials, trial_summary
from energybench.suite.scenarios import SERVE_SCENARIOS, ScenarioSettings
from tests.helpers.report import run_export_report


# ---- the whole plug-in: its settings class, its result, its scenario class ...
class Burst(ScenarioSettings):
    """``frames`` batch-1 frames back to back in one window per trial."""

    scenario: Literal["burst"]
    frames: int = Field(4, ge=1, le=1000)


class BurstResult(FlatResult):
    """What a burst record holds beyond the common statistics, and its declared outputs."""

    scenario: Literal["burst"]
    burst_frames: int
    slowest_ms: float
    outputs = (
        Output("burst_frames", "frames in the burst", "frames", attr("burst_frames")),
        Output("slowest_ms", "slowest frame of the burst", "ms", attr("slowest_ms")),
    )


class BurstScenario(Scenario[Burst, BurstResult]):
    """Batch-1 frames back to back: J/frame and the slowest frame of a burst."""

    name = "burst"

    def run(self, ctx: ScenarioContext) -> BurstResult:
        frames = self.settings.frames
        fn = ctx.task.serving_step(ctx.model, 1, ctx.device, torch.float32)

        def one(k: int) -> tuple[Trial, list[float]]:
            lat: list[float] = []
            with torch.inference_mode(), ctx.monitor.window(f"{ctx.window}/t{k}") as w:
                for _ in range(frames):
                    t0 = time.perf_counter()
                    fn()
                    lat.append(time.perf_counter() - t0)
            return trial_summary(w.measurement, frames, lat), lat

        trials, lat, _ = run_trials(ctx.energy, one)
        agg = aggregate_trials(trials, lat, 1, "frame", ctx.energy)
        return BurstResult.from_group(
            agg, scenario="burst", burst_frames=frames, slowest_ms=1e3 * max(lat)
        )


@pytest.fixture
def toy_scenario() -> Iterator[None]:
    # ... and its one registry line.
    SERVE_SCENARIOS.register(BurstScenario)
    yield
    SERVE_SCENARIOS.unregister("burst")


SUITE = """\
name: toyserve
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
  iec_scenario: bursty
entries:
  - name: small
    model: {name: espcn, params: {channels: 4, layers: 2, first_kernel: 3}}
    serve:
      - {scenario: burst, name: bursty, frames: 3}
"""


def test_an_unregistered_scenario_is_refused_by_validate(tmp_path: Path) -> None:
    suite = tmp_path / "toy.yaml"
    suite.write_text(textwrap.dedent(SUITE))
    res = CliRunner().invoke(app, ["validate", str(suite)])
    assert res.exit_code == 2
    assert "'burst'" in res.output and "Traceback" not in res.output


def test_the_toy_scenario_validates_its_own_settings(tmp_path: Path, toy_scenario: None) -> None:
    suite = tmp_path / "toy.yaml"
    suite.write_text(textwrap.dedent(SUITE).replace("frames: 3", "frame: 3"))
    res = CliRunner().invoke(app, ["validate", str(suite)])
    assert res.exit_code == 2
    assert "unknown field 'frame'; did you mean 'frames'?" in res.output
    suite.write_text(textwrap.dedent(SUITE).replace("frames: 3", "frames: 0"))
    res = CliRunner().invoke(app, ["validate", str(suite)])
    assert res.exit_code == 2 and "frames" in res.output


def test_a_toy_scenario_runs_and_reaches_the_export_and_the_report(
    tmp_path: Path, toy_scenario: None
) -> None:
    _, frame, text = run_export_report(SUITE, tmp_path)
    rows = frame[frame["table"] == "scenarios"]
    (row,) = rows.itertuples()
    assert row.scenario == "bursty" and row.scenario_kind == "burst" and row.unit == "frame"
    assert row.energy_per_item_j > 0 and row.latency_n == 3
    board = frame[frame["table"] == "leaderboard"]
    assert (board["iec_scenario"] == "bursty").all() and board["iec_j"].notna().all()
    outputs = frame[frame["table"] == "outputs"].set_index("output")
    assert outputs.loc["burst_frames", "output_value"] == 3
    assert outputs.loc["slowest_ms", "output_unit"] == "ms"
    assert outputs.loc["slowest_ms", "output_value"] > 0
    assert "bursty" in text and "frames in the burst" in text and "slowest frame" in text
