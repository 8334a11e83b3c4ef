"""Trials of a serving scenario: timing, one trial's summary, and trials to a precision.

Shared by every serving scenario (:mod:`energybench.serve.scenarios`,
:mod:`energybench.serve.load`, :mod:`energybench.serve.adaptive`). A trial is one
measurement window; :func:`run_trials` adds trials until J/item is known to ``target_ci`` or
``max_trials`` is reached. This module times; energy comes only from the monitor's windows.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import torch

from energybench.metrics.latency import summarize
from energybench.records.types import Group, Precision, Trial
from energybench.records.window import Window
from energybench.run.devices import current_stream
from energybench.suite.schema import EnergySettings


def make_timer(device: torch.device) -> Callable[[Callable[[], Any]], float]:
    """A function that runs ``fn`` and returns its latency in seconds, waiting for it to finish.

    On a GPU the latency comes from CUDA events recorded on the current stream of ``device``
    itself (not of whichever GPU is current), and the end event is waited for: each call is
    complete when it returns (the stream scenario needs that: a frame is served when its
    output exists). Closed-loop throughput uses :class:`WindowTimer` instead.
    """
    if device.type == "cuda":
        stream = current_stream(device)
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)

        def timed_cuda(fn: Callable[[], Any]) -> float:
            start.record(stream)
            fn()
            end.record(stream)
            end.synchronize()
            return start.elapsed_time(end) / 1e3

        return timed_cuda

    def timed(fn: Callable[[], Any]) -> float:
        t0 = time.perf_counter()
        fn()
        return time.perf_counter() - t0

    return timed


class WindowTimer:
    """Times closed-loop iterations without waiting for each one (events each iteration, one
    synchronise per window).

    On a GPU, :meth:`run` records a start and an end CUDA event around ``fn`` on the current
    stream of ``device`` and returns at once, so the host keeps queueing work and the GPU never
    idles between iterations waiting for the host; :meth:`latencies_s` waits for the last event
    (the one synchronise) and returns each iteration's GPU time. On the CPU the work is done when
    ``fn`` returns, so each latency is a ``perf_counter`` difference.
    """

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"
        self.stream = current_stream(device) if self.cuda else None
        self._events: list[tuple[Any, Any]] = []
        self._cpu_s: list[float] = []

    def run(self, fn: Callable[[], Any]) -> None:
        """Run one iteration (on a GPU: queue it)."""
        if self.cuda:
            start = torch.cuda.Event(enable_timing=True)
            end = torch.cuda.Event(enable_timing=True)
            start.record(self.stream)
            fn()
            end.record(self.stream)
            self._events.append((start, end))
            return
        t0 = time.perf_counter()
        fn()
        self._cpu_s.append(time.perf_counter() - t0)

    @property
    def iterations(self) -> int:
        return len(self._events) if self.cuda else len(self._cpu_s)

    def latencies_s(self) -> list[float]:
        """Every iteration's latency (s), after waiting once for the last one to finish."""
        if not self.cuda:
            return list(self._cpu_s)
        if self._events:
            self._events[-1][1].synchronize()
        return [s.elapsed_time(e) / 1e3 for s, e in self._events]


def _per_item(energy_j: float | None, items: int) -> float | None:
    return None if energy_j is None or items <= 0 else energy_j / items


def trial_summary(meas: Window | None, items: int, latencies: list[float]) -> Trial:
    """One measured trial: items, iterations, duration, energy and J/item of its window.

    ``energy_per_item_j`` covers every charged device (measured and estimated);
    ``measured_energy_per_item_j`` the devices read from a meter only, with the meter's own
    ~1 sigma (``measured_sigma_per_item_j``); ``estimated_energy_per_item_j`` the power models.
    ``meas`` is the closed window (None: the window never closed, a bug); the trial keeps it.
    """
    if meas is None:
        raise RuntimeError("trial_summary needs the measurement of a closed window")
    return Trial(
        items=items,
        iterations=len(latencies),
        duration_s=meas.duration_s,
        energy_j=meas.energy_j,
        energy_per_item_j=_per_item(meas.energy_j, items),
        sigma_per_item_j=_per_item(meas.uncertainty_j, items),
        measured_energy_per_item_j=_per_item(meas.measured_energy_j, items),
        measured_sigma_per_item_j=_per_item(meas.measured_uncertainty_j, items),
        estimated_energy_per_item_j=_per_item(meas.estimated_energy_j, items),
        measurement=meas,
    )


