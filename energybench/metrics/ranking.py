"""Ranking entries by greenness G at one usage intensity or by the suite score; entries that
cannot be ranked fairly are listed last, each with its reason.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

from energybench.metrics.costs import EntryCost
from energybench.metrics.greenness import (
    IntensityLike,
    check_mui,
    check_tau,
    energy_at,
    greenness,
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
    tau = check_tau(tau)
    metric: Literal["greenness", "score"] = "greenness" if mui is not None else "score"
    pairs = usage_intensities(intensities) if intensities is not None else None
    if mui is not None:
        mui = check_mui(mui)

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
