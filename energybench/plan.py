"""Just-enough configuration: which measured configuration serves a target at the least energy.

Given finished runs, :func:`plan` answers "at ``rate_per_s`` requests per second with a p99
latency of at most ``p99_ms``, and quality at least ``min_quality``: which (entry x scenario x
batch size x backend) serves it at the least energy per item?" from measured points only:

- ``load`` scenarios: the measured open-loop point (Poisson arrivals) and every point of its p99
  sweep. A rate between measured points is answered from the nearest measured point at a rate
  at or above the one asked (latency measured under at least that load), and the answer says
  so (``basis`` "measured-above"); a rate above every measured point is "not measured".
- ``stream`` scenarios (periodic arrivals, batch 1): only at their own rate (``target_fps``),
  and only if they kept it: the achieved frame rate at least ``1 - STREAM_RATE_TOLERANCE`` of
  the rate asked and at most ``MAX_DEADLINE_MISS_RATE`` of frames late (a stream whose frames
  queue behind each other can keep a p99 under a loose target while delivering 22.5 of 30 fps).
- ``throughput`` scenarios are closed-loop (no arrival rate): they never answer a rate.

Nothing is interpolated: every figure in an answer is one measured point's, with the rate it was
measured at. The p99 of a ``load`` point counts rejected requests as infinitely late. Energy per
item is on the ranking basis (measured devices only unless the suite allows estimates, marked).
Every configuration that answers but does not meet the query says why (``reasons``).
This module reads the run store; it must not measure or change a run.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from energybench.records.store import RunData
from energybench.records.types import (
    EnergyStat,
    FlatResult,
    LoadResult,
    ScenarioResult,
    StreamResult,
    SweepPoint,
)
from energybench.report.tables import backend_name

#: A measured rate within this fraction of the rate asked counts as measured at that rate.
RATE_TOLERANCE = 0.02
#: Two-sided 95 % normal quantile (for one-trial sweep points: the meter's own sigma).
Z95 = 1.959963984540054
#: A stream keeps its rate if it delivered at least this fraction less than the rate asked.
STREAM_RATE_TOLERANCE = 0.05
#: A stream keeps its deadlines if at most this fraction of frames finished after their slot
#: (the same 1 % a p99 allows).
MAX_DEADLINE_MISS_RATE = 0.01

Status = Literal["meets", "none-meets", "not-measured"]


@dataclass(frozen=True)
class Point:
    """One measured serving point of one configuration."""

    run_id: str
    entry: str
    scenario: str  # the scenario's name in the suite
    scenario_kind: str  # "load" | "stream"
    batch: str  # "1" (stream) or "dynamic <= k" (load)
    backend: str  # device and serving backend, e.g. "cpu, eager", "cpu, onnxruntime"
    arrivals: str  # "poisson" | "periodic"
    rate_per_s: float  # the rate this point was measured at
    p99_ms: float | None  # None: some requests were rejected (infinitely late)
    requests: int | None  # requests (frames) the p99 is over
    energy_per_item_j: float | None
    energy_ci_j: tuple[float, float] | None
    is_estimate: bool
    quality: float | None
    quality_name: str
    origin: str  # "scenario" (its measured trials) | "sweep" (one point of the p99 sweep)
    achieved_rate_per_s: float | None = None  # streams: frames delivered per second
    deadline_miss_rate: float | None = None  # streams: fraction of frames late


@dataclass
class Answer:
    """One configuration's answer to the query: its point, the margin, and why it fails."""

    point: Point
    basis: Literal["at-rate", "measured-above"]
    margin_ms: float | None  # target - p99 (positive: meets with room)
    meets_latency: bool
    meets_quality: bool
    note: str = ""
    meets_rate: bool = True  # streams: kept the rate and the deadlines (see module doc)
    reasons: list[str] = field(default_factory=list)  # why it does not meet the query

    @property
    def meets(self) -> bool:
        return self.meets_latency and self.meets_quality and self.meets_rate

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self.point)
        d["energy_ci_j"] = list(self.point.energy_ci_j) if self.point.energy_ci_j else None
        d.update(
            basis=self.basis,
            margin_ms=self.margin_ms,
            meets_latency=self.meets_latency,
            meets_quality=self.meets_quality,
            meets_rate=self.meets_rate,
            meets=self.meets,
            note=self.note,
            rejected_because=self.reasons,
        )
        return d


