"""The ``adaptive`` scenario: a stream at a target fps under a declared contention schedule,
served by a policy that switches between already-loaded variants (after DySR).

Frames of the held-out test clips (LR in, HR for PSNR) arrive every 1/fps s. A frame whose
deadline has already passed when the server gets to it is dropped (a video player shows the
previous frame): a miss, never queued forever. After each frame the policy
(:mod:`energybench.serve.policies`) picks the variant of the next frame; a switch resets the
new variant's recurrent state (its cost, the time to do so, is recorded with the switch).
Contention comes from a separate process (:mod:`energybench.serve.contention`) started
before and always stopped after each run. With ``baseline`` the ``static`` policy runs first
under the same schedule. Each run is one measurement window ending on the next frame slot, so
energy per frame includes idle time and the generator's own work on the same device (the same
for both policies). This module times and schedules; energy comes only from the monitor.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from energybench.meters.base import EnergyMonitor
from energybench.metrics.latency import summarize
from energybench.records.types import AdaptiveResult
from energybench.run.devices import on_cuda, synchronize
from energybench.serve.base import Scenario, ScenarioContext
from energybench.serve.contention import Contention
from energybench.serve.policies import POLICIES, FrameObservation
from energybench.serve.trials import aggregate_trials, trial_summary
from energybench.suite.schema import Adaptive, EnergySettings
from energybench.tasks.base import Task, model_dtype


class Variant:
    """One loaded model with its own recurrent state, fed one LR frame at a time."""

    def __init__(self, name: str, model: nn.Module, device: torch.device) -> None:
        self.name, self.model, self.device = name, model, device
        self.dtype = model_dtype(model)
        self.step = getattr(model, "step", None)
        self.state: Any = None

    def reset(self, frame: torch.Tensor) -> None:
        init = getattr(self.model, "init_state", None)
        self.state = init(self._in(frame)) if init is not None else None

    def _in(self, frame: torch.Tensor) -> torch.Tensor:
        x = frame.to(self.device).unsqueeze(0)
        return x.to(self.dtype) if self.dtype is not None and self.dtype != x.dtype else x

    def __call__(self, frame: torch.Tensor) -> torch.Tensor:
        x = self._in(frame)
        if self.step is None:
            out = self.model(x)
        else:
            out, self.state = self.step(x, self.state)
        synchronize(self.device)  # the frame is served when its output exists
        return out


def _frames(task: Task) -> tuple[torch.Tensor, torch.Tensor]:
    """LR and HR frames (T,3,h,w) of the test split, clips one after another."""
    clips = task.dataset.clips("test")  # type: ignore[attr-defined]
    shape = clips[0].lr.shape[1:]
    same = [c for c in clips if c.lr.shape[1:] == shape]
    return torch.cat([c.lr for c in same]), torch.cat([c.hr for c in same])


def contention_target(setting: str, device: torch.device) -> str:
    """Where the contention generator runs: on a GPU, the served entry's own GPU (``cuda:N``,
    never "the first GPU"); ``setting`` is the scenario's ``contention_device``."""
    kind = device.type if setting == "auto" else setting
    if kind != "cuda":
        return kind
    if device.type == "cuda":
        return str(on_cuda(device))
    return "cuda"  # a CPU entry asking for GPU contention: the first GPU (as configured)


def threads_at(schedule: list[tuple[float, int]], t_s: float) -> int:
    """Contention workers the schedule declares at ``t_s`` seconds into the stream."""
    due = [n for at, n in schedule if at <= t_s]
    return due[-1] if due else 0


@dataclass
class _StreamLog:
    """What happened to each frame of one stream (arrival, latency, variant, miss) and each
    switch, as :func:`stream_once` serves it."""

    t_arr: list[float] = field(default_factory=list)
    lat_ms: list[float | None] = field(default_factory=list)
    used: list[int] = field(default_factory=list)
    missed: list[bool] = field(default_factory=list)
    done_at: list[float] = field(default_factory=list)
    switches: list[dict[str, Any]] = field(default_factory=list)
    outputs: list[torch.Tensor | None] = field(default_factory=list)
    served_lat: list[float] = field(default_factory=list)

    def frame(self, t_s: float, latency: float | None, variant: int, period: float) -> bool:
        """Log one frame (``latency`` None: dropped); whether it missed its deadline."""
        miss = latency is None or latency > period
        self.t_arr.append(t_s)
        self.lat_ms.append(None if latency is None else latency * 1e3)
        self.used.append(variant)
        self.missed.append(miss)
        return miss


