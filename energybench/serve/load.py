"""The ``load`` scenario: open-loop Poisson arrivals served by a deadline-aware dynamic batcher.

Requests (one LR frame each) arrive in wall time at exponential inter-arrival times (seeded); each
has a deadline ``arrival + deadline_ms``. The server is one worker running the real model. The
scheduling policy (DeepRT-style, earliest deadline first) is the pure function
:func:`plan_batch`; the latency of a batch of ``k`` is estimated from a latency-vs-batch-size
profile measured during warm-up (1.2 × the median: robust to stalls of a shared CPU).

- Admission: a request is rejected on arrival if it cannot meet its deadline even served alone
  as soon as the server is expected to be free.
- Dispatch (whenever the server is free): queued requests whose deadline can no longer be met
  alone are dropped (counted as rejected); the rest are taken in deadline order and the batch
  grows up to ``max_batch`` while the estimated batch latency still meets the earliest deadline
  in it. The earliest-deadline admissible request is always in the batch (no starvation).

Latency is measured from a request's scheduled arrival to the completion of its batch, so
queueing behind a slow batch counts (open loop: arrivals never wait for the server). The energy
of a window includes the idle time between requests; J/request divides it by served requests.
With ``p99_target_ms`` set, a sweep (after Camelot's max load at a tail-latency target) finds
the highest rate whose p99 over all requests (rejected ones count as infinitely late) meets the
target; one trial per point, see :func:`search_max_rate`:

- Every point is offered Poisson arrivals until it has at least ``sweep_min_requests / 0.99``
  requests *and* they span at least ``max(sweep_min_s, SWEEP_TARGET_MULTIPLE x target)``
  seconds, so a point that meets the target (at most 1 % rejected) served at least
  ``sweep_min_requests`` requests over that time. Over ``T = 5 x target`` a server offered
  ``R > C`` (its capacity) builds a queue; the p99 request waits about ``0.99 (R/C - 1) T``, so
  an overload above ~20 % fails the target: the measured maximum overstates the sustainable
  rate by at most about that much (a burst of 30 requests in 0.1 s proves nothing).
- The first rate tried is 1.25 x the warm-up profile's capacity estimate. If it meets the
  target, the rate doubles until a point fails or the ceiling (``SWEEP_CEILING_FACTOR`` x the
  estimate, at most ``MAX_RATE``) is reached; if the ceiling still meets it the result is a
  lower bound (``bound: "lower"``, shown as "≥"). If it fails, the rate is divided by
  ``SWEEP_DESCENT`` until one passes (the warm-up profile times the model alone: serving
  overheads and a busy CPU can make it optimistic by orders of magnitude), down to a floor
  (``SWEEP_FLOOR_FACTOR`` x the estimate, and no point longer than ``SWEEP_LONGEST_POINT_S``);
  if the floor fails too: ``bound: "none"``, the lowest rate tried recorded. Between
  the highest passing and the lowest failing rate a geometric bisection runs until they are
  within ``SWEEP_RESOLUTION`` (``bound: "measured"``, the failing rate above it recorded).

A request of a temporal model is one frame of its own stream: each batch size keeps its own
recurrent state. Energy comes only from the monitor.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from energybench.meters.base import EnergyMonitor
from energybench.records.types import LoadResult, Trial
from energybench.serve.base import Scenario, ScenarioContext
from energybench.serve.trials import aggregate_trials, make_timer, run_trials, trial_summary
from energybench.suite.base import MAX_RATE
from energybench.suite.schema import EnergySettings, Load
from energybench.tasks.base import Task, model_dtype

SWEEP_MAX_POINTS = 16  # most points of one p99 sweep (brackets, climb and bisection)
SWEEP_RESOLUTION = 0.05  # bisection stops when failing / passing rate <= 1 + this
SWEEP_CEILING_FACTOR = 4.0  # the climb stops at this x the profile's capacity estimate
SWEEP_DESCENT = 4.0  # below a first rate that fails, each rate tried is this much lower ...
SWEEP_FLOOR_FACTOR = 1 / 256  # ... down to this x the capacity estimate at the lowest
SWEEP_LONGEST_POINT_S = 30.0  # ... and no lower than sweep_min_requests over this many seconds
SWEEP_TARGET_MULTIPLE = 5.0  # a sweep point lasts at least this x the p99 target
SWEEP_SERVED_FRACTION = 0.99  # a point meeting the p99 target served at least this fraction
PROFILE_REPS = 7  # timed runs per batch size in the warm-up profile
PROFILE_MARGIN = 1.2  # the profile's estimate: this factor times the median warm-up latency


@dataclass(frozen=True)
class Request:
    """One request: its index, arrival and absolute deadline (seconds on the run's clock)."""

    id: int
    arrival: float
    deadline: float


def plan_batch(
    queue: Sequence[Request],
    now: float,
    latency_of_batch: Callable[[int], float],
    max_batch: int,
) -> tuple[list[Request], list[Request]]:
    """The next batch to serve at ``now`` and the requests to reject (pure; see module doc).

    ``rejected``: every request with ``now + latency_of_batch(1) > deadline``. ``batch``: the
    longest prefix (at most ``max_batch``) of the others in (deadline, arrival, id) order with
    ``now + latency_of_batch(len(prefix)) <= min deadline in prefix``; empty only if none remain.
    """
    one = latency_of_batch(1)
    rejected = [r for r in queue if now + one > r.deadline]
    ok = sorted(
        (r for r in queue if now + one <= r.deadline),
        key=lambda r: (r.deadline, r.arrival, r.id),
    )
    batch = ok[:1]
    for r in ok[1:max_batch]:
        k = len(batch) + 1
        if now + latency_of_batch(k) > min(batch[0].deadline, r.deadline):
            break
        batch.append(r)
    return batch, rejected


def poisson_arrivals(rate_per_s: float, n: int, seed: int, min_s: float = 0.0) -> list[float]:
    """Arrival times (s, from 0) of a Poisson process of ``rate_per_s`` (seeded): at least
    ``n`` of them, and more until the last is at or after ``min_s``."""
    rng = random.Random(seed)
    t = 0.0
    out: list[float] = []
    while len(out) < n or t < min_s:
        t += rng.expovariate(rate_per_s)
        out.append(t)
    return out


class LatencyProfile:
    """Estimated batch latency (s) per batch size, from timed warm-up runs."""

    def __init__(self, samples: dict[int, list[float]], margin: float = PROFILE_MARGIN):
        self.samples = samples
        self.estimate = {k: margin * float(np.median(v)) for k, v in samples.items()}
        # monotone envelope: a bigger batch is never estimated faster than a smaller one
        run = 0.0
        for k in sorted(self.estimate):
            run = max(run, self.estimate[k])
            self.estimate[k] = run

    def __call__(self, k: int) -> float:
        return self.estimate[k]

    def to_dict(self) -> dict[str, Any]:
        return {
            str(k): {"estimate_ms": self.estimate[k] * 1e3, "median_ms": 1e3 * float(np.median(v))}
            for k, v in self.samples.items()
        }


def measure_profile(
    fns: dict[int, Callable[[], Any]], timer: Callable[[Callable[[], Any]], float], warmup: int
) -> LatencyProfile:
    samples = {}
    for k, fn in fns.items():
        for _ in range(warmup):
            timer(fn)
        samples[k] = [timer(fn) for _ in range(PROFILE_REPS)]
    return LatencyProfile(samples)


def _percentile_ms(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q)) * 1e3 if values else None