#: Two-sided 95 % normal quantile, for the meter's own (systematic) uncertainty.
Z95 = 1.959963984540054


def energy_stats(values: list[float], sigmas: list[float | None]) -> dict[str, Any] | None:
    """Statistics of J/item over trials, with a 95 % interval that combines both uncertainties.

    ``stat_ci_low``/``stat_ci_high``: the t-interval of the mean from trial-to-trial spread.
    ``meter_sigma``: the meter's own ~1 sigma per item (mean over trials; treated as fully
    correlated between trials, since a sensor gain error does not average out).
    ``ci_low``/``ci_high``: mean ± sqrt(t half-width² + (1.96 · meter_sigma)²).
    """
    if not values:
        return None
    st = summarize(values)
    d = st.to_dict()
    known = [x for x in sigmas if x is not None]
    meter = sum(known) / len(known) if known else None
    d["stat_ci_low"], d["stat_ci_high"] = d["ci_low"], d["ci_high"]
    d["meter_sigma"] = meter
    d["rel_stat_ci"] = None if math.isnan(st.rel_ci) else st.rel_ci
    if math.isnan(st.ci_half_width) and meter is None:
        return d
    spread = 0.0 if math.isnan(st.ci_half_width) else st.ci_half_width
    half = math.hypot(spread, Z95 * (meter or 0.0))
    d["ci_low"], d["ci_high"] = st.mean - half, st.mean + half
    return d


def _has_meter(trial: Trial) -> bool:
    """Whether a trial's window charged a device read (or meant to be read) by a meter."""
    if trial.measured_energy_per_item_j is not None:
        return True
    return any(d.charged and not d.is_estimate for d in trial.measurement.devices)


def ranking_basis(trials: list[Trial], allow_estimates: bool) -> str:
    """The one J/item every figure of a group is judged and ranked on, chosen from the suite's
    ``allow_estimates_in_ranking``: "all" (every charged device, estimates included) when it is
    set; else "measured" (meters only) when a meter covers a charged device in any trial; else
    "all" (an estimate-only machine: the figure is an estimate, shown and left unranked)."""
    if allow_estimates or not any(_has_meter(t) for t in trials):
        return "all"
    return "measured"


def basis_keys(basis: str) -> tuple[str, str]:
    """The trial fields (J/item, its meter sigma) of a basis from :func:`ranking_basis`."""
    if basis == "measured":
        return "measured_energy_per_item_j", "measured_sigma_per_item_j"
    return "energy_per_item_j", "sigma_per_item_j"


def _rel(half: float, mean: float) -> float | None:
    return None if mean == 0 or not math.isfinite(half) else abs(half / mean)


def precision(trials: list[Trial], energy: EnergySettings) -> Precision:
    """Whether the trials' J/item reached ``energy.target_ci``, on the ranking basis.

    ``rel_ci``: half-width / mean of the 95 % interval that is ranked (trial spread and the
    meter's own uncertainty combined, as in :func:`energy_stats`); ``rel_stat_ci``: its
    trial-spread part alone. ``reached`` compares ``rel_stat_ci`` with the target: more trials
    shrink the spread, never a sensor's gain error. Trials with no figure on the basis (a gap in
    their window) are left out of both and counted in ``trials_without_energy``.
    """
    basis = ranking_basis(trials, energy.allow_estimates_in_ranking)
    key, sigma = basis_keys(basis)
    rows = [t for t in trials if getattr(t, key) is not None]
    st = energy_stats([getattr(t, key) for t in rows], [getattr(t, sigma) for t in rows])
    rel = rel_stat = None
    if st is not None and len(rows) >= 2 and st["mean"]:
        rel_stat = st["rel_stat_ci"]
        if st["ci_high"] is not None and st["ci_low"] is not None:
            rel = _rel((st["ci_high"] - st["ci_low"]) / 2, st["mean"])
    return Precision(
        basis=basis,
        target_ci=energy.target_ci,
        rel_ci=rel,
        rel_stat_ci=rel_stat,
        reached=rel_stat is not None and rel_stat <= energy.target_ci,
        trials=len(trials),
        trials_without_energy=len(trials) - len(rows),
        min_trials=energy.trials,
        max_trials=energy.max_trials,
    )


