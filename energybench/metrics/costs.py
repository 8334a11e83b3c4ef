"""The costs of one suite entry, as the full-cycle metric sees them: every pre-deployment
:class:`CostItem` it depends on (TEC is their sum) and its per-item inference energy (IEC).

Plain records, in joules: built by the report from the run store, never measured here.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any


class IncompleteCostError(ValueError):
    """A figure needed for the computation (TEC or IEC) was not measured (is None)."""


def _check_energy(name: str, value: float | None) -> None:
    if value is None:
        return
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite energy >= 0 J or None, got {value!r}")


@dataclass(frozen=True)
class CostItem:
    """One pre-deployment cost an entry depends on.

    ``phase``: "train" | "compress" | "finetune" | "distill" | "upstream" | ... (free text).
    ``origin``: the entry that paid for it (the entry itself, or the base / teacher it inherits).
    ``energy_j``: energy in J, None when it could not be measured.
    ``uncertainty_j``: absolute, ~1 sigma, in J (None when unknown).
    ``source``: provenance ("nvml-counter", "rapl", "estimate", ...).
    ``shared``: True when another entry paid this cost and it is counted fully here as well.
    ``gap``: why the figure is missing or covers part of its window only (then ``energy_j`` is
    None: a partial sum is never counted as if whole).
    """

    label: str
    phase: str
    origin: str
    energy_j: float | None
    uncertainty_j: float | None = None
    source: str = ""
    is_estimate: bool = False
    shared: bool = False
    gap: str | None = None

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
    ``iec_gap``: why IEC is missing because its windows had gaps (a charged device without a
    figure or with an incomplete one). ``devices``: the charged devices (``id@source``) the
    entry's own figures (its distinct TEC items and IEC) were read from; two entries with the
    same non-empty set share their meters' gain error (break-even cancels it).
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
    iec_gap: str | None = None
    devices: tuple[str, ...] = ()

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
    def gaps(self) -> list[str]:
        """Why a figure of the entry is missing or partial (items and IEC), in words."""
        out = [f"{i.label}: {i.gap}" for i in self.items if i.gap]
        if self.iec_gap:
            out.append(f"IEC: {self.iec_gap}")
        return out

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
        d["devices"] = list(self.devices)
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
            iec_gap=d.get("iec_gap"),
            devices=tuple(d.get("devices", ())),
        )
