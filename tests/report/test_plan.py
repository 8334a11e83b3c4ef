"""`energybench plan`: the cheapest measured configuration that meets a p99 target at a rate."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from energybench import cli
from energybench.plan import plan
from energybench.records.store import RunData


def _energy(mean: float) -> dict[str, Any]:
    return {"mean": mean, "ci_low": 0.9 * mean, "ci_high": 1.1 * mean}


def _sweep_point(rate: float, p99: float | None, j: float) -> dict[str, Any]:
    return {
        "rate_per_s": rate,
        "requests": 50,
        "p99_all_ms": p99,
        "energy_per_item_j": j,
        "sigma_per_item_j": 0.05 * j,
        "measured_energy_per_item_j": j,
        "measured_sigma_per_item_j": 0.05 * j,
    }


def _group(**fields: Any) -> dict[str, Any]:
    """A scenario's statistics as the lifecycle stores them (``fields``: what a test sets)."""
    return {
        "unit": "item",
        "items_per_s": None,
        "trials_total": 1,
        "trials_without_energy": 0,
        "sources": ["nvml-counter"],
        "is_estimate": False,
        "flags": [],
        "trials": [],
        **fields,
    }


def _trial(**fields: Any) -> dict[str, Any]:
    window = {"duration_s": 1.0, "devices": []}
    return {"items": 100, "iterations": 100, "duration_s": 1.0, "energy_j": None} | {
        "energy_per_item_j": None,
        "measurement": window,
        **fields,
    }


def _load(rate: float, p99: float, j: float, sweep: list[dict[str, Any]]) -> dict[str, Any]:
    return _group(
        scenario="load",
        rate_per_s=rate,
        deadline_ms=100.0,
        max_batch=4,
        requests_per_trial=100,
        profile={},
        deadline_miss_rate=0.0,
        latency_ms={"p99": p99, "n": 100, "mean": p99 / 2},
        rejection_rate=0.0,
        energy_per_item_j=_energy(j),
        measured_energy_per_item_j=_energy(j),
        compile="none",
        trials=[_trial(requests=100, p99_all_ms=p99)],
        sweep={
            "p99_target_ms": 100.0,
            "capacity_estimate_per_s": None,
            "max_rate_per_s": None,
            "energy_per_request_j": None,
            "points": sweep,
        },
    )


def _stream(fps: float, achieved: float, miss_rate: float, p99: float, j: float) -> dict[str, Any]:
    """A stream scenario's record: ``achieved`` fps with ``miss_rate`` of its frames late."""
    return _group(
        scenario="stream",
        target_fps=fps,
        frames_per_trial=64,
        deadline_miss_rate=miss_rate,
        deadline_misses=round(64 * miss_rate),
        fps_achieved={"n": 2, "mean": achieved},
        latency_ms={"p99": p99, "n": 64, "mean": p99 / 2},
        energy_per_item_j=_energy(j),
        measured_energy_per_item_j=_energy(j),
    )


def _run(name: str = "r1", streams: dict[str, dict[str, Any]] | None = None) -> RunData:
    """Two entries measured under load: 'big' (better quality, slower, dearer), 'small'
    (``streams``: an entry's stream scenario instead of a 25 fps one that keeps its rate)."""
    streams = streams or {}
    entries = {
        "big": (
            0.90,
            _load(20, 80.0, 2.0, [_sweep_point(40, 90.0, 1.6), _sweep_point(80, 400.0, 1.2)]),
        ),
        "small": (
            0.80,
            _load(20, 30.0, 1.0, [_sweep_point(60, 45.0, 0.7), _sweep_point(120, None, 0.5)]),
        ),
    }
    phases = {
        e: {
            "serve": {
                "entry": e,
                "phase": "serve",
                "config_hash": "h",
                "status": "done",
                "device": "cpu",
                "scenarios": {
                    "load": sc,
                    "throughput": {"scenario": "throughput", "batch_sizes": [], "by_batch": {}},
                    "stream": streams.get(e, _stream(25.0, 25.0, 0.0, 20.0, 5.0)),
                },
            },
            "evaluate": {
                "entry": e,
                "phase": "evaluate",
                "config_hash": "h",
                "status": "done",
                "quality": {"ssim": q},
            },
        }
        for e, (q, sc) in entries.items()
    }
    suite = {
        "name": "s",
        "metric": {"quality": "ssim"},
        "entries": [{"name": e, "model": {"name": "bicubic"}} for e in entries],
    }
    return RunData.from_records(Path(name), {"suite": suite}, phases)