def run_point(
    rate_per_s: float,
    n: int,
    deadline_s: float,
    max_batch: int,
    fns: dict[int, Callable[[], Any]],
    profile: LatencyProfile,
    timer: Callable[[Callable[[], Any]], float],
    seed: int,
    min_s: float = 0.0,
) -> dict[str, Any]:
    """Serve open-loop requests at ``rate_per_s`` in wall time (caller opens a window): at
    least ``n``, arriving over at least ``min_s`` seconds."""
    arrivals = poisson_arrivals(rate_per_s, n, seed, min_s)
    n = len(arrivals)
    queue: list[Request] = []
    latencies: list[float] = []
    batch_sizes: list[int] = []
    late = rejected_admission = dropped = 0
    nxt = 0
    busy_until = 0.0  # estimated time the server becomes free (for admission)
    t0 = time.perf_counter()
    while nxt < n or queue:
        now = time.perf_counter() - t0
        while nxt < n and arrivals[nxt] <= now:
            a = arrivals[nxt]
            req = Request(nxt, a, a + deadline_s)
            if max(a, busy_until) + profile(1) > req.deadline:
                rejected_admission += 1
            else:
                queue.append(req)
            nxt += 1
        if not queue:
            if nxt < n:
                wait = arrivals[nxt] - (time.perf_counter() - t0)
                if wait > 0:
                    time.sleep(wait)
            continue
        batch, rejected = plan_batch(queue, now, profile, max_batch)
        dropped += len(rejected)
        taken = {r.id for r in batch} | {r.id for r in rejected}
        queue = [r for r in queue if r.id not in taken]
        if not batch:
            continue
        busy_until = now + profile(len(batch))
        timer(fns[len(batch)])
        done = time.perf_counter() - t0
        busy_until = done
        batch_sizes.append(len(batch))
        for r in batch:
            latencies.append(done - r.arrival)
            late += done > r.deadline
    span = time.perf_counter() - t0
    return _point_record(
        rate_per_s, arrivals, latencies, batch_sizes, (rejected_admission, dropped), late, span
    )


