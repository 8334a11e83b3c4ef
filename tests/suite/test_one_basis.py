"""One basis: the precision target, the interval, ``rel_ci``, ``target_ci_reached`` and the ranked
figure are computed on the same J/item, chosen once from ``allow_estimates_in_ranking``; and
trials stop exactly at the minimum-trials and maximum-trials boundaries."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from energybench.cli import app
from energybench.meters.plugins import ESTIMATED, METERS, MeterPlugin, Source
from energybench.records.store import load_run
from energybench.report.tables import iec_figure, iec_group, leaderboard
from energybench.serve.trials import precision, ranking_basis, run_trials, trial_summary
from energybench.suite.schema import EnergySettings
from tests.helpers.runs import make_run, window

SMOKE = Path(__file__).resolve().parents[2] / "suites" / "smoke.yaml"


def trials(gpu_per_frame: list[float], cpu_j: list[float]) -> list[dict[str, Any]]:
    """10-frame trials: a steady GPU counter beside a CPU estimate that swings."""
    return [
        trial_summary(window(g * 10, c, 0.0), 10, [0.01])
        for g, c in zip(gpu_per_frame, cpu_j, strict=True)
    ]


def test_the_basis_follows_the_suite_setting_not_what_the_trials_happen_to_have() -> None:
    ts = trials([3.0, 3.0, 3.0], [1.0, 20.0, 40.0])
    assert ranking_basis(ts, allow_estimates=False) == "measured"
    assert ranking_basis(ts, allow_estimates=True) == "all"
    measured = precision(ts, EnergySettings(target_ci=0.05))
    assert measured.basis == "measured" and measured.reached
    # with estimates in the ranking the swinging estimate is part of the ranked figure: the
    # target is judged on it, never on the steady measured part alone
    ranked = precision(ts, EnergySettings(target_ci=0.05, allow_estimates_in_ranking=True))
    assert ranked.basis == "all" and not ranked.reached
    assert ranked.rel_stat_ci > 0.05


def test_an_estimate_only_machine_is_judged_on_its_estimate() -> None:
    ts = [trial_summary(window(1.0, 5.0, 1.0), 10, [0.01]) for _ in range(2)]
    for t in ts:  # no meter at all: drop the GPU figures
        t.measurement.devices = [d for d in t.measurement.devices if d.source == "estimate"]
        t.measured_energy_per_item_j = None
    assert ranking_basis(ts, allow_estimates=False) == "all"


@pytest.fixture
def plug_in_model() -> Iterator[str]:
    """A plug-in meter whose source label is declared an estimate (a power model)."""
    METERS.register(
        MeterPlugin("toymodel", "host", _no_build, _no_build, {"toy-model": ESTIMATED}, auto=False)
    )
    yield "toy-model"
    METERS.unregister("toymodel")


def _no_build(ctx: Any) -> Any:
    raise AssertionError("never built: only its source label is used")


def test_a_plug_in_s_estimated_source_is_no_meter_for_the_basis(plug_in_model: str) -> None:
    ts = [trial_summary(window(1.0, 5.0, 1.0), 10, [0.01]) for _ in range(2)]
    for t in ts:  # the only figures come from a plug-in's power model, named its own way
        t.measurement.devices = [
            replace(d, source=plug_in_model) for d in t.measurement.devices if d.is_estimate
        ]
        t.measured_energy_per_item_j = None
    assert ranking_basis(ts, allow_estimates=False) == "all"


def test_a_measured_iec_names_no_plug_in_estimate_among_its_sources(plug_in_model: str) -> None:
    w = window(30.0, 2.0, 5.0)
    for d in w.devices:
        if d.source == "estimate":
            d.source = Source(plug_in_model)
    run = make_run(False, variant_windows=[w, w])
    fig = iec_figure(iec_group(run, "variant"), allow_estimates=False)
    assert fig.basis == "measured" and fig.sources == ("nvml-counter",)


@pytest.mark.parametrize("allow", [False, True])
def test_rel_ci_is_the_ranked_figures_interval(allow: bool) -> None:
    run = make_run(allow_estimates=allow, variant_frames=(2.0, 2.3, 1.9))
    g = iec_group(run, "variant")
    assert g is not None and g.precision is not None and g.basis == g.precision.basis
    assert g.basis == ("all" if allow else "measured")
    board = leaderboard(run).set_index("entry")
    row = board.loc["variant"]
    half = (row["iec_ci_high_j"] - row["iec_ci_low_j"]) / 2
    assert g.precision.rel_ci == pytest.approx(half / row["iec_j"])
    assert row["energy_basis"] == g.basis
    assert g.precision.rel_stat_ci is not None and g.precision.rel_stat_ci < g.precision.rel_ci


def _constant(jpi: float) -> dict[str, Any]:
    return trial_summary(window(jpi * 10, 1.0, 1.0), 10, [0.01])


@pytest.mark.parametrize("minimum", [1, 2, 3, 5])
def test_trials_stop_exactly_at_the_minimum_when_the_target_is_met(minimum: int) -> None:
    settings = EnergySettings(trials=minimum, max_trials=8, target_ci=0.05)
    done, _, prec = run_trials(settings, lambda k: (_constant(2.0), [0.01]))
    # a CI needs two trials: with a minimum of 1 the second trial is the first that can stop
    assert len(done) == max(minimum, 2) and prec.reached
    assert prec.trials == len(done) and prec.min_trials == minimum


def test_trials_stop_exactly_at_the_maximum_when_the_target_is_missed() -> None:
    values = iter([1.0, 3.0] * 5)
    settings = EnergySettings(trials=2, max_trials=3, target_ci=0.01)
    done, _, prec = run_trials(settings, lambda k: (_constant(next(values)), []))
    assert len(done) == 3 and not prec.reached
    one = EnergySettings(trials=1, max_trials=1, target_ci=0.01)
    done, _, prec = run_trials(one, lambda k: (_constant(1.0), []))
    assert len(done) == 1 and prec.rel_ci is None and not prec.reached


def test_the_smoke_suites_rel_ci_equals_the_ranked_interval(tmp_path: Path) -> None:
    res = CliRunner().invoke(
        app, ["run", str(SMOKE), "--out", str(tmp_path), "--only", "bicubic", "--no-report"]
    )
    assert res.exit_code == 0, res.output
    (manifest,) = tmp_path.glob("smoke/*/manifest.json")
    run = load_run(manifest.parent)
    g = iec_group(run, "bicubic")
    assert g is not None and g.precision is not None
    assert g.precision.basis == g.basis == "all"  # smoke.yaml allows estimates in ranking
    row = leaderboard(run).set_index("entry").loc["bicubic"]
    assert row["iec_basis"].startswith("closed-loop J/item")
    # the ranked CI's upper end is mean x (1 + rel_ci) (its lower end may be clipped at 0 J)
    assert row["iec_ci_high_j"] == pytest.approx(row["iec_j"] * (1 + g.precision.rel_ci))
