"""The deadline-aware batcher: scheduling properties (pure) and a real open-loop run."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from energybench.models import MODELS
from energybench.serve.load import (
    PROFILE_MARGIN,
    SWEEP_RESOLUTION,
    LatencyProfile,
    Request,
    _sweep,
    plan_batch,
    poisson_arrivals,
    search_max_rate,
    serve_open_loop,
)
from energybench.suite.schema import EnergySettings, Load

queues = st.lists(st.tuples(st.floats(0, 1), st.floats(0, 0.5)), min_size=0, max_size=20).map(
    lambda xs: [Request(i, a, a + d) for i, (a, d) in enumerate(xs)]
)
latencies = st.lists(st.floats(1e-4, 0.2), min_size=8, max_size=8)


@settings(max_examples=300, deadline=None)
@given(queues, st.floats(0, 1), latencies, st.integers(1, 8))
def test_plan_batch_properties(queue, now, lat, max_batch) -> None:
    def latency_of_batch(k: int) -> float:
        return lat[k - 1]

    batch, rejected = plan_batch(queue, now, latency_of_batch, max_batch)
    assert len(batch) <= max_batch
    ids = [r.id for r in batch]
    assert len(set(ids)) == len(ids) and not set(ids) & {r.id for r in rejected}
    for r in batch:  # nobody in the batch misses its deadline under the estimate
        assert now + latency_of_batch(len(batch)) <= r.deadline
    alone_infeasible = {r.id for r in queue if now + latency_of_batch(1) > r.deadline}
    assert {r.id for r in rejected} == alone_infeasible
    admissible = [r for r in queue if r.id not in alone_infeasible]
    if admissible:  # no starvation: the earliest deadline always goes first
        first = min(admissible, key=lambda r: (r.deadline, r.arrival, r.id))
        assert first.id in ids
    else:
        assert batch == []


def test_plan_batch_grows_to_max_when_slack() -> None:
    q = [Request(i, 0.0, 1.0 + i) for i in range(10)]
    batch, rejected = plan_batch(q, 0.0, lambda k: 0.01 * k, 4)
    assert [r.id for r in batch] == [0, 1, 2, 3] and rejected == []


def test_poisson_arrivals_seeded() -> None:
    a = poisson_arrivals(100.0, 2000, 1)
    assert a == poisson_arrivals(100.0, 2000, 1) and a != poisson_arrivals(100.0, 2000, 2)
    assert abs(len(a) / a[-1] - 100.0) < 10.0


KEYS = {
    "scenario", "rate_per_s", "deadline_ms", "max_batch", "requests_per_trial", "profile",
    "deadline_miss_rate", "rejection_rate", "latency_ms", "energy_per_item_j", "items_per_s",
    "sweep", "trials", "sources", "is_estimate", "flags",
}  # fmt: skip
FAST = EnergySettings(min_window_s=0.0, min_window_iters=1, trials=1, max_trials=1)


def test_serve_open_loop_keys(fake_monitor, tiny_task) -> None:
    m = MODELS.create("espcn", channels=8).eval()
    sc = Load(
        scenario="load", rate_per_s=300, deadline_ms=2000, max_batch=3, requests=60, warmup=1,
        threads=1,
    )  # fmt: skip
    before = torch.get_num_threads()
    seen: list[int] = []
    real = tiny_task.serving_step

    def step(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202 - records the threads it runs with
        seen.append(torch.get_num_threads())
        return real(*args, **kwargs)

    tiny_task.serving_step = step
    try:
        res = serve_open_loop(
            sc, m, tiny_task, torch.device("cpu"), fake_monitor, FAST, "load"
        ).to_json()
    finally:
        del tiny_task.serving_step
    assert set(seen) == {1} and res["threads"] == 1 and torch.get_num_threads() == before
    assert KEYS <= set(res)
    assert res["sweep"] is None and set(res["profile"]) == {"1", "2", "3"}
    t = res["trials"][0]
    assert t["served"] + t["rejected_at_admission"] + t["dropped_in_queue"] == 60
    assert res["energy_per_item_j"]["mean"] > 0
    assert not {"p99_ms", "energy_per_request_j", "requests_per_s"} & set(res)  # no duplicates
    assert 0 <= res["rejection_rate"] <= 1


def test_serve_open_loop_sweep(fake_monitor, tiny_task) -> None:
    m = MODELS.create("espcn", channels=8).eval()
    sc = Load(
        scenario="load", rate_per_s=100, deadline_ms=40, max_batch=2, requests=30, warmup=1,
        p99_target_ms=40, sweep_min_requests=100, sweep_min_s=0.5,
    )  # fmt: skip
    res = serve_open_loop(
        sc, m, tiny_task, torch.device("cpu"), fake_monitor, FAST, "load"
    ).to_json()
    sw = res["sweep"]
    assert sw["p99_target_ms"] == 40 and 1 <= len(sw["points"]) <= 16
    if sw["max_rate_per_s"] is not None:
        assert sw["energy_per_request_j"] is not None
        best = [p for p in sw["points"] if p["rate_per_s"] == sw["max_rate_per_s"]][0]
        assert best["meets_target"]


def _threshold(limit: float, tried: list[float]):  # noqa: ANN202 - a test's fake meter
    def meets(rate: float) -> bool:
        tried.append(rate)
        return rate <= limit

    return meets


def test_search_first_rate_meets_climbs_to_the_ceiling_and_is_a_lower_bound() -> None:
    tried: list[float] = []
    res = search_max_rate(_threshold(1e9, tried), start=100.0, floor=5.0, ceiling=400.0)
    assert res.bound == "lower" and res.max_rate_per_s == 400.0
    assert tried == [100.0, 200.0, 400.0]  # never stops at the first rate that passes
    assert res.first_failing_rate_per_s is None


def test_search_first_rate_meets_climbs_until_a_rate_fails_then_bisects() -> None:
    tried: list[float] = []
    res = search_max_rate(_threshold(330.0, tried), start=100.0, floor=5.0, ceiling=1e4)
    assert res.bound == "measured" and tried[:3] == [100.0, 200.0, 400.0]
    assert res.max_rate_per_s is not None and res.first_failing_rate_per_s is not None
    assert res.max_rate_per_s <= 330.0 < res.first_failing_rate_per_s
    assert res.first_failing_rate_per_s / res.max_rate_per_s <= 1.0 + SWEEP_RESOLUTION


def test_search_first_rate_fails_bisects_down_or_reports_none() -> None:
    res = search_max_rate(_threshold(50.0, []), start=100.0, floor=10.0, ceiling=400.0)
    assert res.bound == "measured" and res.max_rate_per_s is not None
    assert res.max_rate_per_s <= 50.0 < (res.first_failing_rate_per_s or 0.0)
    tried: list[float] = []
    res = search_max_rate(_threshold(1.0, tried), start=100.0, floor=10.0, ceiling=400.0)
    assert res.bound == "none" and res.max_rate_per_s is None and tried == [100.0, 25.0, 10.0]
    assert res.lowest_rate_tried_per_s == res.first_failing_rate_per_s == 10.0


def test_search_stops_at_max_points() -> None:
    tried: list[float] = []
    res = search_max_rate(_threshold(1e9, tried), 1.0, 0.1, 1e9, max_points=4)
    assert len(tried) == 4 and res.bound == "lower" and res.max_rate_per_s == 8.0


def test_poisson_arrivals_cover_the_minimum_duration() -> None:
    a = poisson_arrivals(1000.0, 10, 3, min_s=0.5)
    assert a[-1] >= 0.5 and len(a) > 400 and a[-2] < 0.5
    assert len(poisson_arrivals(10.0, 50, 3, min_s=0.1)) == 50


def test_sweep_point_serves_the_documented_minimum(fake_monitor, tiny_task) -> None:
    """A loose target that the first rate meets: the sweep climbs, each point is long enough,
    and the maximum is a lower bound or bracketed by a failing rate (never a short burst)."""
    m = MODELS.create("espcn", channels=8).eval()
    sc = Load(
        scenario="load", rate_per_s=100, deadline_ms=400, max_batch=2, requests=30, warmup=1,
        p99_target_ms=60, sweep_min_requests=100, sweep_min_s=0.5,
    )  # fmt: skip
    res = serve_open_loop(
        sc, m, tiny_task, torch.device("cpu"), fake_monitor, FAST, "load"
    ).to_json()
    sw = res["sweep"]
    assert sw["min_requests"] == 100 and sw["min_s"] == 0.5
    for p in sw["points"]:
        assert p["requests"] >= 102 and p["offered_span_s"] >= 0.5 and p["duration_s"] >= 0.5
    assert sw["bound"] in ("measured", "lower", "none")
    assert sw["lower_bound"] == (sw["bound"] == "lower")
    if sw["max_rate_per_s"] is not None:
        assert sw["served_at_max"] >= 100 and sw["duration_s_at_max"] >= 0.5
    if sw["bound"] == "measured":
        assert sw["first_failing_rate_per_s"] > sw["max_rate_per_s"]
    first = sw["points"][0]
    if first["meets_target"]:  # the first rate passed: the sweep went on upward
        assert len(sw["points"]) > 1 and sw["points"][1]["rate_per_s"] > first["rate_per_s"]


def _queue_point(capacity_per_s: float):  # noqa: ANN202 - a server model for the sweep
    """A one-at-a-time server of ``capacity_per_s`` on virtual time (no deadline drops): the
    same record keys as :func:`run_point`, computed instead of timed."""

    def point(rate: float, n: int, seed: int, min_s: float = 0.0):  # noqa: ANN202
        def run() -> dict:
            arrivals = poisson_arrivals(rate, n, seed, min_s)
            free, lat = 0.0, []
            for a in arrivals:
                free = max(free, a) + 1.0 / capacity_per_s
                lat.append(free - a)
            ordered = sorted(lat)
            return {
                "rate_per_s": rate, "requests": len(arrivals), "served": len(arrivals),
                "offered_span_s": arrivals[-1], "duration_s": free, "deadline_misses": 0,
                "rejected_at_admission": 0, "dropped_in_queue": 0,
                "p99_all_ms": 1e3 * ordered[math.ceil(0.99 * len(ordered)) - 1],
                "_latencies": lat,
            }  # fmt: skip

        return run

    return point


def test_a_short_burst_cannot_flatter_the_sweep(fake_monitor) -> None:
    """The reported case: a server of ~280 requests/s whose warm-up profile promises ~5900/s.
    A 30-request burst at 7404/s is served in 0.107 s and meets a 200 ms p99; points of the
    documented size build a queue instead, and the maximum lands near the true capacity."""
    sc = Load(scenario="load", rate_per_s=30, deadline_ms=400, max_batch=1, requests=30,
              p99_target_ms=200)  # fmt: skip
    profile = LatencyProfile({1: [1 / 5923.0 / PROFILE_MARGIN]})
    sw = _sweep(sc, profile, _queue_point(280.0), fake_monitor, "load")
    assert sw["min_requests"] == 200 and sw["min_s"] == 2.0
    assert sw["bound"] == "measured" and not sw["lower_bound"]
    # within the documented ~20 % of the true capacity (not 7404/s)
    assert 0.75 * 280 <= sw["max_rate_per_s"] <= 1.2 * 280
    assert sw["max_rate_per_s"] < sw["first_failing_rate_per_s"] <= 1.05 * sw["max_rate_per_s"]
    best = next(p for p in sw["points"] if p["rate_per_s"] == sw["max_rate_per_s"])
    assert sw["served_at_max"] == best["served"] >= 200 and best["offered_span_s"] >= 2.0
    assert all(p["requests"] >= 203 and p["offered_span_s"] >= 2.0 for p in sw["points"])
    first = sw["points"][0]
    assert first["rate_per_s"] == pytest.approx(1.25 * 5923.0) and not first["meets_target"]


def test_a_fast_server_climbs_to_the_ceiling_and_reports_a_lower_bound(fake_monitor) -> None:
    sc = Load(scenario="load", rate_per_s=30, deadline_ms=400, max_batch=1, requests=30,
              p99_target_ms=200, sweep_min_s=0.5)  # fmt: skip
    profile = LatencyProfile({1: [1 / 100.0 / PROFILE_MARGIN]})  # promises 100/s
    sw = _sweep(sc, profile, _queue_point(1e5), fake_monitor, "load")
    rates = [p["rate_per_s"] for p in sw["points"]]
    assert rates == pytest.approx([125.0, 250.0, 400.0])  # up to 4 x the estimate: the ceiling
    assert sw["bound"] == "lower" and sw["lower_bound"] and sw["max_rate_per_s"] == 400.0
    assert sw["ceiling_per_s"] == pytest.approx(400.0) and sw["first_failing_rate_per_s"] is None