def _point_record(
    rate_per_s: float,
    arrivals: list[float],
    latencies: list[float],
    batch_sizes: list[int],
    rejected: tuple[int, int],
    late: int,
    span: float,
) -> dict[str, Any]:
    """One load point's record: what was served, rejected (at admission, in the queue) and
    late, latency percentiles (``p99_all`` counts a rejected request as infinitely late)."""
    n, served = len(arrivals), len(latencies)
    rejected_admission, dropped = rejected
    rejected_total = rejected_admission + dropped
    everyone = sorted(latencies) + [math.inf] * rejected_total  # rejected: infinitely late
    p99_all = everyone[min(len(everyone) - 1, math.ceil(0.99 * len(everyone)) - 1)]
    return {
        "rate_per_s": rate_per_s,
        "requests": n,
        "offered_span_s": arrivals[-1],
        "served": served,
        "rejected_at_admission": rejected_admission,
        "dropped_in_queue": dropped,
        "rejection_rate": rejected_total / n,
        "deadline_misses": late,
        "deadline_miss_rate": late / served if served else None,
        "p50_ms": _percentile_ms(latencies, 50),
        "p90_ms": _percentile_ms(latencies, 90),
        "p99_ms": _percentile_ms(latencies, 99),
        "p99_all_ms": p99_all * 1e3 if math.isfinite(p99_all) else None,
        "mean_batch": float(np.mean(batch_sizes)) if batch_sizes else None,
        "batches": len(batch_sizes),
        "served_per_s": served / span if span > 0 else None,
        "duration_s": span,
        "_latencies": latencies,
    }


def _measured(
    monitor: EnergyMonitor, name: str, run: Callable[[], dict[str, Any]]
) -> tuple[dict[str, Any], list[float]]:
    with monitor.window(name) as w:
        point = run()
    lat = point.pop("_latencies")
    point.update(trial_summary(w.measurement, point["served"], lat).given())
    return point, lat


