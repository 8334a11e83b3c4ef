"""The idle baselines of a run, measured twice: cold and active (``idle.json``).

- ``before`` (cold): before any work, in whatever power state the devices rest in; a GPU that
  has not run anything for a while sits in a deeper state than between two frames.
- ``active``: right after a short warm-up (a matrix multiply on the CPU and on every GPU the
  run uses, which opens each GPU's CUDA context and leaves it open), with nothing running. This
  is the state a device is in between frames of a stream, or between requests.

The static/dynamic split of every window (static = idle power x duration) uses
:data:`SPLIT_BASIS` (``active``) when it was measured, else ``before``; ``idle.json`` records
which in ``split_basis`` (older runs, which have no such key, used ``before``). With the cold
baseline the static share would be understated and the dynamic share overstated on GPUs.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Literal

import torch

from energybench.meters.base import EnergyMonitor

SPLIT_BASIS: Literal["active"] = "active"
WARMUP_S = 0.3  # busy time of the warm-up before the active idle window


def warm_up(gpus: list[int], seconds: float = WARMUP_S) -> list[str]:
    """Run matrix multiplies for ``seconds`` on the CPU and on each of ``gpus`` (when CUDA is
    available; each GPU's context is opened and stays open). Returns the devices warmed."""
    warmed = ["cpu"]
    x = torch.randn(256, 256)
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        x = torch.tanh(x @ x)
    if gpus and torch.cuda.is_available():
        for g in gpus:
            dev = torch.device("cuda", g)
            y = torch.randn(1024, 1024, device=dev)
            end = time.perf_counter() + seconds
            while time.perf_counter() < end:
                y = torch.tanh(y @ y)
                torch.cuda.synchronize(dev)
            warmed.append(str(dev))
    return warmed


def _baseline(meter: EnergyMonitor, seconds: float) -> dict[str, Any]:
    power = meter.measure_idle(seconds)
    return {
        "seconds": seconds,
        "power_w": power,
        "temp_c": dict(meter.idle_temp_c),
        "measured_unix_s": time.time(),
    }


def measure_baselines(
    meter: EnergyMonitor,
    seconds: float,
    gpus: list[int],
    warm: Callable[[list[int]], list[str]] = warm_up,
) -> dict[str, Any]:
    """Measure the cold then the active idle baseline and make the monitor split on the active
    one; returns the ``idle.json`` fields (``before``, ``active``, ``split_basis``)."""
    cold = _baseline(meter, seconds)
    cold_temp = dict(meter.idle_temp_c)
    warmed = warm(gpus)
    active = _baseline(meter, seconds)
    active["warmed"] = warmed
    # the split uses the active baseline; the cool-down waits for the cold temperatures
    meter.set_idle(active["power_w"], cold_temp)
    return {"before": cold, "active": active, "split_basis": SPLIT_BASIS}


def restore(meter: EnergyMonitor, idle: dict[str, Any]) -> bool:
    """Use the baselines of an earlier session (``idle.json``); False if it has none."""
    before = idle.get("before")
    if not before:
        return False
    basis = idle.get("split_basis") or "before"
    chosen = idle.get(basis) or before
    meter.set_idle(chosen["power_w"], before.get("temp_c"))
    return True