def test_meets_cheapest_first_with_margin_at_a_measured_rate() -> None:
    res = plan([_run()], p99_ms=100, rate_per_s=20)
    assert res.status == "meets"
    assert [(a.point.entry, a.point.scenario) for a in res.meets] == [
        ("small", "load"),
        ("big", "load"),
    ]
    best = res.meets[0]
    assert best.basis == "at-rate" and best.point.origin == "scenario"
    assert best.margin_ms == pytest.approx(70.0)
    assert best.point.energy_per_item_j == 1.0 and best.point.energy_ci_j == (0.9, 1.1)
    # the stream (25/s) does not answer 20/s and the throughput never does: said, not hidden
    assert any("stream" in s and "not measured" in s for s in res.not_measured)
    assert any("throughput" in s and "closed loop" in s for s in res.not_measured)


def test_a_rate_between_points_is_answered_from_the_measured_point_above() -> None:
    res = plan([_run()], p99_ms=100, rate_per_s=50)
    by = {a.point.entry: a for a in res.meets}
    # small: nothing at 50/s, the sweep point at 60/s answers (not the 20/s one below)
    assert by["small"].basis == "measured-above"
    assert by["small"].point.rate_per_s == 60 and by["small"].point.p99_ms == 45.0
    assert "measured at 60/s" in by["small"].note
    # big: the sweep point above 50/s is at 80/s with p99 400 ms: a miss, never interpolated
    assert "big" not in by
    assert [a.point.rate_per_s for a in res.misses if a.point.entry == "big"] == [80]


def test_quality_floor_and_rejections() -> None:
    res = plan([_run()], p99_ms=100, rate_per_s=20, min_quality=0.85)
    assert [a.point.entry for a in res.meets] == ["big"]
    # at 120/s 'small' rejects requests: p99 over all requests is unbounded
    res = plan([_run()], p99_ms=1e6, rate_per_s=110)
    assert res.status == "none-meets"
    assert res.nearest_miss is not None and res.nearest_miss.point.p99_ms is None


def test_none_meets_names_the_nearest_miss() -> None:
    res = plan([_run()], p99_ms=40, rate_per_s=40, min_quality=0.85)
    assert res.status == "none-meets" and not res.meets
    # big at 40/s: p99 90 ms, 50 ms over; the only one over the quality floor
    assert res.nearest_miss is not None
    assert res.nearest_miss.point.entry == "big" and res.nearest_miss.margin_ms == -50.0


def test_a_rate_above_every_measured_point_is_not_measured() -> None:
    res = plan([_run()], p99_ms=100, rate_per_s=500)
    assert res.status == "not-measured" and not res.meets and res.nearest_miss is None
    assert any("measured only up to 120/s" in s for s in res.not_measured)


#: 'small' streams 30 fps cheaply but delivers 22.5 fps with 37.5 % of frames late: its frames
#: queue behind each other, yet its p99 (300 ms) is under a loose 500 ms target
LAGGING = {
    "big": _stream(30.0, 29.9, 0.0, 25.0, 5.0),
    "small": _stream(30.0, 22.5, 0.375, 300.0, 1.0),
}