@dataclass
class Plan:
    """The answer to one query: configurations that meet it (cheapest first), or why none."""

    p99_ms: float
    rate_per_s: float
    min_quality: float | None
    status: Status
    meets: list[Answer] = field(default_factory=list)
    nearest_miss: Answer | None = None
    misses: list[Answer] = field(default_factory=list)
    not_measured: list[str] = field(default_factory=list)  # one sentence per configuration

    def to_dict(self) -> dict[str, Any]:
        return {
            "query": {
                "p99_ms": self.p99_ms,
                "rate_per_s": self.rate_per_s,
                "min_quality": self.min_quality,
            },
            "status": self.status,
            "meets": [a.to_dict() for a in self.meets],
            "nearest_miss": self.nearest_miss.to_dict() if self.nearest_miss else None,
            "misses": [a.to_dict() for a in self.misses],
            "not_measured": self.not_measured,
        }


def _finite(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) and math.isfinite(v) else None


def _scenario_energy(
    sc: FlatResult, allow: bool
) -> tuple[float | None, tuple[float, float] | None, bool]:
    """J/item of a scenario over its trials with its 95 % CI, on the ranking basis."""
    measured = sc.measured_energy_per_item_j
    stats: EnergyStat | None
    if not allow and measured is not None and measured.mean is not None:
        stats, est = measured, False
    else:
        stats, est = sc.energy_per_item_j, sc.is_estimate
    if stats is None:
        return None, None, est
    lo, hi = _finite(stats.ci_low), _finite(stats.ci_high)
    ci = (max(lo, 0.0), max(hi, 0.0)) if lo is not None and hi is not None else None
    return _finite(stats.mean), ci, est


def _sweep_energy(
    p: SweepPoint, allow: bool
) -> tuple[float | None, tuple[float, float] | None, bool]:
    """J/request of one sweep point (one trial): the meter's own 95 % band as its CI."""
    mean: float | None
    if not allow and p.measured_energy_per_item_j is not None:
        mean, sigma, est = p.measured_energy_per_item_j, p.measured_sigma_per_item_j, False
    else:
        mean, sigma = p.energy_per_item_j, p.sigma_per_item_j
        m = p.measurement
        est = m.is_estimate if m else mean is not None
    mean, sigma = _finite(mean), _finite(sigma)
    ci = None
    if mean is not None and sigma is not None:
        ci = (max(mean - Z95 * sigma, 0.0), mean + Z95 * sigma)
    return mean, ci, est


def _load_p99_all(sc: LoadResult) -> float | None:
    """p99 of the scenario's own trials with rejected requests infinitely late (None: some)."""
    p99s = [t.p99_all_ms for t in sc.trials]
    known = [v for v in p99s if v is not None]
    if not p99s or len(known) < len(p99s):
        return None
    if (sc.rejection_rate or 0) > 0:
        return max(known)
    return _finite(sc.latency_ms.p99 if sc.latency_ms else None)


def points(run: RunData) -> tuple[list[Point], list[str]]:
    """Every measured rate point of a run, and a sentence per scenario that cannot answer."""
    allow = run.suite.energy.allow_estimates_in_ranking
    qname = run.suite.metric.quality
    out: list[Point] = []
    skipped: list[str] = []
    for entry, phases in run.phases.items():
        serve, ev = phases.serve, phases.evaluate
        if serve is None or not serve.done:
            continue
        quality = _finite(ev.score(qname) if ev else None)
        device = serve.device or "?"
        for name, sc in run.results(entry).items():
            kind, mode = sc.scenario, sc.compile
            served = backend_name(run, entry)  # the entry's runtime; else a scenario's compile
            how = served if served != "eager" or mode == "none" else f"compile {mode}"
            backend = f"{device}, {how}"
            common: dict[str, Any] = {
                "run_id": run.root.name,
                "entry": entry,
                "scenario": name,
                "scenario_kind": kind,
                "backend": backend,
                "quality": quality,
                "quality_name": qname,
            }
            measured = _scenario_points(sc, common, allow)
            if measured:
                out += measured
            elif kind == "throughput":
                skipped.append(
                    f"{entry}/{name} ({kind}): closed loop, no arrival rate, cannot answer a "
                    "latency at a load"
                )
            else:
                skipped.append(
                    f"{entry}/{name} ({kind}): switches between variants under contention, "
                    "not one configuration"
                )
    return out, skipped


