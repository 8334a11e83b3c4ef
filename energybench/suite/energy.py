"""Suite schema: how energy is measured (meters, windows, trials, cooldown) and carbon settings.

Re-exported by :mod:`energybench.suite.schema`; bounds come from :mod:`energybench.suite.base`.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field, model_validator
from pydantic_core import PydanticCustomError

from energybench.meters.plugins import METERS
from energybench.suite.base import MAX_ITEMS, MAX_SECONDS, MAX_TRIALS, Strict


class CooldownSettings(Strict):
    enabled: bool = False
    max_s: float = Field(
        60.0, ge=0, le=MAX_SECONDS, description="give up waiting after this many seconds"
    )
    tolerance_c: float = Field(3.0, gt=0, le=100, description="back within this many °C of idle")


def _registered_meter(name: str) -> str:
    known = METERS.names()
    if name not in known:
        expected = ", ".join(f"'{n}'" for n in known[:-1]) + f" or '{known[-1]}'"
        raise PydanticCustomError(
            "literal_error", "Input should be {expected}", {"expected": expected}
        )
    return name


#: ``auto`` or a meter of the plug-in table (:data:`energybench.meters.plugins.METERS`)
MeterName = Annotated[str, AfterValidator(_registered_meter)]


def _default_meters() -> list[MeterName]:
    return ["auto"]


class EnergySettings(Strict):
    """How energy is measured: which meters, how often, and the measurement protocol."""

    meters: list[MeterName] = Field(
        default_factory=_default_meters,
        min_length=1,
        max_length=8,
        description="'auto' uses NVML for GPUs in use, RAPL for the CPU, and an estimate "
        "only where neither works",
    )
    sample_period_s: float = Field(0.05, gt=0.001, le=10, description="power sampling period")
    idle_baseline_s: float = Field(
        2.0, ge=0, le=MAX_SECONDS, description="idle power measured before the run"
    )
    idle_after: bool = Field(False, description="measure idle power after the run too")
    cross_check_threshold: float = Field(
        0.10, gt=0, le=100, description="flag a window whose two NVML channels disagree by more"
    )
    min_window_s: float = Field(
        5.0, ge=0, le=MAX_SECONDS, description="serving windows are repeated to this"
    )
    min_window_iters: int = Field(
        32, ge=1, le=MAX_ITEMS, description="... and to at least this many iterations"
    )
    trials: int = Field(
        3, ge=1, le=MAX_TRIALS, description="trials per serving scenario at least (for CIs)"
    )
    target_ci: float = Field(
        0.05,
        gt=0,
        le=1,
        description="more trials until the 95 % CI half-width of J/item is at most this "
        "fraction of the mean (trial-to-trial spread; 1 stops at 'trials')",
    )
    max_trials: int = Field(10, ge=1, le=MAX_TRIALS, description="... or until this many trials")
    cooldown: CooldownSettings = Field(default_factory=CooldownSettings)
    allow_estimates_in_ranking: bool = Field(
        False,
        description="rank on measured + estimated energy (any estimated joule makes the figure "
        "an estimate); false: rank on measured devices only, the estimate shown beside",
    )
    allow_shared_devices: bool = Field(
        False,
        description="rank figures from a GPU in MIG mode or shared with another process",
    )

    @model_validator(mode="after")
    def _trial_bounds(self) -> EnergySettings:
        if self.max_trials < self.trials:
            raise ValueError(f"max_trials ({self.max_trials}) must be >= trials ({self.trials})")
        return self


class CarbonSettings(Strict):
    """Carbon as a derived layer: kgCO2e = kWh x PUE x grid intensity."""

    grid_intensity_g_per_kwh: float | None = Field(None, ge=0, le=10_000)
    country: str | None = Field(None, min_length=3, max_length=3, description="ISO 3166 alpha-3")
    pue: float = Field(1.0, ge=1.0, le=10)
