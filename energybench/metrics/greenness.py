"""Full-cycle energy and greenness of one entry: E(MUI) = TEC + MUI · IEC, G(MUI) = Q^τ / E(MUI)
and the suite score S (the weighted geometric mean of G over the suite's usage intensities).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Protocol

from energybench.metrics.costs import EntryCost, IncompleteCostError

ENERGY_FORMULA = "E(MUI) = TEC + MUI · IEC"
GREENNESS_FORMULA = "G(MUI) = Q^τ / (TEC + MUI · IEC)"
SCORE_FORMULA = "S = exp( Σ_i w_i · ln G(MUI_i) / Σ_i w_i ),  G(MUI) = Q^τ / (TEC + MUI · IEC)"


class _Intensity(Protocol):
    """Anything with ``mui`` and ``weight`` (e.g. the suite schema's ``UsageIntensity``)."""

    mui: float
    weight: float


IntensityLike = tuple[float, float] | _Intensity


def check_mui(mui: float) -> float:
    """``mui`` as a float; ``ValueError`` unless it is a finite count of items >= 0."""
    mui = float(mui)
    if not math.isfinite(mui) or mui < 0:
        raise ValueError(f"MUI must be a finite count of items >= 0, got {mui!r}")
    return mui


def check_tau(tau: float) -> float:
    """``tau`` as a float; ``ValueError`` unless it is finite and >= 0."""
    tau = float(tau)
    if not math.isfinite(tau) or tau < 0:
        raise ValueError(f"tau must be finite and >= 0, got {tau!r}")
    return tau


def require_tec_iec(entry: EntryCost) -> tuple[float, float]:
    """(TEC, IEC) of ``entry``; :class:`IncompleteCostError` naming what was not measured."""
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
    mui = check_mui(mui)
    tec, iec = require_tec_iec(entry)
    return tec + mui * iec


def energy_split(entry: EntryCost, mui: float) -> dict[str, float]:
    """E(MUI) split into TEC phases plus ``"serve"`` = MUI · IEC (J); sums to :func:`energy_at`."""
    mui = check_mui(mui)
    _, iec = require_tec_iec(entry)
    out = {k: float(v) for k, v in entry.by_phase().items() if v is not None}
    out["serve"] = out.get("serve", 0.0) + mui * iec
    return out


def undefined_reason(entry: EntryCost, tau: float) -> str | None:
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
    mui = check_mui(mui)
    tau = check_tau(tau)
    if undefined_reason(entry, tau) is not None:
        return None
    e = energy_at(entry, mui)
    q_term = 1.0 if tau == 0 else float(entry.quality) ** tau  # type: ignore[arg-type]
    if e == 0:
        return math.inf
    return q_term / e


def usage_intensities(intensities: Iterable[IntensityLike]) -> list[tuple[float, float]]:
    """The (MUI, weight) pairs with a weight > 0; ``ValueError`` for bad values or none left."""
    out = []
    for x in intensities:
        mui, w = x if isinstance(x, tuple) else (x.mui, x.weight)
        mui = check_mui(mui)
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
    pairs = usage_intensities(intensities)
    tau = check_tau(tau)
    if undefined_reason(entry, tau) is not None:
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


def energy_interval(entry: EntryCost, mui: float, coverage_k: float = 2.0) -> tuple[float, float]:
    """The range of E(MUI) (J) the uncertainties allow: TEC ± ``coverage_k``·σ (clipped at 0 J;
    exact when no item reports σ) plus MUI times IEC's 95 % CI (its point value without a CI).

    Interval arithmetic, like the break-even band; the point value always lies inside.
    Raises :class:`IncompleteCostError` when TEC or IEC is unknown.
    """
    mui = check_mui(mui)
    tec, iec = require_tec_iec(entry)
    u = coverage_k * (entry.tec_uncertainty_j or 0.0)
    lo_i, hi_i = entry.iec_ci_j if entry.iec_ci_j is not None else (iec, iec)
    lo_i, hi_i = min(lo_i, iec), max(hi_i, iec)
    return max(tec - u, 0.0) + mui * lo_i, tec + u + mui * hi_i


def greenness_interval(
    entry: EntryCost, mui: float, tau: float = 1.0, coverage_k: float = 2.0
) -> tuple[float, float] | None:
    """The range of G(MUI) over :func:`energy_interval` (Q taken as exact); None when G is
    undefined. An E range reaching 0 J gives an upper end of ``math.inf``."""
    tau = check_tau(tau)
    if undefined_reason(entry, tau) is not None:
        return None
    e_lo, e_hi = energy_interval(entry, mui, coverage_k)
    q_term = 1.0 if tau == 0 else float(entry.quality) ** tau  # type: ignore[arg-type]
    return (q_term / e_hi if e_hi > 0 else math.inf), (q_term / e_lo if e_lo > 0 else math.inf)


def score_interval(
    entry: EntryCost, intensities: Iterable[IntensityLike], tau: float = 1.0
) -> tuple[float, float] | None:
    """The range of the suite score S: the weighted geometric mean of the ends of
    :func:`greenness_interval` (S is increasing in every G); None when S is undefined."""
    pairs = usage_intensities(intensities)
    ends = [greenness_interval(entry, mui, tau) for mui, _ in pairs]
    if any(e is None for e in ends):
        return None
    wsum = sum(w for _, w in pairs)

    def mean(values: list[float]) -> float:
        if any(v == math.inf for v in values):
            return math.inf
        if any(v == 0.0 for v in values):
            return 0.0
        logs = [(w / wsum) * math.log(v) for (_, w), v in zip(pairs, values, strict=True)]
        return math.exp(sum(logs))

    return mean([e[0] for e in ends if e]), mean([e[1] for e in ends if e])
