"""True power of a simulated device over time: the base load of a simulated GPU
(:class:`energybench.meters.sim.fakenvml.FakeGpu`), a replayed piecewise-constant trace or a load
model. Never touches hardware."""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Sequence


class PowerSource:
    """True power of a device over time (s since the device's ``t0``, W)."""

    def energy_j(self, t: float) -> float:
        """Energy in J from the source's origin to ``t`` (negative before it)."""
        raise NotImplementedError

    def power_w(self, t: float) -> float:
        raise NotImplementedError


class PowerTrace(PowerSource):
    """Piecewise-constant power: ``points`` are (t_s, power_w) from which the power holds.

    Power before the first point is the first power.
    """

    def __init__(self, points: Sequence[tuple[float, float]] | float) -> None:
        if isinstance(points, (int, float)):
            points = [(0.0, float(points))]
        pts = sorted((float(t), float(p)) for t, p in points)
        if not pts:
            raise ValueError("a power trace needs at least one point")
        self.t = [t for t, _ in pts]
        self.p = [p for _, p in pts]
        self._cum = [0.0]
        for i in range(1, len(pts)):
            self._cum.append(self._cum[-1] + self.p[i - 1] * (self.t[i] - self.t[i - 1]))

    @classmethod
    def from_function(
        cls, fn: Callable[[float], float], duration_s: float, step_s: float = 0.01
    ) -> PowerTrace:
        """Sample ``fn(t) -> W`` every ``step_s`` over ``duration_s`` (held in between)."""
        n = int(math.ceil(duration_s / step_s))
        return cls([(i * step_s, fn(i * step_s)) for i in range(n + 1)])

    def append(self, t: float, p: float) -> None:
        """Hold power ``p`` from ``t`` on (``t`` not before the last point)."""
        if t < self.t[-1]:
            raise ValueError("points must be appended in time order")
        self._cum.append(self._cum[-1] + self.p[-1] * (t - self.t[-1]))
        self.t.append(t)
        self.p.append(p)

    def power_w(self, t: float) -> float:
        i = bisect.bisect_right(self.t, t) - 1
        return self.p[max(i, 0)]

    def energy_j(self, t: float) -> float:
        if t <= self.t[0]:
            return self.p[0] * (t - self.t[0])
        i = bisect.bisect_right(self.t, t) - 1
        return self._cum[i] + self.p[i] * (t - self.t[i])
