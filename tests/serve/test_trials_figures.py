"""Trials' figures (``serve.trials``): one trial's J/item, the statistics over trials, the basis
they are judged on, the precision record and the trial loop's boundaries, asserted as numbers."""

from __future__ import annotations

import math
from typing import Any

import pytest

from energybench.meters.base import DeviceEnergy, Source, Window
from energybench.records.types import Trial
from energybench.serve.trials import (
    Z95,
    aggregate_trials,
    energy_stats,
    precision,
    ranking_basis,
    run_trials,
    trial_summary,
)
from energybench.suite.schema import EnergySettings


def meas(gpu_j: float | None, cpu_j: float | None, *, duration_s: float = 10.0) -> Window:
    """A window: a charged GPU counter (±5 %) and a charged CPU estimate (±50 %)."""
    devs = [
        DeviceEnergy("gpu:0", "gpu", "H100", Source("nvml-counter"), gpu_j,
                     None if gpu_j is None else 0.05 * gpu_j),
        DeviceEnergy("cpu:estimate", "cpu", "cpu", Source("estimate"), cpu_j,
                     None if cpu_j is None else 0.5 * cpu_j),
    ]  # fmt: skip
    return Window(name="w", start_unix_s=0.0, duration_s=duration_s, devices=devs)


def test_one_trials_summary_gives_each_figure_per_item() -> None:
    t = trial_summary(meas(300.0, 40.0), 10, [0.01, 0.02, 0.03]).to_json()  # as stored
    assert (t["items"], t["iterations"], t["duration_s"]) == (10, 3, 10.0)
    assert t["energy_j"] == pytest.approx(340.0)
    assert t["energy_per_item_j"] == pytest.approx(34.0)
    assert t["measured_energy_per_item_j"] == pytest.approx(30.0)
    assert t["estimated_energy_per_item_j"] == pytest.approx(4.0)
    assert t["measured_sigma_per_item_j"] == pytest.approx(1.5)  # 15 J / 10 items
    assert t["sigma_per_item_j"] == pytest.approx(math.hypot(15.0, 20.0) / 10)
    assert t["measurement"]["energy_j"] == pytest.approx(340.0)


def test_a_trial_with_no_items_or_no_figure_has_no_j_per_item() -> None:
    t = trial_summary(meas(300.0, 40.0), 0, []).to_json()
    per_item = [k for k in t if k.endswith("per_item_j")]
    assert len(per_item) == 5 and all(t[k] is None for k in per_item)
    assert t["energy_j"] == pytest.approx(340.0)
    lost = trial_summary(meas(None, 40.0), 10, [0.01])
    assert lost.energy_per_item_j is None and lost.measured_energy_per_item_j is None
    assert lost.estimated_energy_per_item_j == pytest.approx(4.0)
    single = trial_summary(meas(300.0, 40.0), 1, [0.01])
    assert single.energy_per_item_j == pytest.approx(340.0)
    with pytest.raises(RuntimeError, match="^trial_summary needs the measurement of a closed"):
        trial_summary(None, 10, [])


def test_energy_stats_of_no_trials_is_none_and_of_one_trial_is_the_meters_interval() -> None:
    assert energy_stats([], []) is None
    alone = energy_stats([2.0], [None])
    assert alone is not None and alone["mean"] == 2.0 and alone["meter_sigma"] is None
    assert alone["rel_stat_ci"] is None
    assert alone["ci_low"] is None and alone["ci_high"] is None
    one = energy_stats([2.0], [0.1])
    assert one is not None and one["meter_sigma"] == pytest.approx(0.1)
    assert one["ci_low"] == pytest.approx(2.0 - Z95 * 0.1)
    assert one["ci_high"] == pytest.approx(2.0 + Z95 * 0.1)


def test_the_meter_sigma_is_the_mean_of_the_known_ones() -> None:
    st = energy_stats([1.0, 1.0, 1.0], [0.1, None, 0.3])
    assert st is not None and st["meter_sigma"] == pytest.approx(0.2)
    assert st["ci_high"] == pytest.approx(1.0 + Z95 * 0.2)
    assert st["ci_low"] == pytest.approx(1.0 - Z95 * 0.2)
    spread = energy_stats([1.0, 2.0, 3.0], [None, None, None])
    assert spread is not None and spread["meter_sigma"] is None
    assert spread["ci_low"] == spread["stat_ci_low"] and spread["ci_high"] == spread["stat_ci_high"]
    assert spread["rel_stat_ci"] == pytest.approx((spread["ci_high"] - 2.0) / 2.0)