def serve_open_loop(
    sc: Load,
    model: nn.Module,
    task: Task,
    device: torch.device,
    monitor: EnergyMonitor,
    energy: EnergySettings,
    window: str,
) -> LoadResult:
    """Run the ``load`` scenario (see module docstring); returns its typed result."""
    threads = torch.get_num_threads()
    try:
        if sc.threads is not None:
            torch.set_num_threads(sc.threads)
        rec = _serve_open_loop(sc, model, task, device, monitor, energy, window)
    finally:
        torch.set_num_threads(threads)
    rec.threads = sc.threads if sc.threads is not None else threads
    return rec


class LoadScenario(Scenario[Load, LoadResult]):
    """Open-loop Poisson arrivals through a dynamic batcher, and the p99 sweep (module doc)."""

    name = "load"

    def run(self, ctx: ScenarioContext) -> LoadResult:
        return serve_open_loop(
            self.settings, ctx.model, ctx.task, ctx.device, ctx.monitor, ctx.energy, ctx.window
        )


def _serve_open_loop(
    sc: Load,
    model: nn.Module,
    task: Task,
    device: torch.device,
    monitor: EnergyMonitor,
    energy: EnergySettings,
    window: str,
) -> LoadResult:
    timer = make_timer(device)
    deadline_s = sc.deadline_ms / 1e3
    with torch.inference_mode():
        fns = {
            b: task.serving_step(model, b, device, model_dtype(model))
            for b in range(1, sc.max_batch + 1)
        }
        profile = measure_profile(fns, timer, max(1, sc.warmup))
        n = max(
            sc.requests, energy.min_window_iters, math.ceil(energy.min_window_s * sc.rate_per_s)
        )

        def point(
            rate: float, n_req: int, seed: int, min_s: float = 0.0
        ) -> Callable[[], dict[str, Any]]:
            return lambda: run_point(
                rate, n_req, deadline_s, sc.max_batch, fns, profile, timer, seed, min_s
            )

        points: list[dict[str, Any]] = []  # each trial's point, as measured

        def trial(k: int) -> tuple[Trial, list[float]]:
            res, lat = _measured(monitor, f"{window}/t{k}", point(sc.rate_per_s, n, k))
            points.append(res)
            return Trial(**res), lat

        trials, all_lat, _ = run_trials(energy, trial)
        agg = aggregate_trials(trials, all_lat, 1, "request", energy)
        total = sum(p["requests"] for p in points)
        served = sum(p["served"] for p in points)
        late = sum(p["deadline_misses"] for p in points)
        rejected = sum(p["rejected_at_admission"] + p["dropped_in_queue"] for p in points)
        sweep = None
        if sc.p99_target_ms is not None:
            sweep = _sweep(sc, profile, point, monitor, window)
    return LoadResult.from_group(
        agg,
        scenario="load",
        rate_per_s=sc.rate_per_s,
        deadline_ms=sc.deadline_ms,
        max_batch=sc.max_batch,
        requests_per_trial=n,
        profile=profile.to_dict(),
        deadline_miss_rate=late / served if served else None,
        rejection_rate=rejected / total if total else None,
        sweep=sweep,
    )


@dataclass(frozen=True)
class SearchResult:
    """Outcome of :func:`search_max_rate`: the highest passing rate and what kind of figure it
    is (``measured``: a failing rate within the resolution above it; ``lower``: the highest
    rate tried, the ceiling, still passed; ``none``: no rate tried passed)."""

    max_rate_per_s: float | None
    bound: str
    first_failing_rate_per_s: float | None
    lowest_rate_tried_per_s: float