def _serve_frame(
    variant: Variant, frame: torch.Tensor, arrival: float, t0: float, log: _StreamLog, clock: Any
) -> float | None:
    """Serve one frame that arrived at ``arrival`` (its latency), or drop it when its deadline
    passed before the server got to it (None)."""
    out = variant(frame)
    fin = clock.perf_counter()
    latency = fin - arrival
    log.served_lat.append(latency)
    log.done_at.append(fin - t0)
    log.outputs.append(out.detach().float().clamp(0, 1).mul(255).round().byte().cpu())
    return latency


def _switch(
    variants: list[Variant], i: int, period: float, current: int, nxt: int, frame: torch.Tensor,
    log: _StreamLog, clock: Any,
) -> None:  # fmt: skip
    """Switch from variant ``current`` to ``nxt`` before frame ``i + 1``: reset the new
    variant's state on ``frame`` and log how long that took."""
    s0 = clock.perf_counter()
    variants[nxt].reset(frame)
    log.switches.append(
        {
            "frame": i,
            "t_s": i * period,
            "from": variants[current].name,
            "to": variants[nxt].name,
            "switch_ms": (clock.perf_counter() - s0) * 1e3,
        }
    )


def stream_once(
    sc: Adaptive,
    policy_name: str,
    variants: list[Variant],
    lr: torch.Tensor,
    monitor: EnergyMonitor,
    window: str,
    device: torch.device,
    clock: Any = time,
) -> tuple[dict[str, Any], list[float], list[torch.Tensor | None]]:
    """One stream under ``sc.contention`` served with policy ``policy_name``.

    Returns its record, the latencies of served frames (s) and the outputs (None: dropped).
    """
    policy = POLICIES.create(policy_name, sc=sc)
    names = [v.name for v in variants]
    policy.reset(names)
    period = 1.0 / sc.fps
    n = max(1, math.ceil(sc.duration_s * sc.fps))
    schedule = [(c.at_s, c.threads) for c in sc.contention]
    dev = contention_target(sc.contention_device, device)
    for v in variants:
        v.reset(lr[0])
    current = 0
    log = _StreamLog()
    with Contention(schedule, device=dev, end_s=sc.duration_s + 1.0) as gen:
        gen.launch()
        with monitor.window(window) as w:
            t0 = clock.perf_counter()
            gen.go(time.time())
            for i in range(n):
                arrival = t0 + i * period
                wait = arrival - clock.perf_counter()
                if wait > 0:
                    clock.sleep(wait)
                frame = lr[i % lr.shape[0]]
                if clock.perf_counter() > arrival + period:  # already too late: drop it
                    latency = None
                    log.outputs.append(None)
                else:
                    latency = _serve_frame(variants[current], frame, arrival, t0, log, clock)
                miss = log.frame(i * period, latency, current, period)
                nxt = policy.decide(FrameObservation(i, current, latency, period, miss))
                if not 0 <= nxt < len(variants):
                    raise ValueError(f"policy '{policy_name}' chose variant {nxt} of {len(names)}")
                if nxt != current:
                    _switch(variants, i, period, current, nxt, frame, log, clock)
                    current = nxt
            tail = t0 + n * period - clock.perf_counter()
            if tail > 0:
                clock.sleep(tail)
    trial = trial_summary(w.measurement, n, log.served_lat)
    rec = _summary(sc, names, schedule, period, n, log.t_arr, log.lat_ms, log.used, log.missed,
                   log.done_at, log.switches)  # fmt: skip
    rec["policy"] = policy_name
    rec["trial"] = trial
    rec["energy_per_frame_j"] = trial.energy_per_item_j
    rec["measured_energy_per_frame_j"] = trial.measured_energy_per_item_j
    rec["is_estimate"] = trial.measurement.is_estimate
    rec["contention_stopped"] = gen.proc is None
    return rec, log.served_lat, log.outputs