def _dev(source: str, charged: bool | None = None) -> dict[str, Any]:
    d: dict[str, Any] = {"device": "d", "kind": "gpu", "name": "d", "source": source}
    d["energy_j"] = None
    if charged is not None:
        d["charged"] = charged
    return d


def _typed(t: dict[str, Any]) -> Trial:
    """A trial of the given figures (the rest: one item, no energy, a 1 s window)."""
    window = {"duration_s": 1.0, "devices": [], **t.get("measurement", {})}
    base = {"items": 1, "iterations": 1, "duration_s": 1.0, "energy_j": None}
    return Trial.model_validate(base | {"energy_per_item_j": None} | t | {"measurement": window})


def _bare(*devices: dict[str, Any]) -> Trial:
    return _typed({"energy_per_item_j": 1.0, "measurement": {"devices": list(devices)}})


def test_the_basis_is_measured_when_a_charged_meter_was_meant_to_read() -> None:
    # a metered device that lost its figure still makes the basis "measured" (the trial then
    # has no figure on it and is counted, never judged on the estimate instead)
    assert ranking_basis([_bare(_dev("nvml-counter"))], allow_estimates=False) == "measured"
    assert ranking_basis([_bare(_dev("rapl", True))], allow_estimates=False) == "measured"
    assert ranking_basis([_bare(_dev("nvml-counter", False))], allow_estimates=False) == "all"
    assert ranking_basis([_bare(_dev("estimate", True))], allow_estimates=False) == "all"
    assert ranking_basis([_typed({"energy_per_item_j": 1.0})], allow_estimates=False) == "all"
    # one metered trial among estimate-only ones is enough
    mixed = [_bare(_dev("estimate")), _bare(_dev("estimate"), _dev("nvml-counter"))]
    assert ranking_basis(mixed, allow_estimates=False) == "measured"
    assert ranking_basis(mixed, allow_estimates=True) == "all"


def _trial(measured: float | None, total: float | None, sigma: float | None = None) -> Trial:
    return _typed(
        {
            "items": 10,
            "duration_s": 2.0,
            "energy_per_item_j": total,
            "sigma_per_item_j": None,
            "measured_energy_per_item_j": measured,
            "measured_sigma_per_item_j": sigma,
            "estimated_energy_per_item_j": None if None in (total, measured) else total - measured,
            "measurement": {"is_estimate": False, "flags": []},
        }
    )


def test_precision_record_figures_and_the_trials_left_out() -> None:
    ts = [_trial(1.0, 2.0, 0.01), _trial(1.2, 2.1, 0.03), _trial(None, None), _trial(1.1, 2.0)]
    settings = EnergySettings(trials=3, max_trials=7, target_ci=0.5)
    p = precision(ts, settings)
    assert p.basis == "measured"
    assert (p.trials, p.trials_without_energy) == (4, 1)
    assert (p.min_trials, p.max_trials, p.target_ci) == (3, 7, 0.5)
    st = energy_stats([1.0, 1.2, 1.1], [0.01, 0.03, None])
    assert st is not None
    assert p.rel_stat_ci == pytest.approx(st["rel_stat_ci"])
    assert p.rel_ci == pytest.approx((st["ci_high"] - st["ci_low"]) / 2 / 1.1)
    assert p.rel_ci > p.rel_stat_ci and p.reached


def test_precision_is_reached_at_the_target_itself_and_needs_two_trials() -> None:
    ts = [_trial(1.0, 1.0), _trial(1.02, 1.02)]
    rel = precision(ts, EnergySettings(target_ci=0.5)).rel_stat_ci
    assert precision(ts, EnergySettings(target_ci=rel)).reached
    assert not precision(ts, EnergySettings(target_ci=rel * 0.999)).reached
    one = precision([_trial(1.0, 1.0, 0.01)], EnergySettings(target_ci=0.5))
    assert one.rel_ci is None and one.rel_stat_ci is None and not one.reached
    zero = precision([_trial(0.0, 0.0), _trial(0.0, 0.0)], EnergySettings(target_ci=0.5))
    assert zero.rel_ci is None and not zero.reached


def test_run_trials_numbers_the_trials_and_keeps_every_latency() -> None:
    seen: list[int] = []

    def one(k: int) -> tuple[dict[str, Any], list[float]]:
        seen.append(k)
        return _trial([1.0, 3.0][k % 2], 2.0), [k + 0.5, k + 0.25]

    done, lat, prec = run_trials(EnergySettings(trials=2, max_trials=4, target_ci=0.01), one)
    assert seen == [0, 1, 2, 3] and len(done) == 4 and not prec.reached
    assert lat == [0.5, 0.25, 1.5, 1.25, 2.5, 2.25, 3.5, 3.25]
    assert prec.trials == 4


