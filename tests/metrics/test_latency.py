"""Stats of repeated measurements agree with numpy/scipy and behave at the edges."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from energybench.metrics.latency import Stats, ci_of_mean, summarize

settings.register_profile("latency", deadline=None, max_examples=100)
settings.load_profile("latency")

samples = st.lists(st.floats(0, 1e3), min_size=2, max_size=200)


@given(samples, st.sampled_from([0.8, 0.9, 0.95, 0.99]))
def test_matches_numpy_and_scipy(values: list[float], conf: float) -> None:
    x = np.asarray(values)
    s = summarize(values, confidence=conf)
    assert s.n == len(values)
    assert s.mean == np.mean(x)
    assert s.std == pytest.approx(np.std(x, ddof=1), rel=1e-12, abs=1e-12)
    assert (s.min, s.max) == (x.min(), x.max())
    p = np.percentile(x, [50, 90, 99], method="linear")
    assert (s.p50, s.p90, s.p99) == tuple(p)
    sem = stats.sem(x)
    if sem > 0:
        lo, hi = stats.t.interval(conf, len(x) - 1, loc=np.mean(x), scale=sem)
        assert s.ci_low == pytest.approx(lo, rel=1e-9, abs=1e-12)
        assert s.ci_high == pytest.approx(hi, rel=1e-9, abs=1e-12)
    assert ci_of_mean(values, conf) == (s.ci_low, s.ci_high)


@given(samples)
def test_ci_contains_mean_and_percentiles_ordered(values: list[float]) -> None:
    s = summarize(values)
    assert s.ci_low <= s.mean <= s.ci_high
    assert s.min <= s.p50 <= s.p90 <= s.p99 <= s.max
    assert s.ci_half_width >= 0
    wider = summarize(values, confidence=0.99)
    assert wider.ci_low <= s.ci_low and s.ci_high <= wider.ci_high


def test_single_sample_has_undefined_spread() -> None:
    s = summarize([0.25])
    assert (s.n, s.mean, s.p50, s.p99) == (1, 0.25, 0.25, 0.25)
    assert math.isnan(s.std) and math.isnan(s.ci_low) and math.isnan(s.ci_high)
    assert math.isnan(s.rel_ci)
    d = s.to_dict()
    assert d["ci_low"] is None and d["std"] is None and d["mean"] == 0.25
    json.dumps(d, allow_nan=False)
    assert all(math.isnan(v) for v in ci_of_mean([3.0]))


def test_constant_samples_collapse_interval() -> None:
    s = summarize(np.full(10, 2.0))
    assert s.std == 0.0 and (s.ci_low, s.ci_high) == (2.0, 2.0) and s.rel_ci == 0.0


def test_accepts_arrays_of_any_shape_and_iterables() -> None:
    a = np.arange(12.0).reshape(3, 4)
    assert summarize(a) == summarize(float(v) for v in range(12))
    assert isinstance(summarize(a), Stats)


@pytest.mark.parametrize("bad", [[], [1.0, math.nan], [math.inf, 1.0]])
def test_rejects_empty_and_non_finite(bad: list[float]) -> None:
    with pytest.raises(ValueError):
        summarize(bad)


@pytest.mark.parametrize("conf", [0.0, 1.0, 1.5, -0.1])
def test_rejects_bad_confidence(conf: float) -> None:
    with pytest.raises(ValueError):
        summarize([1.0, 2.0], confidence=conf)


def test_t_interval_coverage_is_nominal() -> None:
    rng = np.random.default_rng(0)
    draws = rng.normal(5.0, 2.0, size=(2000, 8))
    hits = 0
    for row in draws:
        lo, hi = ci_of_mean(row)
        hits += lo <= 5.0 <= hi
    assert 0.93 <= hits / len(draws) <= 0.97


def test_the_confidence_used_is_recorded() -> None:
    assert summarize([1.0, 2.0, 4.0]).confidence == 0.95
    s = summarize([1.0, 2.0, 4.0], confidence=0.8)
    assert s.confidence == 0.8 and s.to_dict()["confidence"] == 0.8


def test_bad_samples_are_refused_with_what_is_wrong() -> None:
    with pytest.raises(ValueError, match="^no samples: statistics need at least one value$"):
        summarize([])
    with pytest.raises(ValueError, match="^samples must be finite; got 2 NaN/inf$"):
        summarize([1.0, math.nan, 2.0, math.inf, 3.0])
    with pytest.raises(ValueError, match=r"^confidence must be in \(0, 1\), got 1.5$"):
        summarize([1.0, 2.0], confidence=1.5)


def test_the_half_width_and_relative_interval_are_students_t() -> None:
    s = summarize([1.0, 2.0, 3.0])  # mean 2, std 1, n 3: t(0.975, 2) / sqrt(3) = 2.4841
    assert s.ci_half_width == pytest.approx(2.48414, rel=1e-5)
    assert s.rel_ci == pytest.approx(2.48414 / 2.0, rel=1e-5)
    negative = summarize([-1.0, -2.0, -3.0])  # relative to |mean|: never negative
    assert negative.rel_ci == pytest.approx(s.rel_ci)
    assert summarize([-1.0, 1.0]).rel_ci == math.inf  # a zero mean with spread
    assert summarize([0.0, 0.0, 0.0]).rel_ci == 0.0  # a zero mean without spread
