"""Reports read the typed suite: a default a stored suite leaves out is the schema's, the same
in every table (the terminal, the HTML report and the LaTeX export once disagreed on
``metric.quality``)."""

from __future__ import annotations

import io
from pathlib import Path

from rich.console import Console

from energybench.meters.plugins import ESTIMATED, is_estimated_source
from energybench.records.store import RunData
from energybench.records.window import DeviceEnergy
from energybench.report.export import leaderboard_latex
from energybench.report.html import render_report
from energybench.report.terminal import leaderboard_table
from energybench.suite.schema import MetricSettings

SUITE = {"name": "bare", "entries": [{"name": "m", "model": {"name": "bicubic"}}]}


def _run() -> RunData:
    return RunData.from_records(Path("/nonexistent/bare"), {"suite": SUITE}, {})


def test_a_suite_without_metric_quality_shows_the_schema_default_everywhere() -> None:
    run = _run()
    default = MetricSettings.model_fields["quality"].default
    assert run.suite.metric.quality == default
    buf = io.StringIO()
    Console(file=buf, width=200).print(leaderboard_table(run))
    assert f"Q ({default})" in buf.getvalue()
    assert f"Q ({default})" in render_report([run])
    assert f"Q ({default})" in leaderboard_latex([run])


def test_a_source_no_installed_meter_declares_counts_as_an_estimate() -> None:
    assert is_estimated_source("a-meter-not-installed") is ESTIMATED
    d = DeviceEnergy("system:x", "system", "x", "a-meter-not-installed", 1.0)
    assert d.is_estimate and not DeviceEnergy("g", "gpu", "g", "nvml-counter", 1.0).is_estimate
