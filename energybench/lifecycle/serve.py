"""Serving scenarios: closed-loop throughput and online streaming, each in measurement windows.

Discipline for every scenario: warm-up iterations excluded; each trial is one window lengthened by
repetition to at least ``min_window_s`` seconds and ``min_window_iters`` iterations, so that the
power sensor sees it; several trials give a confidence interval on latency and J/item.
This module times and schedules; energy comes only from the monitor's windows.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from energybench.lifecycle.tasks import Task, model_dtype
from energybench.meters.base import EnergyMonitor, Measurement
from energybench.metrics.latency import summarize
from energybench.suite.schema import EnergySettings, Load, Stream, Throughput


def make_timer(device: torch.device) -> Callable[[Callable[[], Any]], float]:
    """A function that runs ``fn`` and returns its latency in seconds (CUDA events on GPUs)."""
    if device.type == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)

        def timed_cuda(fn: Callable[[], Any]) -> float:
            start.record()
            fn()
            end.record()
            end.synchronize()
            return start.elapsed_time(end) / 1e3

        return timed_cuda

    def timed(fn: Callable[[], Any]) -> float:
        t0 = time.perf_counter()
        fn()
        return time.perf_counter() - t0

    return timed


def _per_item(energy_j: float | None, items: int) -> float | None:
    return None if energy_j is None or items <= 0 else energy_j / items


def trial_summary(meas: Measurement, items: int, latencies: list[float]) -> dict[str, Any]:
    """One measured trial: items, iterations, duration, energy and J/item of its window.

    ``energy_per_item_j`` covers every charged device (measured and estimated);
    ``measured_energy_per_item_j`` the devices read from a meter only, with the meter's own
    ~1 sigma (``measured_sigma_per_item_j``); ``estimated_energy_per_item_j`` the power models.
    """
    return {
        "items": items,
        "iterations": len(latencies),
        "duration_s": meas.duration_s,
        "energy_j": meas.energy_j,
        "energy_per_item_j": _per_item(meas.energy_j, items),
        "sigma_per_item_j": _per_item(meas.uncertainty_j, items),
        "measured_energy_per_item_j": _per_item(meas.measured_energy_j, items),
        "measured_sigma_per_item_j": _per_item(meas.measured_uncertainty_j, items),
        "estimated_energy_per_item_j": _per_item(meas.estimated_energy_j, items),
        "measurement": meas.to_dict(),
    }


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


def ranking_basis(trials: list[dict[str, Any]]) -> str:
    """Which J/item the trials' precision is judged on: "measured" when every trial has a
    measured figure, else "all" (estimates included)."""
    if trials and all(t.get("measured_energy_per_item_j") is not None for t in trials):
        return "measured"
    return "all"


def _basis_key(basis: str) -> str:
    return "measured_energy_per_item_j" if basis == "measured" else "energy_per_item_j"


def precision(trials: list[dict[str, Any]], energy: EnergySettings) -> dict[str, Any]:
    """Whether the trials' J/item reached ``energy.target_ci`` (95 % CI half-width / mean)."""
    basis = ranking_basis(trials)
    vals = [t[_basis_key(basis)] for t in trials if t.get(_basis_key(basis)) is not None]
    rel = None
    if len(vals) >= 2:
        st = summarize(vals)
        rel = None if math.isnan(st.rel_ci) else st.rel_ci
    return {
        "basis": basis,
        "target_ci": energy.target_ci,
        "rel_ci": rel,
        "reached": rel is not None and rel <= energy.target_ci,
        "trials": len(trials),
        "min_trials": energy.trials,
        "max_trials": energy.max_trials,
    }


def run_trials(
    energy: EnergySettings, one: Callable[[int], tuple[dict[str, Any], list[float]]]
) -> tuple[list[dict[str, Any]], list[float], dict[str, Any]]:
    """Run ``one(k)`` for k = 0, 1, ... until J/item is precise enough.

    At least ``energy.trials`` trials; then more until the 95 % CI half-width of J/item (trial
    to trial) is at most ``energy.target_ci`` of the mean, or ``energy.max_trials`` is reached.
    The meter's own (systematic) uncertainty is not a stopping criterion: more trials cannot
    reduce it. Returns the trials, all latencies and the precision record.
    """
    trials: list[dict[str, Any]] = []
    lat: list[float] = []
    while True:
        trial, trial_lat = one(len(trials))
        trials.append(trial)
        lat += trial_lat
        prec = precision(trials, energy)
        if len(trials) >= energy.max_trials:
            return trials, lat, prec
        if len(trials) >= energy.trials and prec["reached"]:
            return trials, lat, prec


