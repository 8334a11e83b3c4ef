"""A meter is a plug-in: a module with ``build`` and ``probe``, and one line in the meter table.

The toy wall-plug meter below is everything a new meter needs: named in ``energy.meters`` it is
validated, probed by ``energybench meters``, chosen over ``auto``'s host meters, and its source
label reaches the records, the CSV export and the HTML report with no other change.
"""

from __future__ import annotations

import json
import re
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from energybench.cli import app
from energybench.meters.base import SYSTEM_CLOCK, DeviceEnergy, Meter, MeterStatus
from energybench.meters.context import MeterContext
from energybench.meters.factory import build_monitor
from energybench.meters.plugins import (
    ESTIMATED,
    MEASURED,
    METERS,
    MeterPlugin,
    MeterUnavailableError,
    Source,
)
from energybench.suite.schema import EnergySettings
from tests.helpers.report import run_export_report

PLUG_W = 7.0


# ---- the whole plug-in: a meter, its build and probe functions ...
class WallPlug(Meter):
    """A wall-plug wattmeter that always reads ``PLUG_W``."""

    name = "wallplug"

    def __init__(self, ctx: MeterContext) -> None:
        self.clock = ctx.clock or SYSTEM_CLOCK
        self._open: dict[str, float] = {}

    def begin(self, key: str) -> None:
        self._open[key] = self.clock.monotonic()

    def end(self, key: str) -> list[DeviceEnergy]:
        dt = self.clock.monotonic() - self._open.pop(key)
        return [
            DeviceEnergy("system:plug", "system", "wall plug", Source("wall-plug"), PLUG_W * dt)
        ]

    def describe(self) -> list[dict[str, Any]]:
        return [{"device": "system:plug", "source": "wall-plug"}]


def build_wallplug(ctx: MeterContext) -> Meter:
    if ctx.settings is not None and ctx.settings.sample_period_s > 1:
        raise MeterUnavailableError("the plug reports every second", "sample faster")
    return WallPlug(ctx)


def probe_wallplug(ctx: MeterContext) -> MeterStatus:
    return MeterStatus("wallplug", ok=True, details=[{"device": "system:plug"}])


@pytest.fixture
def wallplug() -> Iterator[None]:
    # ... and its one registry line.
    METERS.register(
        MeterPlugin(
            "wallplug",
            "host",
            build_wallplug,
            probe_wallplug,
            sources={"wall-plug": MEASURED},
            auto=False,
        )
    )
    yield
    METERS.unregister("wallplug")


SUITE = """\
name: toymeter
defaults:
  dataset:
    name: photos
    params: {patch_size: 16, test_crop: 32x32, serve_lr: 16x16, seq_size: 48x48, seq_frames: 4}
  train: {steps: 2, batch_size: 2}
  evaluate: {max_items: 1}
energy:
  meters: [wallplug]
  idle_baseline_s: 0
  min_window_s: 0
  min_window_iters: 2
  trials: 1
  max_trials: 1
metric:
  quality: psnr_db
  iec_scenario: stream
entries:
  - name: small
    model: {name: espcn, params: {channels: 4, layers: 2, first_kernel: 3}}
    serve:
      - {scenario: stream, fps: 200, frames: 3, warmup: 0}
"""


def test_an_unregistered_meter_is_refused_by_validate(tmp_path: Path) -> None:
    suite = tmp_path / "toy.yaml"
    suite.write_text(textwrap.dedent(SUITE))
    res = CliRunner().invoke(app, ["validate", str(suite)])
    assert res.exit_code == 2, res.output
    assert "'wallplug'" in res.output and "'rapl'" in res.output
    assert "Traceback" not in res.output
    with pytest.raises(ValueError, match="unknown energy source 'wall-plug'"):
        Source("wall-plug")


