"""Ranking entries by greenness G at one usage intensity or by the suite score; entries that
cannot be ranked fairly are listed last, each with its reason.

Ranks carry their uncertainty. Each ranked entry's figure has an interval
(:func:`~energybench.metrics.greenness.greenness_interval`: TEC ± 2σ and IEC's 95 % CI, by
interval arithmetic; for S, the weighted geometric mean of those ends). ``rank_lo``/``rank_hi``
are the best and worst rank the intervals allow: 1 + the number of entries certainly greener,
and the number of entries (itself included) whose interval reaches its lower end. Entries whose
intervals overlap, directly or through a chain, share a ``tie_group`` (1 = the group holding the
greenest entry); the point ``rank`` orders within it but is not settled by the measurement.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

from energybench.metrics.costs import EntryCost
from energybench.metrics.greenness import (
    IntensityLike,
    check_mui,
    check_tau,
    energy_at,
    greenness,
    greenness_interval,
    score_interval,
    suite_score,
    undefined_reason,
    usage_intensities,
)


@dataclass(frozen=True)
class RankRow:
    """One row of a ranking.

    ``rank``: 1 = greenest; ties share a rank (1, 1, 3); None when unranked, with ``reason``.
    ``metric``: "greenness" (``value`` = G at ``mui``) or "score" (``value`` = suite score S).
    ``energy_j``: E at ``mui`` (J) for a greenness ranking, None for a suite score.
    ``value_lo``/``value_hi``: the interval of ``value``; ``rank_lo``/``rank_hi``: the best and
    worst rank it allows; ``tie_group``: entries whose intervals overlap share one (module doc).
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
    value_lo: float | None = None
    value_hi: float | None = None
    rank_lo: int | None = None
    rank_hi: int | None = None
    tie_group: int | None = None

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
    tau = check_tau(tau)
    metric: Literal["greenness", "score"] = "greenness" if mui is not None else "score"
    pairs = usage_intensities(intensities) if intensities is not None else None
    if mui is not None:
        mui = check_mui(mui)

    scored: list[tuple[float, int, EntryCost]] = []
    unranked: list[RankRow] = []
    for idx, e in enumerate(entries):
        reasons = _policy_reasons(e, allow_estimates=allow_estimates, allow_shared=allow_shared)
        undefined = undefined_reason(e, tau)
        if undefined is not None:
            reasons.append(f"G undefined: {undefined}")
        value = None
        if undefined is None:
            value = greenness(e, mui, tau) if mui is not None else suite_score(e, pairs, tau)  # type: ignore[arg-type]
        implausible = _implausible(e, value, mui)
        if implausible:
            reasons += implausible
            value = value if value is None or math.isfinite(value) else None
        if reasons:
            row = _row(e, None, value, metric, mui, "; ".join(reasons))
            band = _band(e, mui, pairs, tau) if value is not None else None
            if band is not None:  # shown (and compared between runs), never ranked
                row = replace(row, value_lo=band[0], value_hi=band[1])
            unranked.append(row)
        else:
            assert value is not None
            scored.append((value, idx, e))

    return _ranked_rows(scored, metric, mui, pairs, tau) + unranked


def _policy_reasons(e: EntryCost, *, allow_estimates: bool, allow_shared: bool) -> list[str]:
    """Why ``e`` is not ranked whatever its G: energy gaps, its own ``unranked_reason``,
    estimates (unless allowed), a shared device (unless allowed)."""
    reasons = []
    if e.gaps:
        reasons.append("energy incomplete, never summed as if whole: " + "; ".join(e.gaps))
    if e.unranked_reason:
        reasons.append(e.unranked_reason)
    if e.has_estimates and not allow_estimates:
        reasons.append("figures are estimates, not measurements (allow_estimates=True ranks)")
    if e.is_shared and not allow_shared:
        reasons.append(
            "measured on a shared device (MIG or another process): its energy is not the "
            "entry's alone (allow_shared_devices ranks it)"
        )
    return reasons


def _ranked_rows(
    scored: list[tuple[float, int, EntryCost]],
    metric: Literal["greenness", "score"],
    mui: float | None,
    pairs: list[tuple[float, float]] | None,
    tau: float,
) -> list[RankRow]:
    """The ranked rows, best first (ties in input order, sharing the rank of the first), each
    with its uncertainty band, the ranks that band allows and its tie group."""
    scored.sort(key=lambda t: (-t[0], t[1]))
    bands = [_band(e, mui, pairs, tau) or (v, v) for v, _, e in scored]
    groups = tie_groups(bands)
    rows: list[RankRow] = []
    prev: float | None = None
    current = 0
    for pos, (value, _, e) in enumerate(scored, start=1):
        if value != prev:
            current, prev = pos, value
        lo, hi = bands[pos - 1]
        row = _row(e, current, value, metric, mui, None)
        rows.append(
            replace(
                row,
                value_lo=lo,
                value_hi=hi,
                rank_lo=1 + sum(1 for b in bands if b[0] > hi),
                rank_hi=sum(1 for b in bands if b[1] >= lo),
                tie_group=groups[pos - 1],
            )
        )
    return rows


def _band(
    e: EntryCost, mui: float | None, pairs: list[tuple[float, float]] | None, tau: float
) -> tuple[float, float] | None:
    """The interval of G at ``mui`` (or of S over ``pairs``); None when undefined."""
    if mui is not None:
        return greenness_interval(e, mui, tau)
    assert pairs is not None
    return score_interval(e, pairs, tau)


def tie_groups(bands: Sequence[tuple[float, float]]) -> list[int]:
    """Tie group per interval (``bands`` in ranked order, best first): intervals that overlap,
    directly or through a chain, share a group; groups are numbered 1, 2, ... best first.

    Since each point value lies in its own interval, a group is a run of adjacent entries.
    """
    parent = list(range(len(bands)))

    def root(i: int) -> int:
        while parent[i] != i:
            i = parent[i]
        return i

    for i, (lo_i, hi_i) in enumerate(bands):
        for j in range(i + 1, len(bands)):
            lo_j, hi_j = bands[j]
            if lo_i <= hi_j and lo_j <= hi_i:
                parent[root(j)] = root(i)
    numbers: dict[int, int] = {}
    return [numbers.setdefault(root(i), len(numbers) + 1) for i in range(len(bands))]


def _implausible(e: EntryCost, value: float | None, mui: float | None) -> list[str]:
    """Why ``e``'s figures cannot be ranked although G is defined: serving is never free (an
    IEC <= 0 J per item is a damaged or hand-edited record), and a non-finite G or score says
    nothing (at MUI = 0 with TEC = 0 it is infinite by definition and ranked)."""
    out = []
    if e.iec_j is not None and not (math.isfinite(e.iec_j) and e.iec_j > 0):
        out.append(f"IEC = {e.iec_j:g} J per item is not a plausible measurement")
    if value is not None and not math.isfinite(value) and mui != 0:
        out.append(f"the value {value:g} is not finite, so it cannot be compared")
    return out


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
