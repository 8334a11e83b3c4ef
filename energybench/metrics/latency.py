"""Summary statistics of repeated measurements: serving latency, energy per item across trials.

What it is for: one documented statistics object (:class:`Stats`) with mean, spread,
percentiles (p50/p90/p99) and a confidence interval of the mean, so every latency or energy
figure in the report carries its uncertainty.

What it must not do: measure or time anything, synchronise devices, or know units. Samples are
plain numbers (seconds, joules, ...); the caller names the unit. Non-finite samples are
rejected rather than silently dropped.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import stats as _st

__all__ = ["Stats", "ci_of_mean", "summarize"]


@dataclass(frozen=True)
class Stats:
    """Statistics of ``n`` samples, in the samples' unit (s, J, ...).

    ``std``: sample standard deviation (ddof = 1). ``p50``/``p90``/``p99``: percentiles with
    numpy's "linear" method. ``ci_low``/``ci_high``: two-sided ``confidence`` interval of the
    mean from Student's t distribution (scipy), mean ± t_{(1+c)/2, n−1} · std/√n.
    With n = 1 the spread is undefined: ``std``, ``ci_low`` and ``ci_high`` are NaN (and None in
    :meth:`to_dict`). With zero spread the interval collapses to the mean.
    """

    n: int
    mean: float
    std: float
    min: float
    max: float
    p50: float
    p90: float
    p99: float
    ci_low: float
    ci_high: float
    confidence: float = 0.95

    @property
    def ci_half_width(self) -> float:
        """Half width of the confidence interval (NaN for n = 1)."""
        return (self.ci_high - self.ci_low) / 2

    @property
    def rel_ci(self) -> float:
        """CI half width relative to |mean| (NaN for n = 1, inf for a zero mean with spread)."""
        if math.isnan(self.ci_half_width):
            return math.nan
        if self.mean == 0:
            return 0.0 if self.ci_half_width == 0 else math.inf
        return self.ci_half_width / abs(self.mean)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for JSON: NaN (undefined with n = 1) becomes None."""
        return {
            k: (None if isinstance(v, float) and math.isnan(v) else v)
            for k, v in asdict(self).items()
        }


def _samples(values: Iterable[float] | np.ndarray) -> np.ndarray:
    x = np.asarray(values if isinstance(values, np.ndarray) else list(values), dtype=float)
    x = x.ravel()
    if x.size == 0:
        raise ValueError("no samples: statistics need at least one value")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"samples must be finite; got {int(np.sum(~np.isfinite(x)))} NaN/inf")
    return x


def _check_confidence(confidence: float) -> float:
    c = float(confidence)
    if not 0 < c < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    return c


def _ci(x: np.ndarray, confidence: float) -> tuple[float, float]:
    mean = float(np.mean(x))
    n = x.size
    if n < 2:
        return math.nan, math.nan
    sem = float(np.std(x, ddof=1)) / math.sqrt(n)
    if sem == 0:
        return mean, mean
    lo, hi = _st.t.interval(confidence, n - 1, loc=mean, scale=sem)
    return float(lo), float(hi)


def ci_of_mean(
    values: Iterable[float] | np.ndarray, confidence: float = 0.95
) -> tuple[float, float]:
    """``confidence`` t-interval of the mean of ``values`` (their unit); (NaN, NaN) for n = 1."""
    return _ci(_samples(values), _check_confidence(confidence))


def summarize(values: Iterable[float] | np.ndarray, confidence: float = 0.95) -> Stats:
    """:class:`Stats` of ``values`` (any shape, flattened; finite numbers, at least one)."""
    c = _check_confidence(confidence)
    x = _samples(values)
    p50, p90, p99 = np.percentile(x, [50, 90, 99], method="linear")
    lo, hi = _ci(x, c)
    return Stats(
        n=int(x.size),
        mean=float(np.mean(x)),
        std=float(np.std(x, ddof=1)) if x.size > 1 else math.nan,
        min=float(np.min(x)),
        max=float(np.max(x)),
        p50=float(p50),
        p90=float(p90),
        p99=float(p99),
        ci_low=lo,
        ci_high=hi,
        confidence=c,
    )
