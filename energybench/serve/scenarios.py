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
from dataclasses import replace
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
from energybench.serve.base import Scenario, ScenarioContext
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


def _paced_frames(
    timer: Callable[[Callable[[], Any]], float], fn: Callable[[], Any], frames: int, period: float
) -> tuple[list[float], int, float, float]:
    """Serve ``frames`` frames arriving every ``period`` s; each frame's latency (s, from its
    arrival: queueing behind a late frame counts), the deadline misses, and when the first
    and last frames were done (``time.perf_counter``). Returns on the next frame slot."""
    lat: list[float] = []
    misses = 0
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
    return lat, misses, first_done, last_done


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
            with monitor.window(f"{window}/t{k}") as w:
                lat, misses, first_done, last_done = _paced_frames(timer, fn, frames, period)
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


class ThroughputScenario(Scenario[Throughput, ThroughputResult]):
    """Closed loop at each batch size: items/s, latency per batch, J/item."""

    name = "throughput"

    def run(self, ctx: ScenarioContext) -> ThroughputResult:
        return run_throughput(
            self.settings, ctx.model, ctx.task, ctx.device, ctx.monitor, ctx.energy, ctx.window
        )


class StreamScenario(Scenario[Stream, StreamResult]):
    """Online video: one frame every 1/fps s at batch 1; misses, latency, J/frame incl. idle."""

    name = "stream"

    def run(self, ctx: ScenarioContext) -> StreamResult:
        return run_stream(
            self.settings, ctx.model, ctx.task, ctx.device, ctx.monitor, ctx.energy, ctx.window
        )


def run_scenario(sc: ScenarioSettings, ctx: ScenarioContext) -> ScenarioResult:
    """Run one serving scenario in ``ctx``; returns its typed result (latency, throughput,
    J/item with CIs), of the kind its result class declares
    (:data:`~energybench.records.types.RESULT_KINDS`).

    With ``compile`` set, the model is served through ``torch.compile``; compilation happens in
    the scenario's warm-up (at least one iteration), outside every measured window. Every
    scenario, ``adaptive`` included, is its registered :class:`Scenario` class, run the same
    way; a plug-in may still register a plain function ``fn(settings, ctx)`` returning its
    result or a dict of it (typed here by its kind).
    """
    if sc.compile != "none":
        ctx = replace(ctx, model=compiled_for_serving(ctx.model, sc.compile))
        if sc.warmup == 0:
            sc = sc.model_copy(update={"warmup": 1})
    entry = SERVE_SCENARIOS.get(sc.scenario)  # the registered scenario
    if isinstance(entry, type) and issubclass(entry, Scenario):
        record: Any = entry(sc).run(ctx)
        if not isinstance(record, entry.result_type):
            raise TypeError(
                f"scenario '{sc.scenario}' returned a {type(record).__name__}, "
                f"not its result type {entry.result_type.__name__}"
            )
    else:
        record = entry(sc, ctx)
        if isinstance(record, dict):
            record = parse_scenario(record)
    record.compile = sc.compile
    return record
