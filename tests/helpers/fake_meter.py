"""A fake meter (constant power) so lifecycle tests need no hardware."""

from __future__ import annotations

import time

from energybench.meters.base import DeviceEnergy, Meter, Source


class FakeMeter(Meter):
    """Reports ``power_w`` × window duration as an estimate for one fake device."""

    name = "fake"

    def __init__(self, power_w: float = 10.0, source: str = "estimate") -> None:
        self.power_w = power_w
        self.source = Source(source)
        self._open: dict[str, float] = {}

    def begin(self, key: str) -> None:
        self._open[key] = time.perf_counter()

    def end(self, key: str) -> list[DeviceEnergy]:
        dt = time.perf_counter() - self._open.pop(key)
        e = self.power_w * dt
        return [
            DeviceEnergy(
                device="fake:0",
                kind="cpu",
                name="fake",
                source=self.source,
                energy_j=e,
                uncertainty_j=0.1 * e,
                mean_power_w=self.power_w,
                samples=1,
            )
        ]

    def live_power_w(self) -> float | None:
        return self.power_w