def _scenario_points(sc: ScenarioResult, common: dict[str, Any], allow: bool) -> list[Point]:
    """The rate points a scenario measured (stream: its rate; load: its rate and its sweep's
    rates); none for a kind without an arrival rate."""
    pts: list[Point] = []
    if isinstance(sc, StreamResult):
        lat = sc.latency_ms
        e, ci, est = _scenario_energy(sc, allow)
        pts.append(
            Point(
                **common,
                batch="1",
                arrivals="periodic",
                rate_per_s=float(sc.target_fps),
                p99_ms=_finite(lat.p99 if lat else None),
                requests=lat.n if lat else None,
                energy_per_item_j=e,
                energy_ci_j=ci,
                is_estimate=est,
                origin="scenario",
                achieved_rate_per_s=_finite(sc.fps_achieved.mean if sc.fps_achieved else None),
                deadline_miss_rate=_finite(sc.deadline_miss_rate),
            )
        )
    if isinstance(sc, LoadResult):
        batch = f"dynamic <= {sc.max_batch}"
        e, ci, est = _scenario_energy(sc, allow)
        pts.append(
            Point(
                **common,
                batch=batch,
                arrivals="poisson",
                rate_per_s=float(sc.rate_per_s),
                p99_ms=_load_p99_all(sc),
                requests=sum(t.requests or 0 for t in sc.trials),
                energy_per_item_j=e,
                energy_ci_j=ci,
                is_estimate=est,
                origin="scenario",
            )
        )
        for p in sc.sweep.points if sc.sweep else []:
            e, ci, est = _sweep_energy(p, allow)
            pts.append(
                Point(
                    **common,
                    batch=batch,
                    arrivals="poisson",
                    rate_per_s=float(p.rate_per_s),
                    p99_ms=_finite(p.p99_all_ms),
                    requests=p.requests,
                    energy_per_item_j=e,
                    energy_ci_j=ci,
                    is_estimate=est,
                    origin="sweep",
                )
            )
    return pts


def _config_key(p: Point) -> tuple[str, ...]:
    return (p.run_id, p.entry, p.scenario, p.batch, p.backend)


def answer_for(
    pts: list[Point], rate_per_s: float
) -> tuple[Point, Literal["at-rate", "measured-above"]] | None:
    """The measured point of one configuration that answers ``rate_per_s``, or None.

    A point within :data:`RATE_TOLERANCE` of the rate (the scenario's own trials preferred over
    a sweep point); else, for Poisson (``load``) points only, the nearest measured rate above.
    """
    at = [p for p in pts if abs(p.rate_per_s - rate_per_s) <= RATE_TOLERANCE * rate_per_s]
    if at:
        at.sort(key=lambda p: (p.origin != "scenario", abs(p.rate_per_s - rate_per_s)))
        return at[0], "at-rate"
    above = [p for p in pts if p.arrivals == "poisson" and p.rate_per_s > rate_per_s]
    if above:
        return min(above, key=lambda p: p.rate_per_s), "measured-above"
    return None


def stream_shortfalls(p: Point, rate_per_s: float) -> list[str]:
    """Why a periodic (stream) point did not keep the rate asked (empty: it did)."""
    if p.arrivals != "periodic":
        return []
    out = []
    need = (1.0 - STREAM_RATE_TOLERANCE) * rate_per_s
    if p.achieved_rate_per_s is None:
        out.append("achieved frame rate not recorded")
    elif p.achieved_rate_per_s < need:
        out.append(
            f"achieved {p.achieved_rate_per_s:.3g} fps of {rate_per_s:g} asked "
            f"(needs >= {need:.3g})"
        )
    if p.deadline_miss_rate is None:
        out.append("deadline misses not recorded")
    elif p.deadline_miss_rate > MAX_DEADLINE_MISS_RATE:
        out.append(
            f"{100 * p.deadline_miss_rate:.3g} % of frames missed their deadline "
            f"(allowed {100 * MAX_DEADLINE_MISS_RATE:g} %)"
        )
    return out