def _summary(
    sc: Adaptive,
    names: list[str],
    schedule: list[tuple[float, int]],
    period: float,
    n: int,
    t_arr: list[float],
    lat_ms: list[float | None],
    used: list[int],
    missed: list[bool],
    done_at: list[float],
    switches: list[dict[str, Any]],
) -> dict[str, Any]:
    """Frame-rate stability, misses, time per variant and switches of one stream."""
    span = n * period
    bins = max(1, math.ceil(span))
    fps = [0] * bins
    for t in done_at:
        fps[min(bins - 1, int(t))] += 1
    gaps = [b - a for a, b in zip([0.0, *done_at], [*done_at, span], strict=True)]
    switch_ms = [s["switch_ms"] for s in switches]
    return {
        "frames": n,
        "served": len(done_at),
        "dropped": sum(1 for x in lat_ms if x is None),
        "deadline_misses": sum(missed),
        "deadline_miss_rate": sum(missed) / n,
        "fps_timeline": [{"t_s": float(k), "fps": float(c)} for k, c in enumerate(fps)],
        "fps_achieved": summarize([float(c) for c in fps]).to_dict(),
        "longest_stall_s": max(gaps) if gaps else None,
        "time_per_variant_s": {nm: used.count(k) * period for k, nm in enumerate(names)},
        "switches": switches,
        "switch_ms": summarize(switch_ms).to_dict() if switch_ms else None,
        "per_frame": {
            "t_s": t_arr,
            "latency_ms": lat_ms,
            "variant": used,
            "missed": missed,
            "contention_threads": [threads_at(schedule, t) for t in t_arr],
        },
    }


def _psnr(outputs: list[torch.Tensor | None], hr: torch.Tensor, y: bool) -> list[float | None]:
    from energybench.metrics.quality import psnr

    out: list[float | None] = []
    for i, o in enumerate(outputs):
        if o is None:
            out.append(None)
            continue
        ref = hr[i % hr.shape[0]].unsqueeze(0)
        v = float(psnr(o.float() / 255.0, ref, y_channel=y)[0])
        out.append(v if math.isfinite(v) else None)
    return out


def run_adaptive(
    sc: Adaptive,
    models: dict[str, nn.Module],
    task: Task,
    device: torch.device,
    monitor: EnergyMonitor,
    energy: EnergySettings,
    window: str,
) -> AdaptiveResult:
    """Run the scenario (see the module docstring); ``models``: the variants, loaded."""
    lr, hr = _frames(task)
    variants = [Variant(name, models[name], device) for name in sc.variants]
    threads = torch.get_num_threads()
    try:
        if sc.threads is not None:
            torch.set_num_threads(sc.threads)
        runs, main_lat = _policy_runs(sc, variants, lr, hr, monitor, window, device)
    finally:
        torch.set_num_threads(threads)
    main = runs[sc.policy]
    agg = aggregate_trials([main["trial"]], main_lat, 1, "frame", energy)
    out: dict[str, Any] = {
        "scenario": "adaptive",
        "target_fps": sc.fps,
        "duration_s": sc.duration_s,
        "variants": sc.variants,
        "policy": sc.policy,
        "threads": sc.threads if sc.threads is not None else threads,
        "contention": [{"at_s": c.at_s, "threads": c.threads} for c in sc.contention],
        "runs": runs,
        "deadline_miss_rate": main["deadline_miss_rate"],
        "psnr_mean_db": main["psnr_mean_db"],
        "longest_stall_s": main["longest_stall_s"],
        **agg.given(),
        "fps_achieved": main["fps_achieved"],
    }
    base = runs.get("static")
    if base is not None and sc.policy != "static":
        out["versus_static"] = versus(main, base)
    return AdaptiveResult.model_validate(out)


def _policy_runs(
    sc: Adaptive,
    variants: list[Variant],
    lr: torch.Tensor,
    hr: torch.Tensor,
    monitor: EnergyMonitor,
    window: str,
    device: torch.device,
) -> tuple[dict[str, Any], list[float]]:
    """Warm the variants up, then stream once per policy (static first, as the baseline).

    Returns the record of each policy's run and the served latencies (s) of ``sc.policy``'s.
    """
    with torch.inference_mode():
        for v in variants:  # warm-up, outside every window
            v.reset(lr[0])
            for k in range(max(1, sc.warmup)):
                v(lr[k % lr.shape[0]])
        policies = (["static"] if sc.baseline and sc.policy != "static" else []) + [sc.policy]
        runs: dict[str, Any] = {}
        main_lat: list[float] = []
        for name in policies:
            rec, lat, outputs = stream_once(
                sc, name, variants, lr, monitor, f"{window}/{name}", device
            )
            q = _psnr(outputs, hr, y=True)
            rec["per_frame"]["psnr_db"] = q
            known = [x for x in q if x is not None]
            rec["psnr_mean_db"] = sum(known) / len(known) if known else None
            runs[name] = rec
            if name == sc.policy:
                main_lat = lat
    return runs, main_lat


