"""Serving scenarios: closed-loop throughput and online streaming, each in measurement windows.

Discipline for every scenario: warm-up iterations excluded; each trial is one window lengthened by
repetition to at least ``min_window_s`` seconds and ``min_window_iters`` iterations, so that the
power sensor sees it; several trials give a confidence interval on latency and J/item.
This module times and schedules; energy comes only from the monitor's windows.
"""

from __future__ import annotations

import copy
import inspect
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from energybench.meters.base import EnergyMonitor
from energybench.metrics.latency import summarize
from energybench.models.sr.base import online
from energybench.records.types import (
    Group,
    ScenarioResult,
    StreamResult,
    ThroughputResult,
    Trial,
    parse_scenario,
)
from energybench.serve.trials import (
    SUMMARY_KEYS,
    WindowTimer,
    aggregate_trials,
    make_timer,
    run_trials,
    trial_summary,
)
from energybench.suite.scenarios import SERVE_SCENARIOS, ScenarioSettings
from energybench.suite.schema import EnergySettings, Stream, Throughput
from energybench.tasks.base import Task, model_dtype


def run_throughput(
    sc: Throughput,
    model: nn.Module,
    task: Task,
    device: torch.device,
    monitor: EnergyMonitor,
    energy: EnergySettings,
    window: str,
) -> ThroughputResult:
    """Closed loop at each batch size: items/s, latency per batch, J/item.

    Iterations are queued back to back (:class:`WindowTimer`: CUDA events each iteration, one
    synchronise at the window's end), as a serving loop runs; a synchronise per iteration would
    leave the GPU idle between iterations and charge that idle time to the model. The window's
    own closing synchronise makes the queued work part of the window.
    """
    results: dict[str, Group] = {}
    min_iters = max(sc.iterations, energy.min_window_iters)
    with torch.inference_mode():
        for b in sc.batch_sizes:
            fn = task.serving_step(model, b, device, model_dtype(model))
            warm = WindowTimer(device)
            for _ in range(sc.warmup):
                warm.run(fn)
            warm.latencies_s()  # the warm-up is finished before the first window opens

            def one(k: int, b: int = b, fn: Callable[[], Any] = fn) -> tuple[Trial, list[float]]:
                timer = WindowTimer(device)
                with monitor.window(f"{window}/b{b}/t{k}") as w:
                    t0 = time.perf_counter()
                    while (
                        timer.iterations < min_iters
                        or time.perf_counter() - t0 < energy.min_window_s
                    ):
                        timer.run(fn)
                    lat = timer.latencies_s()
                return trial_summary(w.measurement, len(lat) * b, lat), lat

            trials, all_lat, _ = run_trials(energy, one)
            results[str(b)] = aggregate_trials(trials, all_lat, b, "item", energy)
    first = results[str(sc.batch_sizes[0])].given()
    return ThroughputResult(
        scenario="throughput",
        batch_sizes=sc.batch_sizes,
        by_batch=results,
        **{k: first[k] for k in SUMMARY_KEYS if k in first},
    )


def run_stream(
    sc: Stream,
    model: nn.Module,
    task: Task,
    device: torch.device,
    monitor: EnergyMonitor,
    energy: EnergySettings,
    window: str,
) -> StreamResult:
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

        def one(k: int) -> tuple[Trial, list[float]]:
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
            span = last_done - first_done  # steady output rate: frames delivered per second
            fps = (frames - 1) / span if frames > 1 and span > 0 else None
            trial.deadline_misses, trial.fps_achieved = misses, fps  # the stream's own figures
            misses_total += misses
            frames_total += frames
            if fps:
                fps_achieved.append(fps)
            return trial, lat

        trials, all_lat, _ = run_trials(energy, one)
    return StreamResult.from_group(
        aggregate_trials(trials, all_lat, 1, "frame", energy),
        scenario="stream",
        target_fps=sc.fps,
        frames_per_trial=frames,
        deadline_miss_rate=misses_total / frames_total if frames_total else None,
        deadline_misses=misses_total,
        fps_achieved=summarize(fps_achieved).to_dict() if fps_achieved else None,
    )


