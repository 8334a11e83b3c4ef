"""Serving discipline: stream deadline misses counted right; windows lengthened to the minimum."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from energybench.lifecycle.serve import run_stream, run_throughput
from energybench.lifecycle.tasks import Task
from energybench.suite.schema import EnergySettings, Stream, Throughput


class SleepyTask(Task):
    """Serving one item sleeps ``delay_s`` (a model made slow on purpose)."""

    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s
        self.calls = 0

    def serving_step(
        self, model: nn.Module, batch_size: int, device: torch.device, dtype: Any
    ) -> Callable[[], Any]:
        def serve() -> None:
            self.calls += 1
            time.sleep(self.delay_s)

        return serve


CPU = torch.device("cpu")


def energy(**kw: Any) -> EnergySettings:
    return EnergySettings(**{"min_window_s": 0, "min_window_iters": 1, "trials": 1, **kw})


def test_stream_counts_every_frame_of_a_too_slow_model_as_missed(fake_monitor) -> None:
    sc = Stream(scenario="stream", fps=50, frames=10, warmup=0)  # 20 ms slots, 35 ms frames
    rec = run_stream(sc, nn.Identity(), SleepyTask(0.035), CPU, fake_monitor, energy(), "s")
    assert rec["deadline_misses"] == 10 and rec["deadline_miss_rate"] == 1.0
    assert rec["fps_achieved"]["mean"] < 30  # it cannot keep up: ~1/35 ms


def test_stream_of_a_fast_enough_model_misses_nothing_and_keeps_the_rate(fake_monitor) -> None:
    sc = Stream(scenario="stream", fps=25, frames=10, warmup=0)  # 40 ms slots, 5 ms frames
    rec = run_stream(sc, nn.Identity(), SleepyTask(0.005), CPU, fake_monitor, energy(), "s")
    assert rec["deadline_misses"] == 0
    assert 23 < rec["fps_achieved"]["mean"] <= 25.5
    # J per frame includes the idle time between frames: ~ power x slot, not power x 5 ms
    assert rec["energy_per_item_j"]["mean"] > 10.0 * 0.03


def test_stream_counts_only_the_late_frames(fake_monitor) -> None:
    class EveryThirdSlow(SleepyTask):
        def serving_step(self, *a: Any) -> Callable[[], Any]:
            def serve() -> None:
                self.calls += 1
                time.sleep(0.07 if self.calls % 3 == 0 else 0.002)

            return serve

    sc = Stream(scenario="stream", fps=20, frames=9, warmup=0)  # 50 ms slots
    rec = run_stream(sc, nn.Identity(), EveryThirdSlow(0), CPU, fake_monitor, energy(), "s")
    # frames 3, 6, 9 take 70 ms > 50 ms; the frame after each starts late but still finishes
    # (2 ms) within 50 ms of its own arrival, so only the three slow frames miss
    assert rec["deadline_misses"] == 3


def test_throughput_windows_are_lengthened_to_the_minimum(fake_monitor) -> None:
    sc = Throughput(scenario="throughput", batch_sizes=[1], warmup=0, iterations=1)
    settings = energy(min_window_s=0.3, min_window_iters=5, trials=2)
    rec = run_throughput(sc, nn.Identity(), SleepyTask(0.01), CPU, fake_monitor, settings, "t")
    trials = rec["by_batch"]["1"]["trials"]
    assert len(trials) == 2
    for t in trials:
        assert t["duration_s"] >= 0.3 and t["iterations"] >= 5


def test_throughput_reaches_the_iteration_minimum_for_slow_items(fake_monitor) -> None:
    sc = Throughput(scenario="throughput", batch_sizes=[1], warmup=0, iterations=1)
    settings = energy(min_window_s=0.01, min_window_iters=6)
    rec = run_throughput(sc, nn.Identity(), SleepyTask(0.02), CPU, fake_monitor, settings, "t")
    assert rec["by_batch"]["1"]["trials"][0]["iterations"] >= 6


def test_compiled_serving_matches_eager_and_is_recorded(fake_monitor) -> None:
    from energybench.lifecycle.serve import compiled_for_serving, run_scenario
    from energybench.models import MODELS

    model = MODELS.create("ckbg", channels=4, blocks=1).eval()
    compiled = compiled_for_serving(model, "default")
    assert compiled is not model and compiled.head is model.head  # weights shared
    x = torch.rand(1, 3, 8, 8)
    with torch.inference_mode():
        state = model.init_state(x)
        ref, _ = model.step(x, state)
        out, _ = compiled.step(x, state)
    assert torch.allclose(ref, out, atol=1e-5)
    assert "forward" not in vars(model)  # the original model is untouched

    class Task1(SleepyTask):
        def serving_step(self, m: nn.Module, *a: Any) -> Callable[[], Any]:
            return lambda: m(x)

    sc = Throughput(
        scenario="throughput", batch_sizes=[1], warmup=0, iterations=2, compile="default"
    )
    rec = run_scenario(sc, model, Task1(0), CPU, fake_monitor, energy(min_window_iters=2), "c")
    assert rec["compile"] == "default" and rec["by_batch"]["1"]["trials"][0]["iterations"] >= 2
