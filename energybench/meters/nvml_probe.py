"""How often a GPU's counter and power readings change: the update-period probe.

Polls the readings as fast as a short sleep allows and times their changes (as Zeus does).
Intervals use ``clock.monotonic()``. It only reads; failing reads end that channel's probe.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from energybench.meters.base import SYSTEM_CLOCK, Clock
from energybench.meters.nvml_device import GpuError


@dataclass
class UpdatePeriods:
    """Observed update periods in s (None: not seen to change while probing)."""

    counter_s: float | None = None
    power_s: float | None = None
    probe_s: float = 0.0


def _median_period(times: list[float]) -> float | None:
    if len(times) < 3:
        return None
    diffs = sorted(b - a for a, b in zip(times[:-1], times[1:], strict=True))
    return diffs[len(diffs) // 2]


def probe_update_periods(
    read_counter: Callable[[], float] | None,
    read_power: Callable[[], float] | None,
    clock: Clock = SYSTEM_CLOCK,
    max_s: float = 1.0,
    changes: int = 5,
    poll_s: float = 0.002,
) -> UpdatePeriods:
    """Poll the counter and power as fast as ``poll_s`` allows and time their changes (as Zeus
    does): the median gap between value changes is the update period. Stops after ``changes``
    changes of each channel or ``max_s`` seconds.
    """
    t_start = clock.monotonic()
    readers = {k: f for k, f in (("counter", read_counter), ("power", read_power)) if f}
    last: dict[str, float] = {}
    seen: dict[str, list[float]] = {k: [] for k in readers}
    for k, f in list(readers.items()):
        try:
            last[k] = f()
        except GpuError:
            readers.pop(k)
    while readers and clock.monotonic() - t_start < max_s:
        if all(len(seen[k]) > changes for k in readers):
            break
        clock.sleep(poll_s)
        for k, f in list(readers.items()):
            try:
                v = f()
            except GpuError:
                readers.pop(k)
                continue
            if v != last[k]:
                seen[k].append(clock.monotonic())
                last[k] = v
    return UpdatePeriods(
        counter_s=_median_period(seen.get("counter", [])),
        power_s=_median_period(seen.get("power", [])),
        probe_s=clock.monotonic() - t_start,
    )