def aggregate_trials(
    trials: list[dict[str, Any]],
    latencies: list[float],
    items_per_iter: int,
    unit: str,
    energy: EnergySettings | None = None,
) -> dict[str, Any]:
    """A scenario's statistics over its trials: latency, items/s and J/item with 95 % CIs.

    J/item is given for every charged device (``energy_per_item_j``), for measured devices only
    (``measured_energy_per_item_j``) and for the estimates (``estimated_energy_per_item_j``).
    Trials whose window lost its energy are counted in ``trials_without_energy``, never
    dropped silently.
    """
    lat_ms = [x * 1e3 for x in latencies]
    ips = [t["items"] / t["duration_s"] for t in trials if t["duration_s"] > 0]
    ms = [t["measurement"] for t in trials]

    def stats(key: str, sigma: str | None) -> dict[str, Any] | None:
        rows = [t for t in trials if t.get(key) is not None]
        return energy_stats([t[key] for t in rows], [t.get(sigma) if sigma else None for t in rows])

    basis = ranking_basis(trials)
    out = {
        "unit": unit,
        "items_per_iteration": items_per_iter,
        "latency_ms": summarize(lat_ms).to_dict() if lat_ms else None,
        "items_per_s": summarize(ips).to_dict() if ips else None,
        "energy_per_item_j": stats("energy_per_item_j", "sigma_per_item_j"),
        "measured_energy_per_item_j": stats(
            "measured_energy_per_item_j", "measured_sigma_per_item_j"
        ),
        "estimated_energy_per_item_j": stats("estimated_energy_per_item_j", None),
        "trials_total": len(trials),
        "trials_without_energy": sum(1 for t in trials if t.get(_basis_key(basis)) is None),
        "measured_kinds": sorted({k for m in ms for k in m.get("measured_kinds", [])}),
        "estimated_kinds": sorted({k for m in ms for k in m.get("estimated_kinds", [])}),
        "sources": sorted({s for m in ms for s in m["sources"]}),
        "is_estimate": any(m["is_estimate"] for m in ms),
        "is_shared": any(m.get("is_shared") for m in ms),
        "is_simulated": any(m.get("is_simulated") for m in ms),
        "flags": sorted({f for m in ms for f in m["flags"]}),
        "trials": trials,
    }
    if energy is not None:
        out["precision"] = precision(trials, energy)
    return out


#: Keys of a scenario record that summarise its (first) batch size.
SUMMARY_KEYS = (
    "latency_ms",
    "items_per_s",
    "energy_per_item_j",
    "measured_energy_per_item_j",
    "estimated_energy_per_item_j",
    "trials_total",
    "trials_without_energy",
    "measured_kinds",
    "estimated_kinds",
    "sources",
    "is_estimate",
    "is_shared",
    "is_simulated",
    "flags",
    "precision",
)


def run_throughput(
    sc: Throughput,
    model: nn.Module,
    task: Task,
    device: torch.device,
    monitor: EnergyMonitor,
    energy: EnergySettings,
    window: str,
) -> dict[str, Any]:
    """Closed loop at each batch size: items/s, latency per batch, J/item."""
    timer = make_timer(device)
    results: dict[str, Any] = {}
    min_iters = max(sc.iterations, energy.min_window_iters)
    with torch.inference_mode():
        for b in sc.batch_sizes:
            fn = task.serving_step(model, b, device, model_dtype(model))
            for _ in range(sc.warmup):
                timer(fn)

            def one(
                k: int, b: int = b, fn: Callable[[], Any] = fn
            ) -> tuple[dict[str, Any], list[float]]:
                lat: list[float] = []
                with monitor.window(f"{window}/b{b}/t{k}") as w:
                    t0 = time.perf_counter()
                    while len(lat) < min_iters or time.perf_counter() - t0 < energy.min_window_s:
                        lat.append(timer(fn))
                return trial_summary(w.measurement, len(lat) * b, lat), lat

            trials, all_lat, _ = run_trials(energy, one)
            results[str(b)] = aggregate_trials(trials, all_lat, b, "item", energy)
    first = results[str(sc.batch_sizes[0])]
    return {
        "scenario": "throughput",
        "batch_sizes": sc.batch_sizes,
        "by_batch": results,
        **{k: first[k] for k in SUMMARY_KEYS},
    }