def compiled_for_serving(model: nn.Module, mode: str) -> nn.Module:
    """A shallow copy of ``model`` whose ``forward`` (and online ``step``) go through
    ``torch.compile(mode=mode)``; weights are shared. ``mode == "none"``: the model itself.

    ``reduce-overhead`` replays CUDA graphs whose outputs live in the graph's static memory,
    overwritten by the next replay; an online model feeds its previous state back in, and
    callers keep outputs. So each call starts a new graph step
    (``torch.compiler.cudagraph_mark_step_begin``) and its outputs and state are copied out of
    the graph's buffers (:func:`_graph_safe`), on every torch version allowed."""
    if mode == "none":
        return model
    out = copy.copy(model)
    forward = torch.compile(model.forward, mode=mode)
    step = online(model).step if callable(getattr(model, "step", None)) else None
    compiled_step = torch.compile(step, mode=mode) if step is not None else None
    if mode == "reduce-overhead":
        forward = _graph_safe(forward)
        compiled_step = _graph_safe(compiled_step) if compiled_step is not None else None
    out.forward = forward
    if compiled_step is not None:
        setattr(out, "step", compiled_step)  # noqa: B010
    return out


def _graph_safe(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` (a CUDA-graph-compiled call) with a graph step begun before each call and every
    tensor it returns cloned out of the graph's static output buffers."""
    from torch.utils._pytree import tree_map

    def call(*args: Any) -> Any:
        torch.compiler.cudagraph_mark_step_begin()
        result = fn(*args)
        return tree_map(lambda t: t.clone() if isinstance(t, torch.Tensor) else t, result)

    return call


def _no_variants(name: str) -> nn.Module:
    raise LookupError(f"this scenario has no variant '{name}' (only adaptive serving has any)")


@dataclass(frozen=True)
class ScenarioContext:
    """What a serving scenario gets besides its settings: the served model, the task, the
    device, the run's monitor and energy settings, the measurement window's name, and
    ``variant(name)``: another entry's final model on its own backend (the ``adaptive``
    scenario's variants, loaded when asked)."""

    model: nn.Module
    task: Task
    device: torch.device
    monitor: EnergyMonitor
    energy: EnergySettings
    window: str
    variant: Callable[[str], nn.Module] = _no_variants


def takes_context(fn: Callable[..., Any]) -> bool:
    """Whether a registered scenario function is ``fn(settings, ctx)`` (a
    :class:`ScenarioContext`) rather than the seven-argument form
    ``fn(settings, model, task, device, monitor, energy, window)``."""
    return len(inspect.signature(fn).parameters) == 2


def run_scenario(
    sc: ScenarioSettings,
    model: nn.Module,
    task: Task,
    device: torch.device,
    monitor: EnergyMonitor,
    energy: EnergySettings,
    window: str,
    variant: Callable[[str], nn.Module] = _no_variants,
) -> ScenarioResult:
    """Run one serving scenario; returns its typed result (latency, throughput, J/item with
    CIs), of the kind its result class declares (:data:`~energybench.records.types.RESULT_KINDS`).

    With ``compile`` set, the model is served through ``torch.compile``; compilation happens in
    the scenario's warm-up (at least one iteration), outside every measured window. Every
    scenario, ``adaptive`` included, runs through its registered function; ``variant`` gives
    the other entries' models to those that take a :class:`ScenarioContext`.
    """
    if sc.compile != "none":
        model = compiled_for_serving(model, sc.compile)
        if sc.warmup == 0:
            sc = sc.model_copy(update={"warmup": 1})
    runner = SERVE_SCENARIOS.get(sc.scenario)  # the registered scenario's runner
    if takes_context(runner):
        record = runner(sc, ScenarioContext(model, task, device, monitor, energy, window, variant))
    else:
        record = runner(sc, model, task, device, monitor, energy, window)
    if isinstance(record, dict):  # a plug-in's scenario returned a plain dict: typed here
        record = parse_scenario(record)
    record.compile = sc.compile
    return record
