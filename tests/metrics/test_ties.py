"""Ranks carry their uncertainty: overlapping score intervals share a tie group and a rank range."""

from __future__ import annotations

import math

import pytest

from energybench.metrics.costs import CostItem, EntryCost
from energybench.metrics.greenness import (
    energy_interval,
    greenness_interval,
    score_interval,
    suite_score,
)
from energybench.metrics.ranking import rank, tie_groups


def entry(
    name: str, tec: float, iec: float, ci: float | None = None, tec_sigma: float | None = None
) -> EntryCost:
    items = [CostItem("train", "train", name, tec, tec_sigma)] if tec else []
    return EntryCost(
        name,
        items=items,
        iec_j=iec,
        iec_ci_j=None if ci is None else (iec - ci, iec + ci),
        quality=1.0,
    )


def test_energy_interval_adds_two_sigma_of_tec_and_the_iec_ci() -> None:
    e = entry("a", 100.0, 2.0, ci=0.5, tec_sigma=10.0)
    assert energy_interval(e, 10.0) == pytest.approx((80.0 + 15.0, 120.0 + 25.0))
    lo, hi = greenness_interval(e, 10.0)  # type: ignore[misc]
    assert (lo, hi) == pytest.approx((1 / 145.0, 1 / 95.0))
    # an exact entry (no CI, no sigma) has a point interval
    assert greenness_interval(entry("p", 100.0, 2.0), 10.0) == pytest.approx((1 / 120, 1 / 120))
    # TEC 0 and an IEC CI down to 0 J: G is unbounded above, never a division error
    assert greenness_interval(entry("z", 0.0, 1.0, ci=1.0), 10.0)[1] == math.inf  # type: ignore[index]


def test_score_interval_is_the_geometric_mean_of_the_ends() -> None:
    e = entry("a", 100.0, 2.0, ci=0.5)
    pairs = [(10.0, 1.0), (1000.0, 1.0)]
    lo, hi = score_interval(e, pairs)  # type: ignore[misc]
    g = [greenness_interval(e, m) for m, _ in pairs]
    assert lo == pytest.approx(math.sqrt(g[0][0] * g[1][0]))  # type: ignore[index]
    assert hi == pytest.approx(math.sqrt(g[0][1] * g[1][1]))  # type: ignore[index]


def test_overlapping_intervals_share_a_tie_group_and_a_rank_range() -> None:
    # E at MUI 10: a = 20 +- 5, b = 22 +- 5 (overlap), c = 100 +- 1 (apart)
    a, b, c = entry("a", 0, 2.0, ci=0.5), entry("b", 0, 2.2, ci=0.5), entry("c", 0, 10.0, ci=0.1)
    rows = {r.name: r for r in rank([c, b, a], mui=10)}
    assert [rows[n].rank for n in "abc"] == [1, 2, 3]
    assert (rows["a"].rank_lo, rows["a"].rank_hi) == (1, 2)
    assert (rows["b"].rank_lo, rows["b"].rank_hi) == (1, 2)
    assert (rows["c"].rank_lo, rows["c"].rank_hi) == (3, 3)
    assert rows["a"].tie_group == rows["b"].tie_group == 1 and rows["c"].tie_group == 2
    assert rows["a"].value_lo <= rows["a"].value <= rows["a"].value_hi  # type: ignore[operator]


def test_intervals_that_just_touch_are_tied_and_apart_are_not() -> None:
    # G interval ends: E in [15, 25] vs E in [25, 35]: they touch at 25 J
    a, b = entry("a", 0, 2.0, ci=0.5), entry("b", 0, 3.0, ci=0.5)
    rows = {r.name: r for r in rank([a, b], mui=10)}
    assert rows["a"].tie_group == rows["b"].tie_group
    b2 = entry("b", 0, 3.01, ci=0.5)
    rows = {r.name: r for r in rank([a, b2], mui=10)}
    assert (rows["a"].tie_group, rows["b"].tie_group) == (1, 2)
    assert (rows["a"].rank_lo, rows["a"].rank_hi, rows["b"].rank_lo) == (1, 1, 2)


def test_a_chain_of_overlaps_is_one_group_even_when_its_ends_do_not_overlap() -> None:
    # bands in ranked order: [8,12] [5,9] [2,6] — the first and last do not overlap
    assert tie_groups([(8, 12), (5, 9), (2, 6)]) == [1, 1, 1]
    assert tie_groups([(8, 12), (5, 7), (2, 6), (0, 1)]) == [1, 2, 2, 3]
    # a later, wide interval links an earlier group to a new one: one group
    assert tie_groups([(10, 12), (7, 8), (3, 11)]) == [1, 1, 1]
    assert tie_groups([]) == []


