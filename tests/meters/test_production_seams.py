"""The production seams every other test replaces: the system clock and the CUDA synchronise."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import torch

from energybench.meters import base, factory
from energybench.meters.base import SYSTEM_CLOCK, SystemClock
from energybench.meters.factory import build_monitor
from energybench.meters.nvml_device import NvmlUnavailableError
from energybench.meters.rapl import RaplFs
from energybench.suite.schema import EnergySettings


# ------------------------------------------------------------------ the system clock
def test_system_clock_intervals_are_monotonic_even_when_the_wall_clock_steps_back(monkeypatch):
    wall = itertools.count(1_000_000.0, -50.0)  # NTP stepping the wall clock back each call
    mono = itertools.count(10.0, 0.5)
    monkeypatch.setattr(base.time, "time", lambda: next(wall))
    monkeypatch.setattr(base.time, "monotonic", lambda: next(mono))
    clock = SystemClock()
    reads = [clock.monotonic() for _ in range(5)]
    assert reads == [10.0, 10.5, 11.0, 11.5, 12.0]  # time.monotonic, never time.time
    assert clock.time() == 1_000_000.0 and clock.time() == 999_950.0  # unix time is time.time


def test_system_clock_really_is_monotonic():
    reads = [SYSTEM_CLOCK.monotonic() for _ in range(20_000)]
    assert all(b >= a for a, b in itertools.pairwise(reads))
    t0 = SYSTEM_CLOCK.monotonic()
    SYSTEM_CLOCK.sleep(0.02)
    assert SYSTEM_CLOCK.monotonic() - t0 >= 0.02


def test_system_clock_sleeps_only_positive_durations(monkeypatch):
    """In the main thread through ``interrupt.sleep`` (a dropped Ctrl-C ends the wait:
    tests/run/test_interrupt.py), elsewhere ``time.sleep``; never for 0 or less."""
    slept: list[float] = []
    monkeypatch.setattr(base.interrupt, "sleep", slept.append)
    monkeypatch.setattr(base.time, "sleep", lambda s: slept.append(-s))  # not in the main thread
    for s in (0.0, -1.0, 0.25):
        SYSTEM_CLOCK.sleep(s)
    assert slept == [0.25]


# ------------------------------------------------------------------ CUDA synchronise
@pytest.fixture
def cuda_calls(monkeypatch) -> list[int]:
    """torch.cuda as on a GPU server: available, and every synchronize(device) recorded."""
    calls: list[int] = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: calls.append(device))
    return calls


def test_cuda_sync_synchronises_every_charged_device(cuda_calls):
    sync = factory._cuda_sync([0, 2, 3])
    assert sync is not None
    sync()
    assert cuda_calls == [0, 2, 3]


def test_no_cuda_sync_without_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert factory._cuda_sync([0]) is None


def test_every_window_edge_synchronises_every_gpu_of_the_run(cuda_calls, monkeypatch, tmp_path):
    """Catches: a monitor that synchronises only the first GPU (or none) at window edges."""

    def no_nvml(*a, **kw):
        raise NvmlUnavailableError("no NVML in this test")

    monkeypatch.setattr("energybench.meters.nvml_plugin.PynvmlBackend", no_nvml)
    mon = build_monitor(
        EnergySettings(meters=["auto"], min_window_s=0),
        [0, 1],
        None,
        rapl_fs=RaplFs(Path(tmp_path) / "none"),
        background=False,
        probe_s=0,
    )
    cuda_calls.clear()
    with mon, mon.window("w"):
        assert cuda_calls == [0, 1]  # the start edge, both GPUs
    assert cuda_calls == [0, 1, 0, 1]  # and the end edge