def test_run_trials_stops_at_the_maximum_even_when_it_equals_the_minimum() -> None:
    settings = EnergySettings(trials=3, max_trials=3, target_ci=0.01)
    values = iter([1.0, 3.0, 1.0, 3.0])
    done, _, prec = run_trials(settings, lambda k: (_trial(next(values), 2.0), []))
    assert len(done) == 3 and not prec.reached


def test_aggregate_trials_figures_and_labels() -> None:
    def t(jpi: float | None, duration_s: float, m: dict[str, Any]) -> Trial:
        trial = _trial(jpi, None if jpi is None else jpi + 1.0).to_json()
        return _typed(trial | {"duration_s": duration_s, "measurement": m})

    def d(kind: str, source: str, **kw: Any) -> dict[str, Any]:
        return {"device": kind, "kind": kind, "name": kind, "source": source, "energy_j": 1.0, **kw}

    # a window's sources, kinds and marks are its devices' (stored ones must agree)
    m1 = {"devices": [d("gpu", "nvml-counter"), d("cpu", "estimate")], "flags": ["b"]}
    m2 = {"devices": [d("cpu", "rapl", simulated=True), d("gpu", "rapl", shared=True)],
          "flags": ["a", "b"], "sources": ["rapl"], "is_shared": True}  # fmt: skip
    m3 = {"sources": [], "is_estimate": False, "flags": []}
    trials = [t(1.0, 2.0, m1), t(3.0, 0.25, m2), t(None, 0.0, m3)]
    group = aggregate_trials(trials, [0.001, 0.003], 4, "image")
    assert group.trials == trials and group.precision is None
    agg = group.to_json()  # as stored
    assert (agg["unit"], agg["items_per_iteration"], agg["trials_total"]) == ("image", 4, 3)
    assert agg["latency_ms"]["mean"] == pytest.approx(2.0)
    assert agg["latency_ms"]["n"] == 2
    assert agg["items_per_s"]["n"] == 2  # the 0 s window has no rate
    assert agg["items_per_s"]["mean"] == pytest.approx((10 / 2.0 + 10 / 0.25) / 2)
    assert agg["measured_energy_per_item_j"]["mean"] == pytest.approx(2.0)
    assert agg["energy_per_item_j"]["mean"] == pytest.approx(3.0)
    assert agg["estimated_energy_per_item_j"]["mean"] == pytest.approx(1.0)
    assert agg["estimated_energy_per_item_j"]["meter_sigma"] is None
    assert agg["basis"] == "measured" and agg["trials_without_energy"] == 1
    assert agg["measured_kinds"] == ["cpu", "gpu"] and agg["estimated_kinds"] == ["cpu"]
    assert agg["sources"] == ["estimate", "nvml-counter", "rapl"]
    assert agg["flags"] == ["a", "b"]
    assert agg["is_estimate"] and agg["is_shared"] and agg["is_simulated"]
    assert "precision" not in agg
    plain = aggregate_trials([t(1.0, 2.0, m3)], [], 1, "item", EnergySettings(trials=1))
    assert plain.latency_ms is None
    assert not (plain.is_estimate or plain.is_shared or plain.is_simulated)
    assert plain.precision is not None and plain.precision.trials == 1
    assert aggregate_trials([t(1.0, 0.0, m3)], [], 1, "item").items_per_s is None


def test_aggregate_trials_ranks_on_the_suites_basis() -> None:
    trials = [_trial(1.0, 2.0), _trial(None, 2.5), _trial(None, 2.4), _trial(1.1, None)]
    own = aggregate_trials(trials, [], 1, "item", EnergySettings(trials=1))
    assert own.basis == "measured" and own.trials_without_energy == 2
    assert own.precision is not None and own.precision.basis == "measured"
    allow = EnergySettings(trials=1, allow_estimates_in_ranking=True)
    agg = aggregate_trials(trials, [], 1, "item", allow)
    assert agg.basis == "all" and agg.trials_without_energy == 1
    assert agg.precision is not None and agg.precision.basis == "all"


def test_a_mean_of_exactly_one_joule_per_item_has_a_relative_interval() -> None:
    p = precision([_trial(0.5, 0.5), _trial(1.5, 1.5)], EnergySettings(target_ci=0.5))
    assert p.rel_ci is not None and p.rel_ci == pytest.approx(p.rel_stat_ci)
    assert p.rel_ci > 1.0 and not p.reached