def test_suite_score_ranking_has_intervals_too_and_unranked_rows_have_none() -> None:
    a, b = entry("a", 0, 2.0, ci=0.5), entry("b", 0, 9.0, ci=0.1)
    bad = EntryCost("q", iec_j=1.0, quality=None)
    rows = {r.name: r for r in rank([a, b, bad], intensities=[(10, 1), (100, 1)])}
    assert (rows["a"].tie_group, rows["b"].tie_group) == (1, 2)
    assert rows["q"].rank is None and rows["q"].tie_group is None and rows["q"].rank_lo is None


def test_an_unranked_entry_keeps_its_interval_for_display_and_compare() -> None:
    est = EntryCost("e", iec_j=2.0, iec_ci_j=(1.5, 2.5), quality=1.0, is_estimate=True)
    (row,) = rank([est], mui=10)
    assert row.rank is None and row.tie_group is None
    assert (row.value_lo, row.value_hi) == pytest.approx((1 / 25, 1 / 15))


def test_intervals_follow_quality_tau_and_sub_joule_energies() -> None:
    e = EntryCost("q", iec_j=0.02, iec_ci_j=(0.01, 0.03), quality=4.0)
    lo, hi = greenness_interval(e, 10.0, tau=0.5)  # type: ignore[misc]
    assert (lo, hi) == pytest.approx((2.0 / 0.3, 2.0 / 0.1))  # Q^0.5 = 2, E in [0.1, 0.3] J
    assert greenness_interval(e, 10.0, tau=0.0) == pytest.approx((1 / 0.3, 1 / 0.1))
    s_lo, s_hi = score_interval(e, [(10.0, 1.0), (20.0, 3.0)], tau=0.5)  # type: ignore[misc]
    assert s_lo == pytest.approx(math.exp(0.25 * math.log(2 / 0.3) + 0.75 * math.log(2 / 0.6)))
    assert s_hi == pytest.approx(math.exp(0.25 * math.log(2 / 0.1) + 0.75 * math.log(2 / 0.2)))
    rows = rank([e, EntryCost("r", iec_j=0.05, quality=4.0)], mui=10.0, tau=0.5)
    assert rows[0].name == "q" and rows[0].value == pytest.approx(2 / 0.2)


def test_score_interval_defaults_to_tau_1_and_a_g_of_exactly_one_is_kept() -> None:
    e = EntryCost("q", iec_j=0.02, iec_ci_j=(0.01, 0.03), quality=4.0)
    lo, hi = score_interval(e, [(10.0, 1.0)])  # type: ignore[misc]
    assert (lo, hi) == pytest.approx((4.0 / 0.3, 4.0 / 0.1))
    # G = 1 / 1 J at MUI 1: ln G = 0 is a figure like any other, not an underflow
    one = EntryCost("one", iec_j=1.0, quality=1.0)
    assert score_interval(one, [(1.0, 1.0)]) == (1.0, 1.0)
    both = math.sqrt(1.0 * 1 / 3.0)
    assert score_interval(one, [(1.0, 1.0), (3.0, 1.0)]) == pytest.approx((both, both))


def test_suite_score_uses_tau_and_needs_no_quality_at_tau_0() -> None:
    e = EntryCost("q", iec_j=0.5, quality=4.0)
    assert suite_score(e, [(10.0, 1.0)], tau=0.5) == pytest.approx(2.0 / 5.0)
    assert suite_score(e, [(10.0, 1.0)]) == pytest.approx(4.0 / 5.0)
    blind = EntryCost("b", iec_j=0.5, quality=None)
    assert suite_score(blind, [(10.0, 1.0)], tau=0.0) == pytest.approx(1 / 5.0)
    assert suite_score(blind, [(10.0, 1.0)]) is None


def test_greenness_interval_follows_tau_its_default_and_coverage() -> None:
    e = EntryCost(
        "q", [CostItem("t", "train", "q", 10.0, 1.0)], iec_j=1.0, iec_ci_j=(0.5, 1.5), quality=9.0
    )
    # E at MUI 10: TEC 10 ± k·1 J plus 10 × [0.5, 1.5] J
    assert greenness_interval(e, 10.0) == pytest.approx((9.0 / 27.0, 9.0 / 13.0))
    assert greenness_interval(e, 10.0, tau=1.0) == pytest.approx((9.0 / 27.0, 9.0 / 13.0))
    assert greenness_interval(e, 10.0, tau=0.5) == pytest.approx((3.0 / 27.0, 3.0 / 13.0))
    assert greenness_interval(e, 10.0, coverage_k=1.0) == pytest.approx((9.0 / 26.0, 9.0 / 14.0))
    blind = EntryCost("b", iec_j=1.0, iec_ci_j=(0.5, 1.5), quality=None)
    assert greenness_interval(blind, 10.0, tau=0.0) == pytest.approx((1 / 15.0, 1 / 5.0))
    assert greenness_interval(blind, 10.0) is None


