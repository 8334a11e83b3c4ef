"""The deadline-aware batcher: scheduling properties (pure) and a real open-loop run."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from energybench.models import MODELS
from energybench.serve.load import Request, plan_batch, poisson_arrivals, serve_open_loop
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
    sc = Load(scenario="load", rate_per_s=300, deadline_ms=2000, max_batch=3, requests=60, warmup=1)
    res = serve_open_loop(sc, m, tiny_task, torch.device("cpu"), fake_monitor, FAST, "load")
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
        p99_target_ms=40,
    )  # fmt: skip
    res = serve_open_loop(sc, m, tiny_task, torch.device("cpu"), fake_monitor, FAST, "load")
    sw = res["sweep"]
    assert sw["p99_target_ms"] == 40 and 1 <= len(sw["points"]) <= 8
    if sw["max_rate_per_s"] is not None:
        assert sw["energy_per_request_j"] is not None
        best = [p for p in sw["points"] if p["rate_per_s"] == sw["max_rate_per_s"]][0]
        assert best["meets_target"]
