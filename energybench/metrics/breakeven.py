"""Break-even usage intensity of two entries: the MUI at which their E(MUI) lines cross, with the
range over which the measurement uncertainties leave the verdict open (interval arithmetic).
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any, Literal

from energybench.metrics.costs import CostItem, EntryCost
from energybench.metrics.greenness import require_tec_iec

BREAK_EVEN_FORMULA = "MUI* = (TEC_b − TEC_a) / (IEC_a − IEC_b)"

BreakEvenKind = Literal["at", "never", "always", "identical"]


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


def same_meters(a: EntryCost, b: EntryCost) -> bool:
    """Whether both entries' own figures were read from the same devices with the same meters
    (so one gain error scales both): equal, non-empty :attr:`EntryCost.devices`."""
    return bool(a.devices) and set(a.devices) == set(b.devices)


def _fmt(x: float) -> str:
    return "∞" if x == math.inf else f"{x:.4g}"


def _verdict(
    a: EntryCost, b: EntryCost, d0: float, d1: float, notes: list[str]
) -> tuple[BreakEvenKind, str | None, float | None]:
    """The point verdict from D(m) = E_a(m) − E_b(m) = d0 + d1·m: its kind, the entry cheaper
    above MUI*, and MUI* itself (kind "at" only)."""
    if d0 == 0 and d1 == 0:
        notes.append(f"{a.name!r} and {b.name!r} have the same TEC and IEC")
        return "identical", None, None
    if d0 <= 0 and d1 <= 0:
        notes.append(f"{a.name!r} costs no more than {b.name!r} at every MUI")
        return "always", a.name, None
    if d0 >= 0 and d1 >= 0:
        notes.append(f"{a.name!r} is never cheaper than {b.name!r}")
        return "never", b.name, None
    mui = -d0 / d1
    cheaper = a.name if d1 < 0 else b.name
    other = b.name if cheaper == a.name else a.name
    notes.append(
        f"{cheaper!r} is cheaper than {other!r} above MUI* = {_fmt(mui)} items ({other!r} below it)"
    )
    return "at", cheaper, mui


def _tec_range(
    e: EntryCost, common: Counter[Any], coverage_k: float, notes: list[str]
) -> tuple[float, float]:
    """Range of the entry's distinct (non-common) TEC, J: ± ``coverage_k``·σ, clipped at 0."""
    left = common.copy()
    own, us, n_own = 0.0, [], 0
    for item in e.items:
        key = _item_key(item)
        if left[key] > 0:
            left[key] -= 1
            continue
        n_own += 1
        own += float(item.energy_j)  # type: ignore[arg-type]  # require_tec_iec checked it
        if item.uncertainty_j is not None:
            us.append(item.uncertainty_j)
    if n_own and len(us) < n_own:
        notes.append(
            f"TEC uncertainty of {e.name!r} unknown for {n_own - len(us)} item(s): taken as exact"
        )
    u = math.sqrt(sum(x * x for x in us))
    return max(own - coverage_k * u, 0.0), own + coverage_k * u


def _iec_range(e: EntryCost, i: float, same_device: bool, notes: list[str]) -> tuple[float, float]:
    """Range of the entry's IEC, J: its 95 % CI (trial spread alone on one device)."""
    ci = e.iec_stat_ci_j if same_device and e.iec_stat_ci_j is not None else e.iec_ci_j
    if ci is None:
        notes.append(f"IEC CI of {e.name!r} unknown: taken as exact")
        return i, i
    return min(ci[0], i), max(ci[1], i)


def break_even(
    a: EntryCost, b: EntryCost, coverage_k: float = 2.0, *, same_device: bool | None = None
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
      MUI* = ΔTEC/ΔIEC does not change when all energies are multiplied by one factor. By
      default (None) it is decided from the devices actually read: both entries' own figures
      come from the same non-empty set of devices and sources (:attr:`EntryCost.devices`),
      never from where the suite placed them.

    E_a − E_b at MUI m then lies between two straight lines, and [lo, hi] is the set of m >= 0
    where that band contains 0, i.e. where the cheaper entry is not settled. For kind "at" it
    contains ``mui`` and equals the interval quotient ΔTEC/ΔIEC when both intervals keep their
    sign; ``hi`` is inf when the IEC difference interval straddles 0, ``lo`` is 0 when the TEC
    difference interval does.

    Raises :class:`IncompleteCostError` when TEC or IEC of either entry is unknown.
    """
    ta, ia = require_tec_iec(a)
    tb, ib = require_tec_iec(b)
    notes: list[str] = []
    if same_device is None:
        same_device = same_meters(a, b)
    kind, cheaper, mui = _verdict(a, b, ta - tb, ia - ib, notes)
    # Uncertainty band of D(m). Costs common to both entries (the same item, e.g. the base
    # training a variant inherits) are one figure: they cancel in E_a − E_b, so only each
    # entry's distinct items widen the band.
    common = Counter(map(_item_key, a.items)) & Counter(map(_item_key, b.items))
    if common:
        notes.append(f"{sum(common.values())} cost item(s) common to both cancel in the difference")
    if same_device:
        notes.append("same device: the meter's gain error cancels in MUI* (trial-spread CIs)")
    ta_lo, ta_hi = _tec_range(a, common, coverage_k, notes)
    tb_lo, tb_hi = _tec_range(b, common, coverage_k, notes)
    ia_lo, ia_hi = _iec_range(a, ia, same_device, notes)
    ib_lo, ib_hi = _iec_range(b, ib, same_device, notes)
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