def test_a_stream_that_missed_its_rate_is_rejected_with_the_reason() -> None:
    res = plan([_run(streams=LAGGING)], p99_ms=500, rate_per_s=30)
    assert [a.point.entry for a in res.meets if a.point.scenario == "stream"] == ["big"]
    lag = next(a for a in res.misses if a.point.entry == "small" and a.point.scenario == "stream")
    assert lag.meets_latency and not lag.meets_rate and not lag.meets
    assert any("achieved 22.5 fps of 30 asked" in r for r in lag.reasons)
    assert any("37.5 % of frames missed their deadline" in r for r in lag.reasons)
    assert lag.to_dict()["rejected_because"] == lag.reasons


@pytest.mark.parametrize(
    ("achieved", "miss_rate", "meets"),
    [(28.6, 0.0, True), (28.4, 0.0, False), (30.0, 0.01, True), (30.0, 0.011, False)],
)
def test_stream_rate_and_miss_limits(achieved: float, miss_rate: float, meets: bool) -> None:
    streams = {"small": _stream(30.0, achieved, miss_rate, 20.0, 1.0)}
    res = plan([_run(streams=streams)], p99_ms=500, rate_per_s=30)
    streaming = [a.point.entry for a in res.meets if a.point.scenario == "stream"]
    assert ("small" in streaming) is meets


def test_every_rejected_candidate_says_why() -> None:
    res = plan([_run()], p99_ms=40, rate_per_s=40, min_quality=0.85)
    assert res.misses and all(a.reasons for a in res.misses)
    small = next(a for a in res.misses if a.point.entry == "small")
    assert any("< 0.85" in r for r in small.reasons)
    big = next(a for a in res.misses if a.point.entry == "big")
    assert big.reasons == ["p99 90 ms > 40 ms"]


def test_cli_prints_why_each_candidate_was_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli, "_runs", lambda dirs: [_run(str(d), LAGGING) for d in dirs])
    args = ["plan", "r1", "--p99-ms", "500", "--rate", "30"]
    res = CliRunner().invoke(cli.app, args)
    assert res.exit_code == 0 and "rejected:" in res.output
    assert "small / stream" in res.output and "achieved 22.5 fps" in res.output
    res = CliRunner().invoke(cli.app, [*args, "--format", "json"])
    misses = json.loads(res.stdout)["misses"]
    lag = next(m for m in misses if m["entry"] == "small" and m["scenario"] == "stream")
    assert lag["meets"] is False and lag["meets_latency"] is True
    assert any("missed their deadline" in r for r in lag["rejected_because"])


@pytest.fixture
def runs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli, "_runs", lambda dirs: [_run(str(d)) for d in dirs])


@pytest.mark.parametrize(
    ("args", "code", "status"),
    [
        (["--p99-ms", "100", "--rate", "20"], 0, "meets"),
        (["--p99-ms", "40", "--rate", "40", "--min-quality", "0.85"], 1, "none-meets"),
        (["--p99-ms", "100", "--rate", "500"], 1, "not-measured"),
    ],
)
def test_cli_exit_codes_and_json(runs: None, args: list[str], code: int, status: str) -> None:
    res = CliRunner().invoke(cli.app, ["plan", "r1", *args, "--format", "json"])
    assert res.exit_code == code, res.output
    assert json.loads(res.stdout)["status"] == status


def test_cli_text_and_bad_input(runs: None) -> None:
    res = CliRunner().invoke(cli.app, ["plan", "r1", "--p99-ms", "40", "--rate", "40"])
    assert res.exit_code == 1 and "none meets" in res.output and "nearest miss" in res.output
    res = CliRunner().invoke(cli.app, ["plan", "r1", "--p99-ms", "100", "--rate", "20"])
    assert res.exit_code == 0 and "cheapest: small / load" in res.output
    for bad in (["--p99-ms", "-1", "--rate", "20"], ["--p99-ms", "10", "--rate", "20", "-f", "x"]):
        res = CliRunner().invoke(cli.app, ["plan", "r1", *bad])
        assert res.exit_code == 2 and "Traceback" not in res.output
