"""Serving on a GPU other than cuda:0, and closed-loop throughput without a synchronise per
iteration, through a patched ``torch.cuda`` (no GPU here: tests/helpers/cuda.py)."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

from energybench.meters.base import EnergyMonitor
from energybench.serve.adaptive import contention_target
from energybench.serve.scenarios import run_throughput
from energybench.serve.trials import WindowTimer, make_timer
from energybench.suite.schema import EnergySettings, Throughput
from energybench.tasks.base import Task
from tests.helpers.cuda import CudaRecorder

GPU1 = torch.device("cuda", 1)


class QueueTask(Task):
    """A task whose serving step queues one "kernel" on the current stream (nothing runs)."""

    def __init__(self) -> None:
        self.calls = 0

    def serving_step(self, model: nn.Module, batch_size: int, device: Any, dtype: Any) -> Any:
        def step() -> None:
            self.calls += 1

        return step


def test_stream_timer_records_on_the_entrys_gpu(monkeypatch: pytest.MonkeyPatch):
    cuda = CudaRecorder(monkeypatch, count=2, expect=1)
    with torch.cuda.device(1):  # the runner's scope; the timer names the GPU all the same
        timer = make_timer(GPU1)
    assert timer(lambda: None) == pytest.approx(1e-3)  # the fake's 1 ms between two records
    assert cuda.names("Event.record") == [1, 1] and cuda.event_syncs == 1


def test_a_timer_outside_the_scope_still_names_cuda1(monkeypatch: pytest.MonkeyPatch):
    """Before: events went to the *current* stream (cuda:0) for an entry on cuda:1."""
    cuda = CudaRecorder(monkeypatch, count=2, expect=1)
    timer = WindowTimer(GPU1)  # current device: 0
    for _ in range(3):
        timer.run(lambda: None)
    assert len(timer.latencies_s()) == 3
    assert set(cuda.names("Event.record")) == {1}


def test_window_timer_waits_once(monkeypatch: pytest.MonkeyPatch):
    cuda = CudaRecorder(monkeypatch, count=2, expect=1)
    timer = WindowTimer(GPU1)
    for _ in range(50):
        timer.run(lambda: None)
    assert cuda.event_syncs == 0  # queued, never waited for
    lat = timer.latencies_s()
    assert len(lat) == 50 and cuda.event_syncs == 1
    assert all(x == pytest.approx(1e-3) for x in lat)


def test_throughput_synchronises_once_per_window(monkeypatch: pytest.MonkeyPatch):
    """A synchronise per iteration leaves the GPU idle between iterations (charged to the
    model): the throughput scenario waits once per window (and once after its warm-up)."""
    cuda = CudaRecorder(monkeypatch, count=2, expect=1)
    task = QueueTask()
    sc = Throughput(scenario="throughput", batch_sizes=[2], warmup=3, iterations=40)
    energy = EnergySettings(min_window_s=0, min_window_iters=40, trials=2, max_trials=2)
    with torch.cuda.device(1):
        res = run_throughput(
            sc, nn.Identity(), task, GPU1, EnergyMonitor([]), energy, "w"
        ).to_json()
    assert task.calls == 3 + 2 * 40
    assert cuda.event_syncs == 1 + 2  # warm-up, then one per trial window
    assert res["trials_total"] == 2 and res["by_batch"]["2"]["trials"][0]["items"] == 80
    assert res["latency_ms"]["mean"] == pytest.approx(1.0)


def test_cpu_window_timer_times_each_call():
    timer = WindowTimer(torch.device("cpu"))
    for _ in range(4):
        timer.run(lambda: sum(range(1000)))
    lat = timer.latencies_s()
    assert len(lat) == 4 and all(x > 0 for x in lat)


@pytest.mark.parametrize(
    ("setting", "device", "target"),
    [
        ("auto", GPU1, "cuda:1"),  # before: "cuda", i.e. cuda:0, beside an entry on cuda:1
        ("cuda", GPU1, "cuda:1"),
        ("auto", torch.device("cpu"), "cpu"),
        ("cpu", GPU1, "cpu"),
        ("cuda", torch.device("cpu"), "cuda"),
    ],
)
def test_contention_runs_on_the_entrys_gpu(setting: str, device: torch.device, target: str):
    assert contention_target(setting, device) == target


def test_timers_wait_for_the_last_event_before_reading_times(monkeypatch: pytest.MonkeyPatch):
    """Event times are read only once the end event has completed (the fake, like CUDA, refuses
    a time from an event not yet waited for or created without ``enable_timing``)."""
    cuda = CudaRecorder(monkeypatch, count=2, expect=1)
    timer = WindowTimer(GPU1)
    for _ in range(3):
        timer.run(lambda: None)
    assert timer.iterations == 3
    assert timer.latencies_s() == pytest.approx([1e-3] * 3)
    assert cuda.completed == cuda.event_clock == 6  # the last end event was the one waited for
    one = make_timer(GPU1)
    assert [one(lambda: None) for _ in range(2)] == pytest.approx([1e-3, 1e-3])
    bad = torch.cuda.Event()
    with torch.cuda.device(1):
        bad.record()
        bad.synchronize()
    with pytest.raises(RuntimeError, match="enable_timing"):
        bad.elapsed_time(bad)


def test_cpu_timers_measure_the_call_itself(monkeypatch: pytest.MonkeyPatch):
    ticks = iter([100.0, 100.25, 200.0, 200.5])
    monkeypatch.setattr("energybench.serve.trials.time.perf_counter", lambda: next(ticks))
    timer = WindowTimer(torch.device("cpu"))
    timer.run(lambda: None)
    assert make_timer(torch.device("cpu"))(lambda: None) == pytest.approx(0.5)
    assert timer.latencies_s() == [0.25] and timer.iterations == 1
