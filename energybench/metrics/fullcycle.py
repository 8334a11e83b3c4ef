"""Full-cycle energy metrics: TEC, IEC, E(MUI), greenness G, suite score, break-even, ranking.

What it is for: turning each entry's costs (read from the run store by someone else) into the
figures the report shows, after Li et al., "Full-Cycle Energy Consumption Benchmark for Low-Carbon
Computer Vision" (arXiv 2108.13465):

- TEC (total energy before deployment, J): every :class:`CostItem` an entry depends on, i.e. its
  own training and compression *and* shared costs paid by another entry (an inherited base
  model's training, a distillation teacher). Shared costs are counted fully in every variant that
  depends on them and flagged ``shared=True`` so the report can show them as such.
- IEC (energy of one inference, J per item: one image or one video frame) under a named serving
  scenario and batch size.
- MUI (model usage intensity): items served over the model's life (a count, >= 0).
- E(MUI) = TEC + MUI * IEC (J); G(MUI) = Q^tau / E(MUI); the suite score ``SCORE_FORMULA``.

What it must not do: measure, read or write files, import torch, or invent numbers. A figure
that is not known is ``None``, never a silent zero. Carbon is derived elsewhere
(``energybench.metrics.carbon``); this module works in joules only.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Protocol

__all__ = [
    "BREAK_EVEN_FORMULA",
    "ENERGY_FORMULA",
    "GREENNESS_FORMULA",
    "SCORE_FORMULA",
    "BreakEven",
    "BreakEvenKind",
    "CostItem",
    "EntryCost",
    "IncompleteCostError",
    "RankRow",
    "break_even",
    "energy_at",
    "energy_split",
    "greenness",
    "rank",
    "suite_score",
]

ENERGY_FORMULA = "E(MUI) = TEC + MUI · IEC"
GREENNESS_FORMULA = "G(MUI) = Q^τ / (TEC + MUI · IEC)"
SCORE_FORMULA = "S = exp( Σ_i w_i · ln G(MUI_i) / Σ_i w_i ),  G(MUI) = Q^τ / (TEC + MUI · IEC)"
BREAK_EVEN_FORMULA = "MUI* = (TEC_b − TEC_a) / (IEC_a − IEC_b)"

BreakEvenKind = Literal["at", "never", "always", "identical"]


class IncompleteCostError(ValueError):
    """A figure needed for the computation (TEC or IEC) was not measured (is None)."""


class _Intensity(Protocol):
    """Anything with ``mui`` and ``weight`` (e.g. the suite schema's ``UsageIntensity``)."""

    mui: float
    weight: float


IntensityLike = tuple[float, float] | _Intensity


def _check_energy(name: str, value: float | None) -> None:
    if value is None:
        return
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite energy >= 0 J or None, got {value!r}")


# --------------------------------------------------------------------------- records
@dataclass(frozen=True)
class CostItem:
    """One pre-deployment cost an entry depends on.

    ``phase``: "train" | "compress" | "finetune" | "distill" | "upstream" | ... (free text).
    ``origin``: the entry that paid for it (the entry itself, or the base / teacher it inherits).
    ``energy_j``: energy in J, None when it could not be measured.
    ``uncertainty_j``: absolute, ~1 sigma, in J (None when unknown).
    ``source``: provenance ("nvml-counter", "rapl", "estimate", ...).
    ``shared``: True when another entry paid this cost and it is counted fully here as well.
    """

    label: str
    phase: str
    origin: str
    energy_j: float | None
    uncertainty_j: float | None = None
    source: str = ""
    is_estimate: bool = False
    shared: bool = False

    def __post_init__(self) -> None:
        _check_energy(f"CostItem {self.label!r}: energy_j", self.energy_j)
        _check_energy(f"CostItem {self.label!r}: uncertainty_j", self.uncertainty_j)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CostItem:
        return cls(**d)


@dataclass(frozen=True)
class EntryCost:
    """Everything the full-cycle metric needs about one suite entry.

    ``items``: the pre-deployment costs (TEC is their sum; an entry with no items, e.g. bicubic,
    has TEC = 0 J). ``iec_j``: J per item under ``iec_scenario``; ``iec_ci_j``: its 95 % CI (J).
    ``quality``: Q, the suite's quality figure (must be > 0 for G to be defined when tau > 0).
    ``is_estimate``: the entry's figures come from a power model, not a measurement (also
    implied by any estimated item, see :attr:`has_estimates`).
    ``iec_stat_ci_j``: the 95 % CI of IEC from trial-to-trial spread alone (without the meter's
    own gain error, which cancels between entries measured on the same device).
    ``is_shared``: a figure comes from a device shared with other work (MIG, another process).
    ``unranked_reason``: why the caller already knows the entry cannot be ranked (e.g. its IEC
    scenario differs from the others'); ``scope``: what the energy covers, in words.
    """

    name: str
    items: list[CostItem] = field(default_factory=list)
    iec_j: float | None = None
    iec_ci_j: tuple[float, float] | None = None
    iec_scenario: str | None = None
    quality: float | None = None
    is_estimate: bool = False
    iec_stat_ci_j: tuple[float, float] | None = None
    is_shared: bool = False
    unranked_reason: str | None = None
    scope: str | None = None

    def __post_init__(self) -> None:
        _check_energy(f"entry {self.name!r}: iec_j", self.iec_j)
        if self.iec_ci_j is not None:
            lo, hi = self.iec_ci_j
            _check_energy(f"entry {self.name!r}: iec_ci_j low", lo)
            _check_energy(f"entry {self.name!r}: iec_ci_j high", hi)
            if lo > hi:
                raise ValueError(f"entry {self.name!r}: iec_ci_j low > high: {self.iec_ci_j}")
        if self.quality is not None and not math.isfinite(self.quality):
            raise ValueError(f"entry {self.name!r}: quality must be finite or None")

    @property
    def tec_j(self) -> float | None:
        """TEC in J: sum of all items, shared ones included; None if any item is unmeasured."""
        total = 0.0
        for item in self.items:
            if item.energy_j is None:
                return None
            total += item.energy_j
        return total

    @property
    def tec_uncertainty_j(self) -> float | None:
        """Root-sum-square of the items' uncertainties (J, ~1 sigma).

        0.0 for an entry with no items; None when TEC is unknown or no item reports an
        uncertainty. Items without one contribute nothing (so the figure is then a lower bound).
        """
        if self.tec_j is None:
            return None
        if not self.items:
            return 0.0
        known = [i.uncertainty_j for i in self.items if i.uncertainty_j is not None]
        if not known:
            return None
        return math.sqrt(sum(u * u for u in known))

    @property
    def shared_j(self) -> float | None:
        """Part of TEC paid by other entries (J); None if a shared item is unmeasured."""
        vals = [i.energy_j for i in self.items if i.shared]
        return None if any(v is None for v in vals) else float(sum(v for v in vals if v))

    @property
    def has_estimates(self) -> bool:
        """True when the entry or any of its items is an estimate rather than a measurement."""
        return self.is_estimate or any(i.is_estimate for i in self.items)

    def by_phase(self) -> dict[str, float | None]:
        """TEC split by phase (J, insertion order); a phase with an unmeasured item is None."""
        out: dict[str, float | None] = {}
        for item in self.items:
            prev = out.get(item.phase, 0.0)
            out[item.phase] = (
                None if prev is None or item.energy_j is None else prev + item.energy_j
            )
        return out

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["iec_ci_j"] = list(self.iec_ci_j) if self.iec_ci_j is not None else None
        d["iec_stat_ci_j"] = list(self.iec_stat_ci_j) if self.iec_stat_ci_j is not None else None
        d["tec_j"] = self.tec_j
        d["tec_uncertainty_j"] = self.tec_uncertainty_j
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EntryCost:
        ci = d.get("iec_ci_j")
        stat = d.get("iec_stat_ci_j")
        return cls(
            name=d["name"],
            items=[CostItem.from_dict(x) for x in d.get("items", [])],
            iec_j=d.get("iec_j"),
            iec_ci_j=(float(ci[0]), float(ci[1])) if ci is not None else None,
            iec_scenario=d.get("iec_scenario"),
            quality=d.get("quality"),
            is_estimate=bool(d.get("is_estimate", False)),
            iec_stat_ci_j=(float(stat[0]), float(stat[1])) if stat is not None else None,
            is_shared=bool(d.get("is_shared", False)),
            unranked_reason=d.get("unranked_reason"),
            scope=d.get("scope"),
        )


# --------------------------------------------------------------------------- E and G
def _check_mui(mui: float) -> float:
    mui = float(mui)
    if not math.isfinite(mui) or mui < 0:
        raise ValueError(f"MUI must be a finite count of items >= 0, got {mui!r}")
    return mui


def _check_tau(tau: float) -> float:
    tau = float(tau)
    if not math.isfinite(tau) or tau < 0:
        raise ValueError(f"tau must be finite and >= 0, got {tau!r}")
    return tau


def _require(entry: EntryCost) -> tuple[float, float]:
    tec, iec = entry.tec_j, entry.iec_j
    if tec is None or iec is None:
        raise IncompleteCostError(
            f"entry {entry.name!r}: {_missing(entry)}; E(MUI) needs both TEC and IEC"
        )
    return tec, iec


def _missing(entry: EntryCost) -> str:
    parts = []
    if entry.tec_j is None:
        unmeasured = [i.label for i in entry.items if i.energy_j is None]
        parts.append(f"TEC not measured (items: {', '.join(unmeasured)})")
    if entry.iec_j is None:
        parts.append("IEC not measured")
    return "; ".join(parts)


def energy_at(entry: EntryCost, mui: float) -> float:
    """E(MUI) = TEC + MUI · IEC in J, for ``mui`` items served.

    Raises :class:`IncompleteCostError` when TEC or IEC is unknown.
    """
    mui = _check_mui(mui)
    tec, iec = _require(entry)
    return tec + mui * iec


def energy_split(entry: EntryCost, mui: float) -> dict[str, float]:
    """E(MUI) split into TEC phases plus ``"serve"`` = MUI · IEC (J); sums to :func:`energy_at`."""
    mui = _check_mui(mui)
    _, iec = _require(entry)
    out = {k: float(v) for k, v in entry.by_phase().items() if v is not None}
    out["serve"] = out.get("serve", 0.0) + mui * iec
    return out


def _undefined_reason(entry: EntryCost, tau: float) -> str | None:
    """Why G is undefined for ``entry`` (None when it is defined)."""
    reasons = []
    if entry.tec_j is None or entry.iec_j is None:
        reasons.append(_missing(entry))
    if tau != 0:
        if entry.quality is None:
            reasons.append("quality Q not measured")
        elif entry.quality <= 0:
            reasons.append(f"quality Q = {entry.quality:g} <= 0, so Q^τ/E is undefined")
    return "; ".join(reasons) or None


def greenness(entry: EntryCost, mui: float, tau: float = 1.0) -> float | None:
    """G(MUI) = Q^τ / (TEC + MUI · IEC), in quality units per J (higher is greener).

    Q must be positive: a quality figure that can be <= 0 (e.g. PSNR gain over bicubic, which is
    exactly 0 for bicubic itself and negative for a model worse than it) makes G undefined, and
    this returns None; :func:`rank` lists such entries last, unranked, with the reason. With
    ``tau == 0`` quality is ignored (G = 1/E) and need not be known. Also None when TEC or IEC is
    unknown. E == 0 (MUI = 0 and TEC = 0) gives ``math.inf``.
    """
    mui = _check_mui(mui)
    tau = _check_tau(tau)
    if _undefined_reason(entry, tau) is not None:
        return None
    e = energy_at(entry, mui)
    q_term = 1.0 if tau == 0 else float(entry.quality) ** tau  # type: ignore[arg-type]
    if e == 0:
        return math.inf
    return q_term / e


def _intensities(intensities: Iterable[IntensityLike]) -> list[tuple[float, float]]:
    out = []
    for x in intensities:
        mui, w = (x.mui, x.weight) if hasattr(x, "mui") else x  # type: ignore[union-attr,misc]
        mui = _check_mui(mui)
        w = float(w)
        if not math.isfinite(w) or w < 0:
            raise ValueError(f"usage-intensity weight must be finite and >= 0, got {w!r}")
        if w > 0:
            out.append((mui, w))
    if not out:
        raise ValueError("suite score needs at least one usage intensity with a weight > 0")
    return out


def suite_score(
    entry: EntryCost, intensities: Iterable[IntensityLike], tau: float = 1.0
) -> float | None:
    """Suite score S: the weighted geometric mean of G over the suite's usage intensities.

    ``S = exp( Σ_i w_i · ln G(MUI_i) / Σ_i w_i )`` (``SCORE_FORMULA``), in the units of G.
    ``intensities``: ``(mui, weight)`` pairs, or objects with ``.mui`` and ``.weight``; weights
    are relative (normalised here), zero-weight intensities are skipped.

    Why geometric: the suite's MUIs span decades (1e3 .. 1e7 items), so G at the smallest MUI is
    orders of magnitude larger than at the largest, and an arithmetic mean would be decided by
    the smallest MUI alone. In the geometric mean each MUI contributes the *ratio* between
    entries, so the ratio of two scores is the weighted geometric mean of their per-MUI ratios:
    it is independent of the energy unit and of multiplying all energies by a constant (ranking
    is scale-free), and equals Q^τ over the weighted geometric mean of E, so τ keeps its meaning.

    None when G is undefined at any intensity (see :func:`greenness`).
    """
    pairs = _intensities(intensities)
    tau = _check_tau(tau)
    if _undefined_reason(entry, tau) is not None:
        return None
    wsum = sum(w for _, w in pairs)
    acc = 0.0
    for mui, w in pairs:
        g = greenness(entry, mui, tau)
        assert g is not None
        if g == math.inf:
            return math.inf
        if g == 0.0:  # underflow: E or 1/Q^τ beyond float range
            return 0.0
        acc += (w / wsum) * math.log(g)
    return math.exp(acc)


# --------------------------------------------------------------------------- break-even
@dataclass(frozen=True)
class BreakEven:
    """Where E_a(MUI) and E_b(MUI) cross (``BREAK_EVEN_FORMULA``); MUI in items.

    ``kind``: "at" (a single crossing at ``mui`` > 0), "always" (E_a <= E_b at every MUI >= 0),
    "never" (E_a >= E_b at every MUI >= 0, the lines not identical), "identical" (same TEC and
    IEC). ``mui`` is None unless kind is "at".
    ``lo``/``hi``: the MUI range over which the sign of E_a − E_b is not settled by the
    uncertainties (interval arithmetic, see :func:`break_even`); ``hi`` may be ``math.inf``;
    both None when the verdict holds at every MUI despite the uncertainties.
    ``cheaper_above``: the entry that is cheaper (or equal) for MUI beyond the crossing, or at
    every MUI for kinds "always"/"never"; None for "identical".
    """

    mui: float | None
    kind: BreakEvenKind
    lo: float | None
    hi: float | None
    note: str
    cheaper_above: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _le_zero(c0: float, c1: float) -> tuple[float, float] | None:
    """The set {m >= 0 : c0 + c1·m <= 0} as a closed interval (hi may be inf), or None."""
    if c1 > 0:
        r = -c0 / c1
        return (0.0, r) if r >= 0 else None
    if c1 == 0:
        return (0.0, math.inf) if c0 <= 0 else None
    r = -c0 / c1
    return (max(r, 0.0), math.inf)


def _item_key(item: CostItem) -> tuple[str, str, str, float | None]:
    """Identity of a cost across entries: who paid it, for what, and how much."""
    return (item.origin, item.phase, item.label, item.energy_j)


def _fmt(x: float) -> str:
    return "∞" if x == math.inf else f"{x:.4g}"


def break_even(
    a: EntryCost, b: EntryCost, coverage_k: float = 2.0, *, same_device: bool = False
) -> BreakEven:
    """Break-even usage intensity of ``a`` against ``b``: MUI* = (TEC_b − TEC_a)/(IEC_a − IEC_b).

    Typical use: ``a`` a compressed variant (more TEC, less IEC), ``b`` its base; beyond MUI*
    the variant has paid back its compression energy.

    Uncertainty, by interval arithmetic (our choice; conservative: widths add linearly rather
    than in quadrature, no first-order propagation):

    - Costs common to both entries (same origin, phase, label and energy, e.g. the base
      training a variant inherits) are one figure: they cancel in TEC_a − TEC_b and add no width.
    - Each entry's remaining TEC lies in TEC ± ``coverage_k``·σ, σ the root-sum-square of those
      items' uncertainties (default k = 2, ~95 %, to match the IEC CIs), clipped at 0 J.
    - Each IEC lies in its 95 % CI (the point value when no CI is stored; the note says so).
      With ``same_device`` (both entries measured on the same device) the CI from trial spread
      alone is used where known: a sensor gain error scales both IECs and both TECs alike, and
      MUI* = ΔTEC/ΔIEC does not change when all energies are multiplied by one factor.

    E_a − E_b at MUI m then lies between two straight lines, and [lo, hi] is the set of m >= 0
    where that band contains 0, i.e. where the cheaper entry is not settled. For kind "at" it
    contains ``mui`` and equals the interval quotient ΔTEC/ΔIEC when both intervals keep their
    sign; ``hi`` is inf when the IEC difference interval straddles 0, ``lo`` is 0 when the TEC
    difference interval does.

    Raises :class:`IncompleteCostError` when TEC or IEC of either entry is unknown.
    """
    ta, ia = _require(a)
    tb, ib = _require(b)
    notes: list[str] = []

    # Point verdict from D(m) = E_a(m) − E_b(m) = d0 + d1·m.
    d0, d1 = ta - tb, ia - ib
    mui: float | None = None
    if d0 == 0 and d1 == 0:
        kind: BreakEvenKind = "identical"
        cheaper: str | None = None
        notes.append(f"{a.name!r} and {b.name!r} have the same TEC and IEC")
    elif d0 <= 0 and d1 <= 0:
        kind, cheaper = "always", a.name
        notes.append(f"{a.name!r} costs no more than {b.name!r} at every MUI")
    elif d0 >= 0 and d1 >= 0:
        kind, cheaper = "never", b.name
        notes.append(f"{a.name!r} is never cheaper than {b.name!r}")
    else:
        kind = "at"
        mui = (tb - ta) / (ia - ib)
        cheaper = a.name if d1 < 0 else b.name
        other = b.name if cheaper == a.name else a.name
        notes.append(
            f"{cheaper!r} is cheaper than {other!r} above MUI* = {_fmt(mui)} items"
            f" ({other!r} below it)"
        )

    # Uncertainty band of D(m). Costs common to both entries (the same item, e.g. the base
    # training a variant inherits) are one figure: they cancel in E_a − E_b, so only each
    # entry's distinct items widen the band.
    common = Counter(map(_item_key, a.items)) & Counter(map(_item_key, b.items))
    if common:
        notes.append(f"{sum(common.values())} cost item(s) common to both cancel in the difference")

    def tec_range(e: EntryCost) -> tuple[float, float]:
        """Range of the entry's distinct (non-common) TEC, J."""
        left = common.copy()
        own, us, n_own = 0.0, [], 0
        for item in e.items:
            key = _item_key(item)
            if left[key] > 0:
                left[key] -= 1
                continue
            n_own += 1
            own += float(item.energy_j)  # type: ignore[arg-type]  # _require checked it
            if item.uncertainty_j is not None:
                us.append(item.uncertainty_j)
        if n_own and len(us) < n_own:
            notes.append(
                f"TEC uncertainty of {e.name!r} unknown for {n_own - len(us)} item(s):"
                " taken as exact"
            )
        u = math.sqrt(sum(x * x for x in us))
        return max(own - coverage_k * u, 0.0), own + coverage_k * u

    def iec_range(e: EntryCost, i: float) -> tuple[float, float]:
        ci = e.iec_stat_ci_j if same_device and e.iec_stat_ci_j is not None else e.iec_ci_j
        if ci is None:
            notes.append(f"IEC CI of {e.name!r} unknown: taken as exact")
            return i, i
        return min(ci[0], i), max(ci[1], i)

    if same_device:
        notes.append("same device: the meter's gain error cancels in MUI* (trial-spread CIs)")

    ta_lo, ta_hi = tec_range(a)
    tb_lo, tb_hi = tec_range(b)
    ia_lo, ia_hi = iec_range(a, ia)
    ib_lo, ib_hi = iec_range(b, ib)
    below = _le_zero(ta_lo - tb_hi, ia_lo - ib_hi)  # where D can be <= 0
    above = _le_zero(tb_lo - ta_hi, ib_lo - ia_hi)  # where D can be >= 0
    lo: float | None = None
    hi: float | None = None
    if below is not None and above is not None:
        l_, h_ = max(below[0], above[0]), min(below[1], above[1])
        if l_ <= h_:
            lo, hi = l_, h_
    if lo is not None and hi is not None:
        notes.append(
            f"cheaper entry uncertain for MUI in [{_fmt(lo)}, {_fmt(hi)}]"
            f" (TEC ± {coverage_k:g}σ, IEC 95 % CI, interval arithmetic)"
        )
    return BreakEven(mui=mui, kind=kind, lo=lo, hi=hi, note="; ".join(notes), cheaper_above=cheaper)


# --------------------------------------------------------------------------- ranking
@dataclass(frozen=True)
class RankRow:
    """One row of a ranking.

    ``rank``: 1 = greenest; ties share a rank (1, 1, 3); None when unranked, with ``reason``.
    ``metric``: "greenness" (``value`` = G at ``mui``) or "score" (``value`` = suite score S).
    ``energy_j``: E at ``mui`` (J) for a greenness ranking, None for a suite score.
    """

    name: str
    rank: int | None
    value: float | None
    metric: Literal["greenness", "score"]
    mui: float | None
    energy_j: float | None
    tec_j: float | None
    iec_j: float | None
    quality: float | None
    is_estimate: bool
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def rank(
    entries: Sequence[EntryCost],
    mui: float | None = None,
    intensities: Iterable[IntensityLike] | None = None,
    *,
    tau: float = 1.0,
    allow_estimates: bool = False,
    allow_shared: bool = False,
) -> list[RankRow]:
    """Rank entries by G at ``mui`` or by the suite score over ``intensities`` (give exactly one).

    Higher is better. Entries whose figures are estimates (:attr:`EntryCost.has_estimates`) are
    listed unranked unless ``allow_estimates``; entries whose G is undefined (Q <= 0 or missing,
    TEC or IEC unmeasured) are listed unranked too, as are entries measured on a shared device
    (unless ``allow_shared``) and entries with an ``unranked_reason``. Unranked rows come last,
    in input order, each with its reason; ranked rows are sorted by value, ties in input order.
    """
    if (mui is None) == (intensities is None):
        raise ValueError("rank() needs exactly one of mui= or intensities=")
    tau = _check_tau(tau)
    metric: Literal["greenness", "score"] = "greenness" if mui is not None else "score"
    pairs = _intensities(intensities) if intensities is not None else None
    if mui is not None:
        mui = _check_mui(mui)

    scored: list[tuple[float, int, EntryCost]] = []
    unranked: list[RankRow] = []
    for idx, e in enumerate(entries):
        reasons = []
        if e.unranked_reason:
            reasons.append(e.unranked_reason)
        if e.has_estimates and not allow_estimates:
            reasons.append("figures are estimates, not measurements (allow_estimates=True ranks)")
        if e.is_shared and not allow_shared:
            reasons.append(
                "measured on a shared device (MIG or another process): its energy is not the "
                "entry's alone (allow_shared_devices ranks it)"
            )
        undefined = _undefined_reason(e, tau)
        if undefined is not None:
            reasons.append(f"G undefined: {undefined}")
        value = None
        if undefined is None:
            value = greenness(e, mui, tau) if mui is not None else suite_score(e, pairs, tau)  # type: ignore[arg-type]
        if reasons:
            unranked.append(_row(e, None, value, metric, mui, "; ".join(reasons)))
        else:
            assert value is not None
            scored.append((value, idx, e))

    scored.sort(key=lambda t: (-t[0], t[1]))
    rows: list[RankRow] = []
    prev: float | None = None
    current = 0
    for pos, (value, _, e) in enumerate(scored, start=1):
        if value != prev:
            current, prev = pos, value
        rows.append(_row(e, current, value, metric, mui, None))
    return rows + unranked


def _row(
    e: EntryCost,
    rank_: int | None,
    value: float | None,
    metric: Literal["greenness", "score"],
    mui: float | None,
    reason: str | None,
) -> RankRow:
    energy = None
    if mui is not None and e.tec_j is not None and e.iec_j is not None:
        energy = energy_at(e, mui)
    return RankRow(
        name=e.name,
        rank=rank_,
        value=value,
        metric=metric,
        mui=mui,
        energy_j=energy,
        tec_j=e.tec_j,
        iec_j=e.iec_j,
        quality=e.quality,
        is_estimate=e.has_estimates,
        reason=reason,
    )
