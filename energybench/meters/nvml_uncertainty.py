"""Uncertainty (~1 sigma) of the NVML meter's two channels: counter deltas and sampled power
integrated over a window (see :mod:`energybench.meters.nvml`). Pure arithmetic."""

from __future__ import annotations

import math

from energybench.meters.sampler import WindowStats

#: NVML power sensor accuracy assumed for both channels (relative, ~1 sigma). NVIDIA documents
#: power readings as accurate to about +/-5 % of the current draw on recent data-centre GPUs.
SENSOR_REL_UNCERTAINTY = 0.05


def counter_uncertainty_j(energy_j: float, duration_s: float, update_period_s: float) -> float:
    """~1 sigma of a counter delta in J: sensor accuracy (5 % of the energy) plus edge effects.

    The counter advances every ``update_period_s``; each edge can miss up to one period of energy,
    counted as ``update_period_s x mean power`` for both edges together. Added linearly
    (conservative).
    """
    mean_w = energy_j / duration_s if duration_s > 0 else 0.0
    return SENSOR_REL_UNCERTAINTY * energy_j + update_period_s * mean_w


def integrated_uncertainty_j(
    energy_j: float, duration_s: float, effective_period_s: float, stats: WindowStats | None
) -> float:
    """~1 sigma of sampled-and-integrated energy in J.

    Sensor accuracy (5 %) + edge effects (``effective_period_s x mean power``, the period being
    the slower of sampling and sensor update) + sampling error of the mean power
    (``duration x std / sqrt(n)``). Note the instantaneous sensor observes only part of each
    update period on A100/H100 (~25 ms of 100 ms, Yang et al. SC'24), so short bursty loads can
    be off by more than this: use windows of >= 5 s and the counter where available.
    """
    mean_w = energy_j / duration_s if duration_s > 0 else 0.0
    sampling = 0.0
    if stats is not None and stats.samples > 1:
        sampling = duration_s * stats.std_w / math.sqrt(stats.samples)
    return SENSOR_REL_UNCERTAINTY * energy_j + effective_period_s * mean_w + sampling