def search_max_rate(
    meets: Callable[[float], bool],
    start: float,
    floor: float,
    ceiling: float,
    resolution: float = SWEEP_RESOLUTION,
    max_points: int = SWEEP_MAX_POINTS,
) -> SearchResult:
    """The highest rate for which ``meets(rate)`` holds (see the module docstring).

    Tries ``start`` (clipped to ``ceiling``); if it passes, doubles up to ``ceiling`` until a
    rate fails; if it fails, divides by ``SWEEP_DESCENT`` until a rate passes, ``floor`` the
    lowest tried. Then bisects (geometric mean) between the highest
    pass and the lowest fail while their ratio exceeds ``1 + resolution``. At most
    ``max_points`` calls of ``meets``.
    """
    calls = 0

    def probe(rate: float) -> bool:
        nonlocal calls
        calls += 1
        return meets(rate)

    rate = min(start, ceiling)
    lowest = rate
    if probe(rate):
        lo, hi = rate, None
        while hi is None and lo < ceiling and calls < max_points:
            up = min(2.0 * lo, ceiling)
            if probe(up):
                lo = up
            else:
                hi = up
        if hi is None:
            return SearchResult(lo, "lower", None, lowest)
    else:
        hi, low = rate, rate
        while True:  # down by SWEEP_DESCENT until a rate passes or the floor fails
            if low <= floor or calls >= max_points:
                return SearchResult(None, "none", low, low)
            low = max(low / SWEEP_DESCENT, floor)
            lowest = low
            if probe(low):
                lo = low
                break
            hi = low
    while hi / lo > 1.0 + resolution and calls < max_points:
        mid = math.sqrt(lo * hi)
        if probe(mid):
            lo = mid
        else:
            hi = mid
    return SearchResult(lo, "measured", hi, lowest)


def _sweep(
    sc: Load,
    profile: LatencyProfile,
    point: Callable[[float, int, int, float], Callable[[], dict[str, Any]]],
    monitor: EnergyMonitor,
    window: str,
) -> dict[str, Any]:
    """Highest rate whose p99 over all requests meets ``sc.p99_target_ms`` (see module doc)."""
    target = sc.p99_target_ms
    assert target is not None
    capacity = max(sc.max_batch / profile(sc.max_batch), 1.0 / profile(1))
    min_s = max(sc.sweep_min_s, SWEEP_TARGET_MULTIPLE * target / 1e3)
    offered = math.ceil(sc.sweep_min_requests / SWEEP_SERVED_FRACTION)
    ceiling = min(MAX_RATE, SWEEP_CEILING_FACTOR * capacity)
    points: list[dict[str, Any]] = []

    def meets(rate: float) -> bool:
        res, _ = _measured(
            monitor, f"{window}/sweep{len(points)}", point(rate, offered, 100, min_s)
        )
        p99 = res["p99_all_ms"]
        res["meets_target"] = (
            p99 is not None
            and p99 <= target
            and res["served"] >= sc.sweep_min_requests
            and res["offered_span_s"] >= min_s
        )
        points.append(res)
        return bool(res["meets_target"])

    floor = max(SWEEP_FLOOR_FACTOR * capacity, sc.sweep_min_requests / SWEEP_LONGEST_POINT_S)
    found = search_max_rate(meets, 1.25 * capacity, min(floor, capacity), ceiling)
    best = found.max_rate_per_s
    at_best = next((p for p in points if p["rate_per_s"] == best and p["meets_target"]), None)
    return {
        "p99_target_ms": target,
        "capacity_estimate_per_s": capacity,
        "max_rate_per_s": best,
        "bound": found.bound,
        "lower_bound": found.bound == "lower",
        "first_failing_rate_per_s": found.first_failing_rate_per_s,
        "lowest_rate_tried_per_s": found.lowest_rate_tried_per_s,
        "ceiling_per_s": ceiling,
        "min_requests": sc.sweep_min_requests,
        "min_s": min_s,
        "served_at_max": at_best["served"] if at_best else None,
        "duration_s_at_max": at_best["duration_s"] if at_best else None,
        "energy_per_request_j": at_best["energy_per_item_j"] if at_best else None,
        "points": [{k: v for k, v in p.items() if k not in ("measurement",)} for p in points],
    }