def _answer(
    p: Point,
    basis: Literal["at-rate", "measured-above"],
    p99_ms: float,
    rate_per_s: float,
    min_quality: float | None,
) -> Answer:
    """One configuration's answer: its point judged against the query, with the reasons."""
    margin = None if p.p99_ms is None else p99_ms - p.p99_ms
    ok_q = min_quality is None or (p.quality is not None and p.quality >= min_quality)
    notes, reasons = [], []
    if basis == "measured-above":
        notes.append(
            f"measured at {p.rate_per_s:.3g}/s (above {rate_per_s:g}/s): latency under more "
            "load; J/item at that rate (idle time is shared by fewer items at a lower rate)"
        )
    if p.origin == "sweep":
        notes.append("one sweep trial")
    if p.p99_ms is None:
        notes.append("requests rejected: p99 over all requests is unbounded")
        reasons.append("requests were rejected: p99 over all requests is unbounded")
    elif margin is not None and margin < 0:
        reasons.append(f"p99 {p.p99_ms:.3g} ms > {p99_ms:g} ms")
    if min_quality is not None and p.quality is None:
        notes.append(f"no {p.quality_name} measured")
        reasons.append(f"no {p.quality_name} measured")
    elif not ok_q:
        reasons.append(f"{p.quality_name} {p.quality:.4g} < {min_quality:g}")
    short = stream_shortfalls(p, rate_per_s)
    reasons += short
    return Answer(
        point=p,
        basis=basis,
        margin_ms=margin,
        meets_latency=margin is not None and margin >= 0,
        meets_quality=ok_q,
        meets_rate=not short,
        note="; ".join(notes),
        reasons=reasons,
    )


def _unmeasured(key: tuple[str, ...], pts: list[Point], rate_per_s: float) -> str:
    """Why configuration ``key`` has no answer at ``rate_per_s``: the rates it was measured at."""
    top = max(p.rate_per_s for p in pts)
    kind = pts[0].scenario_kind
    why = (
        f"measured only up to {top:.3g}/s"
        if kind == "load"
        else f"a {kind} measured at {top:.3g}/s only (periodic arrivals)"
    )
    return f"{key[0]}: {key[1]}/{key[2]}: {rate_per_s:g}/s not measured ({why})"


def _cost(a: Answer) -> tuple[bool, float]:
    """Sort key: energy per item, unmeasured last."""
    e = a.point.energy_per_item_j
    return (e is None, e if e is not None else math.inf)


def _nearest_miss(misses: list[Answer]) -> Answer:
    """Among the misses meeting the quality floor (and the rate, if any do), the smallest
    latency overshoot (unbounded p99 last), then the cheapest."""
    pool = (
        [a for a in misses if a.meets_quality and a.meets_rate]
        or [a for a in misses if a.meets_quality]
        or misses
    )
    return min(
        pool,
        key=lambda a: (
            a.margin_ms is None,
            -(a.margin_ms if a.margin_ms is not None else 0.0),
            -(a.point.quality or -math.inf) if not a.meets_quality else 0.0,
            _cost(a),
        ),
    )


def plan(
    runs: list[RunData], p99_ms: float, rate_per_s: float, min_quality: float | None = None
) -> Plan:
    """Configurations of ``runs`` that serve ``rate_per_s`` within ``p99_ms`` at quality >=
    ``min_quality``, cheapest energy per item first (see the module docstring)."""
    groups: dict[tuple[str, ...], list[Point]] = {}
    not_measured: list[str] = []
    for run in runs:
        pts, skipped = points(run)
        not_measured += [f"{run.root.name}: {s}" for s in skipped]
        for p in pts:
            groups.setdefault(_config_key(p), []).append(p)
    answers: list[Answer] = []
    for key, pts in groups.items():
        found = answer_for(pts, rate_per_s)
        if found is None:
            not_measured.append(_unmeasured(key, pts, rate_per_s))
            continue
        p, basis = found
        answers.append(_answer(p, basis, p99_ms, rate_per_s, min_quality))
    meets = sorted((a for a in answers if a.meets), key=_cost)
    misses = [a for a in answers if not a.meets]
    if meets:
        status: Status = "meets"
    elif answers:
        status = "none-meets"
    else:
        status = "not-measured"
    nearest = _nearest_miss(misses) if not meets and misses else None
    misses.sort(key=lambda a: (a.margin_ms is None, -(a.margin_ms or 0.0)))
    return Plan(
        p99_ms=p99_ms,
        rate_per_s=rate_per_s,
        min_quality=min_quality,
        status=status,
        meets=meets,
        nearest_miss=nearest,
        misses=misses,
        not_measured=not_measured,
    )