def test_rank_intervals_use_tau_at_one_mui_and_over_intensities() -> None:
    e = EntryCost("q", iec_j=1.0, iec_ci_j=(0.5, 1.5), quality=9.0)
    (row,) = rank([e], mui=10.0, tau=0.5)
    assert (row.value_lo, row.value_hi) == pytest.approx((3.0 / 15.0, 3.0 / 5.0))
    (row,) = rank([e], intensities=[(10.0, 1.0)], tau=0.5)
    assert (row.value_lo, row.value_hi) == pytest.approx((3.0 / 15.0, 3.0 / 5.0))
    assert row.value == pytest.approx(3.0 / 10.0)


def test_bad_usage_intensity_weights_are_refused() -> None:
    e = entry("a", 0, 2.0)
    for w in (-1.0, math.nan, math.inf):
        with pytest.raises(ValueError, match="weight must be finite and >= 0"):
            suite_score(e, [(10.0, w)])
    none_left = "^suite score needs at least one usage intensity with a weight > 0$"
    with pytest.raises(ValueError, match=none_left):
        suite_score(e, [(10.0, 0.0)])


def test_equal_exact_values_are_one_tie_group() -> None:
    assert tie_groups([(1.0, 1.0), (1.0, 1.0), (0.5, 0.5)]) == [1, 1, 2]
    rows = rank([entry("a", 10.0, 1.0), entry("b", 10.0, 1.0)], mui=10)
    assert [(r.rank, r.tie_group, r.rank_lo, r.rank_hi) for r in rows] == [(1, 1, 1, 2)] * 2


def test_rank_rows_carry_the_entrys_figures() -> None:
    e = EntryCost("a", [CostItem("t", "train", "a", 30.0)], iec_j=2.0, quality=0.5)
    (row,) = rank([e], mui=10)
    figures = (row.mui, row.tec_j, row.iec_j, row.quality, row.energy_j)
    assert figures == (10.0, 30.0, 2.0, 0.5, 50.0)
    assert row.value == pytest.approx(0.5 / 50.0) and row.metric == "greenness"
    (row,) = rank([e], intensities=[(10, 1)])
    assert row.mui is None and row.energy_j is None and row.metric == "score"


def test_rank_refuses_both_or_neither_of_mui_and_intensities() -> None:
    e = entry("a", 0, 2.0)
    for kw in ({}, {"mui": 10.0, "intensities": [(10.0, 1.0)]}):
        with pytest.raises(ValueError, match=r"^rank\(\) needs exactly one of mui= or intensit"):
            rank([e], **kw)  # type: ignore[arg-type]


def test_shared_zero_iec_and_incomplete_entries_are_unranked_with_the_reason() -> None:
    shared = EntryCost("s", iec_j=1.0, quality=1.0, is_shared=True)
    free = EntryCost("z", [CostItem("t", "train", "z", 10.0)], iec_j=0.0, quality=1.0)
    gaps = EntryCost(
        "g",
        [CostItem("t", "train", "g", 5.0, gap="GPU lost"), CostItem("u", "export", "g", 1.0)],
        iec_j=1.0,
        quality=1.0,
        iec_gap="window 2 had no GPU figure",
    )
    rows = {r.name: r for r in rank([shared, free, gaps], mui=10)}
    assert rows["s"].rank is None and "measured on a shared device" in rows["s"].reason
    assert rank([shared], mui=10, allow_shared=True)[0].rank == 1
    assert rows["z"].rank is None
    assert rows["z"].reason == "IEC = 0 J per item is not a plausible measurement"
    assert rows["g"].reason == (
        "energy incomplete, never summed as if whole: t: GPU lost; IEC: window 2 had no GPU figure"
    )


def test_at_tau_0_an_entry_without_quality_is_ranked_on_energy() -> None:
    blind = EntryCost("b", iec_j=0.5, quality=None)
    (row,) = rank([blind], mui=10, tau=0.0)
    assert row.rank == 1 and row.value == pytest.approx(1 / 5.0)


def test_a_free_or_infinite_figure_is_shown_but_never_ranked() -> None:
    free = EntryCost("z", [CostItem("t", "train", "z", 10.0)], iec_j=0.0, quality=1.0)
    (row,) = rank([free], mui=10)
    assert row.rank is None and row.value == pytest.approx(0.1)  # finite: still shown
    nothing = EntryCost("n", iec_j=0.0, quality=1.0)  # E = 0 J at MUI 10: G infinite
    (row,) = rank([nothing], mui=10)
    assert row.rank is None and row.value is None
    assert row.reason == (
        "IEC = 0 J per item is not a plausible measurement; "
        "the value inf is not finite, so it cannot be compared"
    )


def test_messages_of_bad_mui_tau_and_undefined_g() -> None:
    e = EntryCost("q", iec_j=None, quality=-1.0)
    with pytest.raises(ValueError, match=r"^MUI must be a finite count of items >= 0, got -1.0$"):
        rank([e], mui=-1)
    with pytest.raises(ValueError, match=r"^tau must be finite and >= 0, got -2.0$"):
        rank([e], mui=1, tau=-2)
    (row,) = rank([e], mui=1)
    assert row.reason == "G undefined: IEC not measured; quality Q = -1 <= 0, so Q^τ/E is undefined"