def run_trials(
    energy: EnergySettings, one: Callable[[int], tuple[Trial, list[float]]]
) -> tuple[list[Trial], list[float], Precision]:
    """Run ``one(k)`` for k = 0, 1, ... until J/item is precise enough.

    At least ``energy.trials`` trials; then more until the 95 % CI half-width of J/item (trial
    to trial) is at most ``energy.target_ci`` of the mean, or ``energy.max_trials`` is reached.
    The meter's own (systematic) uncertainty is not a stopping criterion: more trials cannot
    reduce it. Returns the trials, all latencies and the precision record.
    """
    trials: list[Trial] = []
    lat: list[float] = []
    while True:
        trial, trial_lat = one(len(trials))
        trials.append(trial)
        lat += trial_lat
        prec = precision(trials, energy)
        if len(trials) >= energy.max_trials:
            return trials, lat, prec
        if len(trials) >= energy.trials and prec.reached:
            return trials, lat, prec


def aggregate_trials(
    trials: list[Trial],
    latencies: list[float],
    items_per_iter: int,
    unit: str,
    energy: EnergySettings | None = None,
) -> Group:
    """A scenario's statistics over its trials: latency, items/s and J/item with 95 % CIs.

    J/item is given for every charged device (``energy_per_item_j``), for measured devices only
    (``measured_energy_per_item_j``) and for the estimates (``estimated_energy_per_item_j``).
    Trials whose window lost its energy are counted in ``trials_without_energy``, never
    dropped silently.
    """
    lat_ms = [x * 1e3 for x in latencies]
    ips = [t.items / t.duration_s for t in trials if t.duration_s > 0]
    ms = [t.measurement for t in trials]

    def stats(key: str, sigma: str | None) -> dict[str, Any] | None:
        rows = [t for t in trials if getattr(t, key) is not None]
        sigmas = [getattr(t, sigma) if sigma else None for t in rows]
        return energy_stats([getattr(t, key) for t in rows], sigmas)

    basis = ranking_basis(trials, bool(energy and energy.allow_estimates_in_ranking))
    without = sum(1 for t in trials if getattr(t, basis_keys(basis)[0]) is None)
    group = Group(
        unit=unit,
        items_per_iteration=items_per_iter,
        latency_ms=summarize(lat_ms).to_dict() if lat_ms else None,
        items_per_s=summarize(ips).to_dict() if ips else None,
        energy_per_item_j=stats("energy_per_item_j", "sigma_per_item_j"),
        measured_energy_per_item_j=stats("measured_energy_per_item_j", "measured_sigma_per_item_j"),
        estimated_energy_per_item_j=stats("estimated_energy_per_item_j", None),
        trials_total=len(trials),
        basis=basis,
        trials_without_energy=without,
        measured_kinds=sorted({k for m in ms for k in m.measured_kinds}),
        estimated_kinds=sorted({k for m in ms for k in m.estimated_kinds}),
        sources=sorted({s for m in ms for s in m.sources}),
        is_estimate=any(m.is_estimate for m in ms),
        is_shared=any(m.is_shared for m in ms),
        is_simulated=any(m.is_simulated for m in ms),
        flags=sorted({f for m in ms for f in m.flags}),
        trials=trials,
    )
    if energy is not None:
        group.precision = precision(trials, energy)
    return group


#: Keys of a scenario record that summarise its (first) batch size.
SUMMARY_KEYS = (
    "latency_ms",
    "items_per_s",
    "energy_per_item_j",
    "measured_energy_per_item_j",
    "estimated_energy_per_item_j",
    "trials_total",
    "trials_without_energy",
    "basis",
    "measured_kinds",
    "estimated_kinds",
    "sources",
    "is_estimate",
    "is_shared",
    "is_simulated",
    "flags",
    "precision",
)
