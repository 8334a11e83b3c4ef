"""Properties of the full-cycle metric: E(MUI), G, suite score, break-even, ranking."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from energybench.metrics.fullcycle import (
    SCORE_FORMULA,
    BreakEven,
    CostItem,
    EntryCost,
    IncompleteCostError,
    break_even,
    energy_at,
    energy_split,
    greenness,
    rank,
    suite_score,
)

settings.register_profile("fullcycle", deadline=None, max_examples=100)
settings.load_profile("fullcycle")

# Small integers make ties and equal TEC/IEC (the edge cases of break-even) likely.
tecs = st.one_of(st.integers(0, 5).map(float), st.floats(0, 1e9))
iecs = st.one_of(st.integers(0, 5).map(float), st.floats(1e-6, 1e3))
qualities = st.floats(0.1, 100)
muis = st.floats(0, 1e12)


def entry(
    name: str,
    tec: float,
    iec: float | None,
    q: float | None = 1.0,
    *,
    sigma: float | None = None,
    ci: tuple[float, float] | None = None,
    estimate: bool = False,
) -> EntryCost:
    items = [CostItem(f"{name}-train", "train", name, tec, sigma, "nvml-counter")]
    return EntryCost(name, items, iec, ci, "online-30fps", q, estimate)


def close(x: float, y: float, scale: float) -> bool:
    return abs(x - y) <= 1e-9 * max(abs(x), abs(y), scale) + 1e-12


# --------------------------------------------------------------------------- TEC and E
def test_tec_counts_shared_costs_fully() -> None:
    base = CostItem("base training", "train", "base", 1000.0, 30.0, "nvml-counter", shared=True)
    teacher = CostItem("teacher", "upstream", "teacher", 500.0, 40.0, "nvml-counter", shared=True)
    own = CostItem("prune+finetune", "compress", "pruned", 200.0, None, "nvml-counter")
    e = EntryCost("pruned", [base, teacher, own], 0.5, (0.4, 0.6), "offline-b8", 2.0, False)
    assert e.tec_j == 1700.0
    assert e.shared_j == 1500.0
    assert e.tec_uncertainty_j == pytest.approx(50.0)  # RSS of 30 and 40; own item unknown
    assert e.by_phase() == {"train": 1000.0, "upstream": 500.0, "compress": 200.0}
    split = energy_split(e, 1000)
    assert split["serve"] == 500.0
    assert sum(split.values()) == pytest.approx(energy_at(e, 1000))


def test_gaps_name_each_item_and_iec_and_estimates_come_from_the_entry_or_an_item() -> None:
    base = CostItem("base", "train", "base", None, None, "nvml-counter", gap="gpu:a: no figure")
    est = CostItem("prune", "compress", "p", 5.0, 1.0, "estimate", is_estimate=True)
    fine = CostItem("finetune", "compress", "p", 7.0, 2.0, "nvml-counter")
    e = EntryCost("p", [base, est, fine], iec_gap="gpu:a: incomplete")
    assert e.gaps == ["base: gpu:a: no figure", "IEC: gpu:a: incomplete"]
    assert EntryCost("q", [fine]).gaps == []
    assert EntryCost("p", [fine, est]).has_estimates is True  # an estimated item
    assert EntryCost("p", [fine], is_estimate=True).has_estimates is True  # the entry's IEC
    assert EntryCost("p", [fine]).has_estimates is False
    assert EntryCost("p", [fine]).shared_j == 0.0  # nothing shared: 0 J, not unknown
    shared = CostItem("base", "train", "base", None, None, "nvml-counter", shared=True)
    assert EntryCost("p", [fine, shared]).shared_j is None  # a shared item unmeasured


def test_no_items_means_zero_tec_and_unmeasured_item_means_unknown() -> None:
    bicubic = EntryCost("bicubic", [], 1e-3, None, "online", 1.0)
    assert bicubic.tec_j == 0.0 and bicubic.tec_uncertainty_j == 0.0
    assert greenness(bicubic, 0) == math.inf  # E = 0
    broken = EntryCost(
        "x", [CostItem("train", "train", "x", None, None, "nvml")], 1.0, None, None, 1.0
    )
    assert broken.tec_j is None and broken.tec_uncertainty_j is None
    with pytest.raises(IncompleteCostError, match="TEC not measured"):
        energy_at(broken, 10)
    assert greenness(broken, 10) is None
    no_iec = entry("y", 1.0, None)
    with pytest.raises(IncompleteCostError, match="IEC not measured"):
        break_even(no_iec, entry("z", 1.0, 1.0))


def test_invalid_figures_rejected() -> None:
    with pytest.raises(ValueError):
        CostItem("t", "train", "a", -1.0)
    with pytest.raises(ValueError):
        CostItem("t", "train", "a", math.nan)
    with pytest.raises(ValueError):
        EntryCost("a", [], 1.0, (2.0, 1.0))
    with pytest.raises(ValueError):
        energy_at(entry("a", 1, 1), -1)
    with pytest.raises(ValueError):
        greenness(entry("a", 1, 1), 1, tau=-1)


def test_roundtrip_dict() -> None:
    e = entry("a", 12.0, 0.5, 3.0, sigma=1.0, ci=(0.4, 0.6), estimate=True)
    d = e.to_dict()
    assert d["tec_j"] == 12.0
    assert EntryCost.from_dict(d) == e


@given(tecs, iecs, muis, muis, st.floats(0, 1))
def test_energy_is_linear_in_mui(tec: float, iec: float, m1: float, m2: float, t: float) -> None:
    e = entry("a", tec, iec)
    assert energy_at(e, 0) == tec
    assert energy_at(e, m1) == tec + m1 * iec
    mixed = energy_at(e, t * m1 + (1 - t) * m2)
    combo = t * energy_at(e, m1) + (1 - t) * energy_at(e, m2)
    assert close(mixed, combo, tec + max(m1, m2) * iec)


# --------------------------------------------------------------------------- greenness
@given(tecs, iecs, qualities, muis, st.floats(0, 3))
def test_greenness_formula(tec: float, iec: float, q: float, mui: float, tau: float) -> None:
    e = entry("a", tec, iec, q)
    g = greenness(e, mui, tau)
    energy = tec + mui * iec
    if energy == 0:
        assert g == math.inf
    else:
        assert g == pytest.approx(q**tau / energy, rel=1e-12)


@pytest.mark.parametrize("q", [0.0, -0.3, None])
def test_greenness_undefined_for_nonpositive_or_missing_quality(q: float | None) -> None:
    e = entry("a", 10.0, 1.0, q)
    assert greenness(e, 100) is None
    assert suite_score(e, [(100, 1)]) is None
    assert greenness(e, 100, tau=0) == pytest.approx(1 / 110)  # tau = 0 ignores quality
    rows = rank([e, entry("b", 10.0, 1.0, 1.0)], mui=100)
    assert [r.name for r in rows] == ["b", "a"]
    assert rows[1].rank is None and "G undefined" in (rows[1].reason or "")


# --------------------------------------------------------------------------- suite score
def test_score_formula_constant() -> None:
    assert "exp" in SCORE_FORMULA and "ln G" in SCORE_FORMULA


@dataclass
class _UI:
    mui: float
    weight: float


@given(
    tecs, iecs, qualities, st.lists(st.tuples(muis, st.floats(0.01, 10)), min_size=1, max_size=5)
)
def test_score_is_weighted_geometric_mean(
    tec: float, iec: float, q: float, pairs: list[tuple[float, float]]
) -> None:
    e = entry("a", tec, iec, q)
    gs = [greenness(e, m) for m, _ in pairs]
    assume(all(g is not None and 0 < g < math.inf for g in gs))
    s = suite_score(e, pairs)
    assert s is not None
    wsum = sum(w for _, w in pairs)
    expected = math.exp(sum(w * math.log(g) for (_, w), g in zip(pairs, gs, strict=True)) / wsum)  # type: ignore[arg-type]
    assert s == pytest.approx(expected, rel=1e-9)
    assert min(gs) * (1 - 1e-12) <= s <= max(gs) * (1 + 1e-12)  # type: ignore[type-var]
    # weights are relative; objects with .mui/.weight are accepted; zero weights are skipped
    scaled = [_UI(m, 7 * w) for m, w in pairs] + [_UI(1.0, 0.0)]
    assert suite_score(e, scaled) == pytest.approx(s, rel=1e-9)


def test_score_single_intensity_equals_greenness_and_needs_weight() -> None:
    e = entry("a", 100.0, 2.0, 5.0)
    assert suite_score(e, [(1e3, 1.0)]) == pytest.approx(greenness(e, 1e3))
    with pytest.raises(ValueError):
        suite_score(e, [(1e3, 0.0)])
    with pytest.raises(ValueError):
        suite_score(e, [])


entries_strat = st.lists(
    st.tuples(st.floats(1, 1e9), st.floats(1e-6, 1e3), qualities), min_size=2, max_size=6
)


@given(entries_strat, st.integers(-30, 30))
def test_score_ranking_invariant_to_energy_scale(
    specs: list[tuple[float, float, float]], k: int
) -> None:
    c = 2.0**k  # exact scaling, so only near-ties can be perturbed by rounding in log/exp
    intens = [(1e3, 1.0), (1e5, 2.0), (1e7, 1.0)]
    base = [entry(f"e{i}", t, i_, q, sigma=0.01 * t) for i, (t, i_, q) in enumerate(specs)]
    scal = [
        entry(f"e{i}", t * c, i_ * c, q, sigma=0.01 * t * c) for i, (t, i_, q) in enumerate(specs)
    ]
    s0 = {e.name: suite_score(e, intens) for e in base}
    s1 = {e.name: suite_score(e, intens) for e in scal}
    for n in s0:
        assert s1[n] == pytest.approx(s0[n] / c, rel=1e-9)  # type: ignore[operator]
    r0 = {r.name: r.rank for r in rank(base, intensities=intens)}
    r1 = {r.name: r.rank for r in rank(scal, intensities=intens)}
    for a in s0:
        for b in s0:
            sa, sb = s0[a], s0[b]
            assert sa is not None and sb is not None
            if sa > sb * (1 + 1e-9):
                assert r0[a] < r0[b] and r1[a] < r1[b]  # type: ignore[operator]


# --------------------------------------------------------------------------- break-even
def _ea(e: EntryCost, m: float) -> float:
    return energy_at(e, m)


@given(tecs, iecs, tecs, iecs)
@example(1000.0, 1.0, 0.0, 2.0)  # at: the variant pays back after 1000 items
@example(0.0, 2.0, 1000.0, 1.0)  # at: the other way round
@example(0.0, 1.0, 5.0, 2.0)  # always
@example(0.0, 1.0, 0.0, 2.0)  # always, equal at MUI = 0
@example(5.0, 2.0, 0.0, 1.0)  # never
@example(1.0, 1.0, 0.0, 1.0)  # never, parallel lines
@example(1.0, 1.0, 1.0, 1.0)  # identical
def test_break_even_is_where_lines_cross(ta: float, ia: float, tb: float, ib: float) -> None:
    a, b = entry("a", ta, ia), entry("b", tb, ib)
    be = break_even(a, b)
    probes = [0.0, 1.0, 1e3, 1e6, 1e9, 1e12]
    if be.kind == "identical":
        assert (ta, ia) == (tb, ib) and be.mui is None and be.cheaper_above is None
    elif be.kind == "always":
        assert all(_ea(a, m) <= _ea(b, m) for m in probes) and be.cheaper_above == "a"
    elif be.kind == "never":
        assert all(_ea(a, m) >= _ea(b, m) for m in probes) and be.cheaper_above == "b"
    else:
        m = be.mui
        assert m is not None and 0 < m < math.inf
        assert close(_ea(a, m), _ea(b, m), max(ta, tb))
        assert m == pytest.approx((tb - ta) / (ia - ib))
        # the cheaper_above entry wins beyond the crossing and loses before it
        win, lose = (a, b) if be.cheaper_above == "a" else (b, a)
        assert _ea(win, 2 * m) < _ea(lose, 2 * m) or close(
            _ea(win, 2 * m), _ea(lose, 2 * m), max(ta, tb)
        )
        assert _ea(win, m / 2) > _ea(lose, m / 2) or close(
            _ea(win, m / 2), _ea(lose, m / 2), max(ta, tb)
        )
        # without uncertainty the interval is the point
        assert be.lo is not None and be.hi is not None
        assert be.lo == pytest.approx(m, rel=1e-9) and be.hi == pytest.approx(m, rel=1e-9)
    # swapping the roles swaps always/never and keeps the crossing
    swapped = break_even(b, a)
    assert swapped.kind == {"always": "never", "never": "always"}.get(be.kind, be.kind)
    if be.kind == "at":
        assert swapped.mui == pytest.approx(be.mui)


@given(
    st.floats(1, 1e6),
    st.floats(1e-3, 10),
    st.floats(1, 1e6),
    st.floats(1e-3, 10),
    st.floats(0, 0.2),
    st.floats(0, 0.3),
)
def test_break_even_interval_contains_crossing(
    ta: float, ia: float, tb: float, ib: float, rel_sigma: float, rel_ci: float
) -> None:
    a = entry("a", ta, ia, sigma=rel_sigma * ta, ci=(ia * (1 - rel_ci), ia * (1 + rel_ci)))
    b = entry("b", tb, ib, sigma=rel_sigma * tb, ci=(ib * (1 - rel_ci), ib * (1 + rel_ci)))
    be = break_even(a, b)
    if be.kind == "at":
        assert be.mui is not None and be.lo is not None and be.hi is not None
        assert be.lo <= be.mui * (1 + 1e-9) and be.mui <= be.hi * (1 + 1e-9)
    if be.lo is not None:
        assert be.hi is not None and 0 <= be.lo <= be.hi


def test_break_even_worked_example() -> None:
    # compressed variant a: +1000 J up front, saves 1 J per item -> pays back after 1000 items
    a = entry("a", 1000.0, 1.0, sigma=50.0)
    b = EntryCost("b", [], 2.0, (2.0, 2.0), None, 1.0)
    a_exact_iec = EntryCost("a", a.items, 1.0, (1.0, 1.0), None, 1.0)
    be = break_even(a_exact_iec, b)
    assert isinstance(be, BreakEven)
    assert (be.kind, be.mui, be.cheaper_above) == ("at", 1000.0, "a")
    assert be.lo == pytest.approx(900.0) and be.hi == pytest.approx(1100.0)  # TEC ± 2σ
    wide = EntryCost("a", a.items, 1.0, (0.5, 1.5), None, 1.0)
    be = break_even(wide, b)
    assert be.lo == pytest.approx(600.0) and be.hi == pytest.approx(2200.0)  # [900/1.5, 1100/0.5]
    straddle = EntryCost("a", a.items, 1.0, (0.5, 2.5), None, 1.0)
    assert break_even(straddle, b).hi == math.inf
    assert "IEC CI of 'a' unknown" in break_even(a, b).note


def test_break_even_shared_base_cost_cancels() -> None:
    # a variant inherits its base's training (3.6 MJ ± 100 kJ); only its own 50 ± 5 J differ
    base_train = CostItem("base training", "train", "base", 3.6e6, 1e5, "nvml-counter")
    inherited = CostItem("base training", "train", "base", 3.6e6, 1e5, "nvml-counter", True)
    reparam = CostItem("reparam", "compress", "variant", 50.0, 5.0, "nvml-counter")
    variant = EntryCost("variant", [inherited, reparam], 0.8, (0.75, 0.85), "online", 1.0)
    base = EntryCost("base", [base_train], 1.1, (1.0, 1.2), "online", 1.0)
    be = break_even(variant, base)
    assert be.kind == "at" and be.mui == pytest.approx(50 / 0.3)
    # own TEC difference in [40, 60] J, IEC difference in [-0.45, -0.15] J/item
    assert be.lo == pytest.approx(40 / 0.45) and be.hi == pytest.approx(60 / 0.15)
    assert "common to both" in be.note


# --------------------------------------------------------------------------- ranking
rank_specs = st.lists(
    st.tuples(st.one_of(st.integers(0, 3).map(float), st.floats(0, 1e9)), st.integers(1, 10**6)),
    min_size=1,
    max_size=8,
)


@given(rank_specs, st.floats(0.1, 10))
def test_rank_at_zero_mui_follows_tec(specs: list[tuple[float, int]], q: float) -> None:
    es = [entry(f"e{i}", t, k * 1e-3, q) for i, (t, k) in enumerate(specs)]
    r = {row.name: row.rank for row in rank(es, mui=0)}
    for i, (ti, _) in enumerate(specs):
        for j, (tj, _) in enumerate(specs):
            ri, rj = r[f"e{i}"], r[f"e{j}"]
            assert ri is not None and rj is not None
            if ti < tj:
                assert ri <= rj
            if ti == tj:
                assert ri == rj


@given(rank_specs, st.floats(0.1, 10))
def test_rank_at_huge_mui_follows_iec(specs: list[tuple[float, int]], q: float) -> None:
    es = [entry(f"e{i}", t, k * 1e-3, q) for i, (t, k) in enumerate(specs)]
    rows = rank(es, mui=1e30)
    assert [row.rank for row in rows] == sorted(row.rank for row in rows)  # type: ignore[type-var]
    r = {row.name: row.rank for row in rows}
    for i, (_, ki) in enumerate(specs):
        for j, (_, kj) in enumerate(specs):
            if ki < kj:
                assert r[f"e{i}"] < r[f"e{j}"]  # type: ignore[operator]


def test_rank_ties_share_rank_and_keep_input_order() -> None:
    es = [entry("x", 10.0, 1.0), entry("y", 5.0, 1.0), entry("z", 10.0, 1.0)]
    rows = rank(es, mui=100)
    assert [(r.name, r.rank) for r in rows] == [("y", 1), ("x", 2), ("z", 2)]
    assert rows[0].energy_j == 105.0 and rows[0].metric == "greenness"


@given(
    st.lists(
        st.tuples(st.floats(1, 1e6), st.floats(1e-3, 10), st.booleans()), min_size=1, max_size=6
    )
)
def test_estimates_excluded_unless_opted_in(specs: list[tuple[float, float, bool]]) -> None:
    es = []
    for i, (t, iec, est) in enumerate(specs):
        # alternate between an entry-level flag and an estimated cost item
        if est and i % 2:
            item = CostItem("train", "train", f"e{i}", t, None, "estimate", is_estimate=True)
            es.append(EntryCost(f"e{i}", [item], iec, None, None, 1.0))
        else:
            es.append(entry(f"e{i}", t, iec, estimate=est))
    rows = rank(es, intensities=[(1e3, 1), (1e6, 1)])
    for row, (_, _, est) in zip(sorted(rows, key=lambda r: int(r.name[1:])), specs, strict=True):
        assert row.is_estimate == est
        if est:
            assert row.rank is None and "estimate" in (row.reason or "")
        else:
            assert row.rank is not None and row.reason is None
    n_ranked = sum(not est for *_, est in specs)
    assert all(r.rank is not None for r in rows[:n_ranked])  # ranked rows first
    opted = rank(es, intensities=[(1e3, 1), (1e6, 1)], allow_estimates=True)
    assert all(r.rank is not None for r in opted)
    assert all(r.metric == "score" and r.energy_j is None for r in opted)


def test_rank_needs_exactly_one_of_mui_or_intensities() -> None:
    es = [entry("a", 1.0, 1.0)]
    with pytest.raises(ValueError):
        rank(es)
    with pytest.raises(ValueError):
        rank(es, mui=1.0, intensities=[(1.0, 1.0)])


def test_break_even_cancels_the_gain_error_only_for_the_same_devices() -> None:
    from energybench.metrics.breakeven import same_meters

    def e(name: str, tec: float, iec: float, devices: tuple[str, ...]) -> EntryCost:
        return EntryCost(
            name,
            items=[CostItem("t", "train", name, tec, 1.0)],
            iec_j=iec,
            iec_ci_j=(iec - 0.5, iec + 0.5),
            iec_stat_ci_j=(iec - 0.1, iec + 0.1),
            quality=1.0,
            devices=devices,
        )

    one = ("gpu:a@nvml-counter",)
    a, b = e("a", 200.0, 1.0, one), e("b", 100.0, 2.0, one)
    assert same_meters(a, b) and break_even(a, b).hi == pytest.approx(
        break_even(a, b, same_device=True).hi
    )
    c = e("b", 100.0, 2.0, ("gpu:b@nvml-counter",))
    assert not same_meters(a, c)
    assert break_even(a, c).hi == pytest.approx(break_even(a, c, same_device=False).hi)
    assert break_even(a, c).hi > break_even(a, b).hi  # wider band across devices
    assert not same_meters(e("x", 1, 1, ()), e("y", 1, 1, ()))  # nothing read: never the same


def test_roundtrip_dict_keeps_every_field_and_a_bare_dict_gets_the_defaults() -> None:
    item = CostItem("t", "upstream", "b", 5.0, 0.5, "rapl", True, True, "gpu:a: lost")
    e = EntryCost(
        "a", [item], 0.5, (0.4, 0.6), "main", 2.0, True, (0.45, 0.55), True,
        "why not", "GPU only", "IEC gap", ("gpu:a@nvml-counter", "cpu:0@rapl"),
    )  # fmt: skip
    d = e.to_dict()
    assert d["iec_ci_j"] == [0.4, 0.6] and d["iec_stat_ci_j"] == [0.45, 0.55]
    assert d["devices"] == ["gpu:a@nvml-counter", "cpu:0@rapl"]
    assert d["tec_j"] == 5.0 and d["tec_uncertainty_j"] == 0.5
    assert d["items"][0] == item.to_dict() and CostItem.from_dict(item.to_dict()) == item
    assert EntryCost.from_dict(d) == e
    bare = EntryCost.from_dict({"name": "b"})
    assert bare == EntryCost("b")
    assert bare.to_dict()["iec_ci_j"] is None and bare.to_dict()["iec_stat_ci_j"] is None


def test_by_phase_sums_items_of_a_phase_and_an_unmeasured_one_makes_it_unknown() -> None:
    items = [
        CostItem("a", "train", "x", 2.0),
        CostItem("b", "train", "x", 3.0),
        CostItem("c", "compress", "x", None),
        CostItem("d", "compress", "x", 1.0),
        CostItem("e", "export", "x", 4.0),
    ]
    assert EntryCost("x", items).by_phase() == {"train": 5.0, "compress": None, "export": 4.0}


def test_le_zero_covers_every_sign_case() -> None:
    from energybench.metrics.breakeven import _le_zero

    assert _le_zero(1.0, 1.0) is None  # c0 > 0 and rising: never <= 0
    assert _le_zero(0.0, 1.0) == (0.0, 0.0)  # only at m = 0
    assert _le_zero(-2.0, 1.0) == (0.0, 2.0)
    assert _le_zero(1.0, 0.0) is None and _le_zero(0.0, 0.0) == (0.0, math.inf)
    assert _le_zero(-1.0, 0.0) == (0.0, math.inf)
    assert _le_zero(2.0, -1.0) == (2.0, math.inf) and _le_zero(-2.0, -1.0) == (0.0, math.inf)


def test_energy_split_adds_a_serve_phase_item_to_the_serving_energy() -> None:
    e = EntryCost("x", [CostItem("warm cache", "serve", "x", 10.0)], iec_j=0.5)
    assert energy_split(e, 100) == {"serve": 60.0}


def test_break_even_band_and_note_exactly() -> None:
    common = CostItem("base training", "train", "base", 100.0, 10.0, "nvml-counter", shared=True)
    a = EntryCost(
        "a",
        [common, CostItem("p", "compress", "a", 50.0), CostItem("q", "export", "a", 30.0)],
        iec_j=1.0,
        iec_ci_j=(0.9, 1.1),
        quality=1.0,
    )
    b = EntryCost("b", [common], iec_j=2.0, iec_ci_j=(1.9, 2.1), quality=1.0)
    be = break_even(a, b)
    assert be.kind == "at" and be.mui == pytest.approx(80.0) and be.cheaper_above == "a"
    assert (be.lo, be.hi) == pytest.approx((80 / 1.2, 100.0))
    assert be.note == (
        "'a' is cheaper than 'b' above MUI* = 80 items ('b' below it); "
        "1 cost item(s) common to both cancel in the difference; "
        "TEC uncertainty of 'a' unknown for 2 item(s): taken as exact; "
        "cheaper entry uncertain for MUI in [66.67, 100]"
        " (TEC ± 2σ, IEC 95 % CI, interval arithmetic)"
    )
    # a cost counted twice in a is cancelled once only: the second stays a's own
    twice = EntryCost("a", [common, common], iec_j=1.0, quality=1.0)
    once = EntryCost("b", [common], iec_j=2.0, quality=1.0)
    be = break_even(twice, once)
    assert (be.lo, be.hi) == pytest.approx((80.0, 120.0))
    # a verdict the uncertainties cannot overturn has no band at all
    y = EntryCost("y", [CostItem("t", "train", "y", 10.0)], 2.0, quality=1.0)
    settled = break_even(EntryCost("x", [], 1.0, quality=1.0), y)
    assert settled.kind == "always" and settled.lo is None and settled.hi is None


def test_an_unbounded_break_even_band_is_written_with_infinity() -> None:
    # IEC CIs overlap: the IEC difference may be 0, so no MUI settles which entry is cheaper
    a = EntryCost("a", [CostItem("t", "train", "a", 100.0, 1.0)], 1.0, (0.5, 2.5), quality=1.0)
    b = EntryCost("b", [CostItem("t", "train", "b", 10.0, 1.0)], 2.0, (1.5, 2.5), quality=1.0)
    be = break_even(a, b)
    assert be.kind == "at" and be.hi == math.inf
    assert be.note.endswith(
        f"cheaper entry uncertain for MUI in [{be.lo:.4g}, ∞] (TEC ± 2σ, IEC 95 % CI, "
        "interval arithmetic)"
    )


def test_what_is_missing_is_named_item_by_item() -> None:
    e = EntryCost(
        "x",
        [CostItem("base", "train", "x", 5.0), CostItem("prune", "compress", "x", None)],
        iec_j=None,
    )
    with pytest.raises(IncompleteCostError) as err:
        energy_at(e, 10)
    assert str(err.value) == (
        "entry 'x': TEC not measured (items: prune); IEC not measured; "
        "E(MUI) needs both TEC and IEC"
    )


def test_break_even_names_the_cheaper_entry_for_a_small_iec_difference() -> None:
    # a: no TEC, IEC 2.5 J; b: 100 J TEC, IEC 2.0 J: b pays back above 200 items (d1 = 0.5)
    a = EntryCost("a", [], 2.5, quality=1.0)
    b = EntryCost("b", [CostItem("t", "train", "b", 100.0, 5.0)], 2.0, quality=1.0)
    be = break_even(a, b)
    assert be.kind == "at" and be.mui == pytest.approx(200.0) and be.cheaper_above == "b"
    assert be.note.startswith("'b' is cheaper than 'a' above MUI* = 200 items ('a' below it)")
    # every item has a sigma: no "taken as exact" note for TEC
    assert "TEC uncertainty" not in be.note


def test_break_even_band_with_common_items_twice_and_a_tec_clipped_at_zero() -> None:
    c = CostItem("base", "train", "base", 100.0, 10.0, "nvml-counter", shared=True)
    # a: the base twice (both common) plus its own 10 ± 10 J (range clipped to [0, 30] J)
    a = EntryCost("a", [c, c, CostItem("p", "compress", "a", 10.0, 10.0)], 2.0, quality=1.0)
    b = EntryCost("b", [c, c, CostItem("q", "compress", "b", 100.0, 0.0)], 1.0, quality=1.0)
    be = break_even(a, b)
    assert be.kind == "at" and be.mui == pytest.approx(90.0) and be.cheaper_above == "b"
    assert "2 cost item(s) common to both cancel" in be.note
    # D(m) = TEC_a' − 100 + m, TEC_a' in [0, 30]: D <= 0 possible up to 100, D >= 0 from 70
    assert (be.lo, be.hi) == pytest.approx((70.0, 100.0))


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: CostItem("t", "train", "x", -1.0), "CostItem 't': energy_j must be a finite"),
        (lambda: CostItem("t", "train", "x", 1.0, -0.5), "CostItem 't': uncertainty_j must be"),
        (lambda: EntryCost("x", iec_j=-2.0), "entry 'x': iec_j must be a finite energy >= 0 J"),
        (lambda: EntryCost("x", iec_j=1.0, iec_ci_j=(-1.0, 2.0)), "entry 'x': iec_ci_j low must"),
        (
            lambda: EntryCost("x", iec_j=1.0, iec_ci_j=(0.5, math.inf)),
            "entry 'x': iec_ci_j high must be a finite energy >= 0 J or None, got inf",
        ),
        (
            lambda: EntryCost("x", iec_j=1.0, iec_ci_j=(2.0, 1.0)),
            r"entry 'x': iec_ci_j low > high: \(2.0, 1.0\)",
        ),
    ],
)
def test_bad_cost_figures_are_refused_naming_the_field(make, message) -> None:
    with pytest.raises(ValueError, match="^" + message):
        make()