def run_stream(
    sc: Stream,
    model: nn.Module,
    task: Task,
    device: torch.device,
    monitor: EnergyMonitor,
    energy: EnergySettings,
    window: str,
) -> dict[str, Any]:
    """Online video: one frame every 1/fps s at batch 1; misses, latency, J/frame incl. idle."""
    timer = make_timer(device)
    period = 1.0 / sc.fps
    # a trial's window spans n frame slots (it ends on the next slot), so n >= fps x min_window_s
    frames = max(sc.frames, energy.min_window_iters, math.ceil(energy.min_window_s * sc.fps))
    misses_total, frames_total, fps_achieved = 0, 0, []
    with torch.inference_mode():
        fn = task.serving_step(model, 1, device, model_dtype(model))
        for _ in range(sc.warmup):
            timer(fn)

        def one(k: int) -> tuple[dict[str, Any], list[float]]:
            nonlocal misses_total, frames_total
            lat, misses = [], 0
            with monitor.window(f"{window}/t{k}") as w:
                t0 = time.perf_counter()
                last_done = first_done = t0
                for i in range(frames):
                    arrival = t0 + i * period
                    wait = arrival - time.perf_counter()
                    if wait > 0:
                        time.sleep(wait)
                    timer(fn)
                    last_done = time.perf_counter()
                    if i == 0:
                        first_done = last_done
                    latency = last_done - arrival  # queueing behind a late frame counts
                    lat.append(latency)
                    if latency > period:
                        misses += 1
                # the window ends on the next frame slot: n frames <-> n frame periods, the
                # idle time after the last frame included (a late last frame ends it later)
                tail = t0 + frames * period - time.perf_counter()
                if tail > 0:
                    time.sleep(tail)
            trial = trial_summary(w.measurement, frames, lat)
            trial["deadline_misses"] = misses
            span = last_done - first_done  # steady output rate: frames delivered per second
            trial["fps_achieved"] = (frames - 1) / span if frames > 1 and span > 0 else None
            misses_total += misses
            frames_total += frames
            if trial["fps_achieved"]:
                fps_achieved.append(trial["fps_achieved"])
            return trial, lat

        trials, all_lat, _ = run_trials(energy, one)
    agg = aggregate_trials(trials, all_lat, 1, "frame", energy)
    return {
        "scenario": "stream",
        "target_fps": sc.fps,
        "frames_per_trial": frames,
        "deadline_miss_rate": misses_total / frames_total if frames_total else None,
        "deadline_misses": misses_total,
        "fps_achieved": summarize(fps_achieved).to_dict() if fps_achieved else None,
        **agg,
    }


def run_load(
    sc: Load,
    model: nn.Module,
    task: Task,
    device: torch.device,
    monitor: EnergyMonitor,
    energy: EnergySettings,
    window: str,
) -> dict[str, Any]:
    """Open-loop Poisson arrivals with a deadline-aware dynamic batcher (see batcher.py)."""
    from energybench.lifecycle.batcher import serve_open_loop

    return serve_open_loop(sc, model, task, device, monitor, energy, window)


RUNNERS: dict[str, Callable[..., dict[str, Any]]] = {
    "throughput": run_throughput,
    "stream": run_stream,
    "load": run_load,
}


def compiled_for_serving(model: nn.Module, mode: str) -> nn.Module:
    """A shallow copy of ``model`` whose ``forward`` (and online ``step``) go through
    ``torch.compile(mode=mode)``; weights are shared. ``mode == "none"``: the model itself."""
    if mode == "none":
        return model
    out = copy.copy(model)
    out.forward = torch.compile(model.forward, mode=mode)  # type: ignore[method-assign]
    if callable(getattr(model, "step", None)):
        out.step = torch.compile(model.step, mode=mode)  # type: ignore[method-assign]
    return out


def run_scenario(
    sc: Throughput | Stream | Load,
    model: nn.Module,
    task: Task,
    device: torch.device,
    monitor: EnergyMonitor,
    energy: EnergySettings,
    window: str,
) -> dict[str, Any]:
    """Run one serving scenario; returns its record (latency, throughput, J/item with CIs).

    With ``compile`` set, the model is served through ``torch.compile``; compilation happens in
    the scenario's warm-up (at least one iteration), outside every measured window.
    """
    if sc.compile != "none":
        model = compiled_for_serving(model, sc.compile)
        if sc.warmup == 0:
            sc = sc.model_copy(update={"warmup": 1})
    record = RUNNERS[sc.scenario](sc, model, task, device, monitor, energy, window)
    record["compile"] = sc.compile
    return record