def versus(main: dict[str, Any], base: dict[str, Any]) -> dict[str, Any]:
    """The policy's figures against the static baseline's (differences: policy - static)."""

    def diff(key: str) -> float | None:
        a, b = main.get(key), base.get(key)
        return None if a is None or b is None else a - b

    return {
        "deadline_miss_rate": {
            "policy": main["deadline_miss_rate"],
            "static": base["deadline_miss_rate"],
        },
        "miss_rate_diff": diff("deadline_miss_rate"),
        "psnr_mean_db_diff": diff("psnr_mean_db"),
        "energy_per_frame_j_diff": diff("energy_per_frame_j"),
        "longest_stall_s_diff": diff("longest_stall_s"),
        "fps_mean_diff": (main["fps_achieved"] or {}).get("mean", 0)
        - (base["fps_achieved"] or {}).get("mean", 0),
    }


def frames_served(run: dict[str, Any], names: list[str]) -> dict[str, int]:
    """Frames each variant served in one policy run (dropped frames belong to none)."""
    per = run.get("per_frame") or {}
    counts = dict.fromkeys(names, 0)
    for v, lat in zip(per.get("variant", []), per.get("latency_ms", []), strict=True):
        if lat is not None:
            counts[names[v]] += 1
    return counts


def delivered_quality(
    result: dict[str, Any], variant_quality: dict[str, dict[str, Any]]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Quality of what an adaptive scenario delivered, and how it was obtained.

    Every numeric figure the variants' own evaluate phases share (``ssim``, ``psnr_db``, ...) is
    averaged over the frames the scenario's policy run actually served, each variant weighted
    by the frames it served (dropped frames are not scored: a player shows the previous one).
    ``result``: the adaptive scenario's record; ``variant_quality``: each variant's evaluate
    ``quality``. Raises ``ValueError`` when the run served no frame.
    """
    names = list(result["variants"])
    run = result["runs"][result["policy"]]
    counts = frames_served(run, names)
    total = sum(counts.values())
    if total == 0:
        raise ValueError(f"adaptive policy '{result['policy']}' served no frame: no quality")
    weights = {v: n / total for v, n in counts.items()}
    first = variant_quality[names[0]]
    quality: dict[str, Any] = {}
    for key in first:
        vals = [variant_quality[v].get(key) for v in names]
        if key == "frames" or not all(
            isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)
            for x in vals
        ):
            continue
        quality[key] = sum(weights[v] * float(variant_quality[v][key]) for v in names)
    mixed = list(quality)
    quality["frames"] = total
    if "convention" in first:
        quality["convention"] = first["convention"]
    basis = {
        "kind": "served-mix",
        "policy": result["policy"],
        "frames_served": counts,
        "frames_dropped": run.get("dropped"),
        "weights": weights,
        "variant_quality": {v: {k: variant_quality[v].get(k) for k in mixed} for v in names},
        "served_outputs_psnr_db": run.get("psnr_mean_db"),
        "note": "each variant's own evaluate figure weighted by the frames it served; dropped "
        "frames not scored; served_outputs_psnr_db: PSNR (Y) of the outputs actually served",
    }
    return quality, basis


class AdaptiveScenario(Scenario[Adaptive, AdaptiveResult]):
    """The registered ``adaptive`` scenario: its variants (other entries' final models, each
    on its own backend) come from ``ctx.variant``, like anything else a scenario uses."""

    name = "adaptive"

    def run(self, ctx: ScenarioContext) -> AdaptiveResult:
        sc = self.settings
        models = {name: ctx.variant(name) for name in sc.variants}
        return run_adaptive(sc, models, ctx.task, ctx.device, ctx.monitor, ctx.energy, ctx.window)