def test_the_table_builds_a_named_meter_and_refuses_it_with_its_reason(wallplug: None) -> None:
    mon = build_monitor(EnergySettings(meters=["wallplug"]), None, None, background=False)
    assert [type(m) for m in mon.meters] == [WallPlug]
    mon = build_monitor(EnergySettings(), None, None, background=False)
    assert not any(isinstance(m, WallPlug) for m in mon.meters)  # auto=False: only when named
    slow = EnergySettings(meters=["wallplug"], sample_period_s=2)
    with pytest.raises(MeterUnavailableError, match="asks for 'wallplug'.*every second"):
        build_monitor(slow, None, None, background=False)


def test_meters_lists_the_toy_meter(wallplug: None) -> None:
    res = CliRunner().invoke(app, ["meters"])
    assert res.exit_code == 0, res.output
    assert "wallplug: ok" in res.output


def test_a_toy_meter_measures_a_run_and_reaches_the_export_and_the_report(
    tmp_path: Path, wallplug: None
) -> None:
    _, frame, text = run_export_report(SUITE, tmp_path)
    sc = frame[frame["table"] == "scenarios"]
    (row,) = sc.itertuples()
    assert row.sources == "wall-plug" and not row.is_estimate
    assert row.energy_per_item_j > 0
    board = frame[frame["table"] == "leaderboard"]
    assert board["iec_j"].notna().all() and not board["is_estimate"].any()
    assert "wall-plug" in text and "wallplug" in text


class WallModel(WallPlug):
    """The same plug read through a power model: its own source, declared an estimate."""

    def end(self, key: str) -> list[DeviceEnergy]:
        dt = self.clock.monotonic() - self._open.pop(key)
        return [
            DeviceEnergy("system:model", "system", "wall model", Source("wall-model"), PLUG_W * dt)
        ]


@pytest.fixture
def wallmodel() -> Iterator[None]:
    METERS.register(
        MeterPlugin(
            "wallmodel",
            "host",
            WallModel,
            probe_wallplug,
            sources={"wall-model": ESTIMATED},
            auto=False,
        )
    )
    yield
    METERS.unregister("wallmodel")


def _phases_rows_marked(html: str, source: str) -> list[bool]:
    """For each row of the report's phases table showing ``source``: is it marked estimated?"""
    marked = []
    for m in re.finditer(r"<tr class=\"([^\"]*)\">((?:(?!</tr>).)*)</tr>", html, re.S):
        if f'<td class="name">{source}</td>' in m.group(2):
            marked.append("estimate" in m.group(1).split() and "est-mark" in m.group(2))
    return marked


def test_a_plug_in_meter_s_estimated_source_shows_as_an_estimate_in_every_table(
    tmp_path: Path, wallmodel: None
) -> None:
    suite = SUITE.replace("meters: [wallplug]", "meters: [wallmodel]").replace(
        "max_trials: 1", "max_trials: 1\n  allow_estimates_in_ranking: true"
    )
    run_dir, frame, html = run_export_report(suite, tmp_path)
    phases = frame[(frame["table"] == "phases") & frame["device"].notna()]
    assert set(phases["source"]) == {"wall-model"} and phases["is_estimate"].all()
    sc = frame[frame["table"] == "scenarios"]
    assert (sc["sources"] == "wall-model").all() and sc["is_estimate"].all()
    board = frame[frame["table"] == "leaderboard"]
    assert board["iec_j"].notna().all() and board["is_estimate"].all()
    marked = _phases_rows_marked(html, "wall-model")
    assert marked and all(marked)  # the report's phases table marks every such row
    exp = CliRunner().invoke(app, ["export", str(run_dir), "--format", "json", "-o", "-"])
    assert exp.exit_code == 0, exp.output
    rows = json.loads(exp.stdout)
    ours = [r for r in rows if "wall-model" in (str(r.get("source")), str(r.get("sources")))]
    assert {r["table"] for r in ours} >= {"phases", "scenarios", "leaderboard"}
    assert all(r["is_estimate"] for r in ours)
