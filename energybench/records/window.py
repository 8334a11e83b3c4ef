"""A measurement window: the one record from a meter to the report.

A meter returns one :class:`DeviceEnergy` per device; :class:`~energybench.meters.base.
EnergyMonitor` closes a :class:`Window` around them; the trial, the phase record and the
store keep that same object, and a run read back gets the same type. A window's sums (total,
measured-only, estimated, their uncertainties, kinds, gaps) are functions of its devices,
computed where they are read; the store writes them beside the devices for readers of the
JSON, and on read checks each one that does not depend on the meter table against the
devices (a figure that disagrees is refused, never shown). Whether a figure is an estimate is
the meter table's answer alone (:func:`energybench.meters.plugins.is_estimated_source`).

A leaf module: the standard library, pydantic, the record base and the meter table.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from pydantic import (
    ModelWrapValidatorHandler,
    SerializerFunctionWrapHandler,
    model_serializer,
    model_validator,
)

from energybench.meters.plugins import is_estimated_source
from energybench.records.record import Record

#: Window flags set by :class:`~energybench.meters.base.EnergyMonitor` (``Window.flags``).
#: Flags that name a device carry it after a colon, e.g. ``"incomplete:gpu:GPU-1234..."``.
FLAG_SHORT_WINDOW = "short-window"  # shorter than a meter's update period: figure unreliable
FLAG_BELOW_MIN_WINDOW = "below-min-window"  # shorter than the configured minimum (noisy)
FLAG_CHANNELS_DISAGREE = "channels-disagree"  # NVML counter vs integrated power, per device
FLAG_INCOMPLETE = "incomplete"  # a device could not be measured for the whole window
FLAG_METER_ERROR = "meter-error"  # a meter raised in end(); its devices are missing
FLAG_ESTIMATE = "estimate"  # at least one charged figure comes from a power model, not a meter
FLAG_SHARED_DEVICE = "shared-device"  # a charged GPU was in MIG mode or ran another process
FLAG_SHARING_NOT_CHECKED = "sharing-not-checked"  # a charged GPU's other processes unknown
FLAG_SIMULATED = "simulated"  # a figure comes from a simulated device (``--simulate``)


@dataclass
class DeviceEnergy:
    """Energy of one device over one window: what a meter returns and what the store reads
    back (one type, declared once). ``energy_j`` is None when it could not be measured.

    ``source`` is the provenance label a meter declared (``"nvml-counter"``, ``"estimate"``,
    a plug-in's own): whether it is an estimate is the meter table's answer
    (:attr:`is_estimate`). ``charged`` is False for a device that was seen during the window
    but is not used by the work measured (another entry's GPU): it is recorded, never summed.
    ``shared`` marks a GPU in MIG mode or running another process's work (its energy is not the
    run's alone). ``constant_power`` marks a power *model* without a load term (codecarbon's
    RAM): its static/dynamic split is not applicable. ``cuda_position`` is the torch index of a
    GPU; ``cuda_positions`` every torch index a record covers where it is more than one (a GB200
    module: two GPUs, one Grace). ``sharing_checked`` is False where other processes' work on
    the GPU could not be checked (process list unreadable, or pids unmatchable in a
    container): not shared, with the reason in ``issues``. ``cpu_side`` marks a superchip
    module charged to CPU-only windows (``meters.base._charged``).
    """

    device: str  # stable id: "gpu:<uuid>", "cpu:package-0", "dram:0", "cpu:estimate", ...
    kind: str  # "gpu" | "module" (GH200/GB200: GPU + CPU + memory) | "cpu" | "dram" | "ram"
    name: str  # human name: "NVIDIA H100 80GB HBM3", "package-0", ...
    source: str  # a meter's ``Source`` label (meters pass the ``Source`` itself)
    energy_j: float | None
    uncertainty_j: float | None = None  # absolute, ~1 sigma
    mean_power_w: float | None = None
    peak_power_w: float | None = None
    samples: int = 0
    idle_power_w: float | None = None
    static_j: float | None = None  # idle power x duration
    dynamic_j: float | None = None  # gross - static
    complete: bool = True
    issues: list[str] = field(default_factory=list)
    cross_check: dict[str, Any] | None = None  # e.g. {"integrated_j":..,"rel_diff":..,"flag":..}
    charged: bool = True
    shared: bool = False
    simulated: bool = False
    constant_power: bool = False
    cuda_position: int | None = None
    cuda_positions: list[int] = field(default_factory=list)
    sharing_checked: bool = True
    cpu_side: bool = True

    @property
    def is_estimate(self) -> bool:
        """Whether this figure comes from a power model rather than a meter (the meter table
        decides: :func:`energybench.meters.plugins.is_estimated_source`)."""
        return is_estimated_source(self.source)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["source"] = str(self.source)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DeviceEnergy:
        """The record from its JSON object (keys it does not declare are ignored)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


#: the figures a window derives from its devices, in the order they are written
DERIVED = (
    "energy_j",
    "uncertainty_j",
    "measured_energy_j",
    "measured_uncertainty_j",
    "estimated_energy_j",
    "measured_kinds",
    "estimated_kinds",
    "sources",
    "is_estimate",
    "is_shared",
    "is_simulated",
    "complete",
    "gaps",
)
#: derived figures that do not depend on the meter table: a stored one must match the devices
#: (the others are recomputed with the reader's table, so a plug-in meter's declared
#: estimated source reads as an estimate in every run, whenever it was written)
CHECKED = ("energy_j", "uncertainty_j", "sources", "is_shared", "is_simulated", "complete", "gaps")
#: the layout of a window a meter closed
_LAYOUT = ("name", "start_unix_s", "duration_s", *DERIVED, "flags", "devices")


class Window(Record):
    """One closed measurement window: energy per device with its provenance, and the sums.

    The sums are taken over the *charged* devices (others were only seen) and are None rather
    than partial: a device without a figure or with an incomplete one, or a failed meter,
    leaves the sum unknown (:meth:`gaps` says why).
    """

    duration_s: float
    devices: list[DeviceEnergy] = []
    name: str | None = None
    start_unix_s: float | None = None
    flags: list[str] = []  # "short-window", "channels-disagree:<device>", ...

    @model_validator(mode="wrap")
    @classmethod
    def _keep_order(cls, data: Any, handler: ModelWrapValidatorHandler[Any]) -> Any:
        """Stored sums are not kept: each is checked against the devices (where the meter
        table does not decide it) and then recomputed on every read."""
        if not isinstance(data, dict):
            return handler(data)
        w = handler({k: v for k, v in data.items() if k not in DERIVED})
        w.__pydantic_private__["_order"] = tuple(data)  # as in Record
        for key in CHECKED:
            if key in data and not _same(data[key], w.derived(key)):
                raise ValueError(
                    f"{key} is {data[key]!r} but the window's devices give {w.derived(key)!r}"
                )
        return w

    @model_serializer(mode="wrap")
    def _in_order(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """The stored fields and the sums: in the file's layout for a window read back (only
        the sums it had), else in the layout of a closed window."""
        out = handler(self)
        stored = [k for k in self._order if k in DERIVED]
        out.update((k, self.derived(k)) for k in stored or DERIVED)
        layout = self._order if stored else _LAYOUT
        return {**{k: out[k] for k in layout if k in out}, **out}

    def derived(self, key: str) -> Any:
        """The derived figure ``key`` (one of :data:`DERIVED`)."""
        return self.gaps() if key == "gaps" else getattr(self, key)

    @property
    def charged(self) -> list[DeviceEnergy]:
        """Devices this window is charged for (others were only seen)."""
        return [d for d in self.devices if d.charged]

    def gaps(self, estimate: bool | None = None) -> list[str]:
        """Why the charged figures (all: None; meters only: False; estimates only: True) do not
        cover the whole window: a device with no figure, a figure flagged incomplete, a meter
        that failed (its devices are missing). Empty when the sum is whole."""
        out = []
        for d in self.charged:
            if estimate is not None and d.is_estimate != estimate:
                continue
            why = "; ".join(d.issues[:2]) or "no reason recorded"
            if d.energy_j is None:
                out.append(f"{d.device}: no figure ({why})")
            elif not d.complete:
                out.append(f"{d.device}: figure covers part of the window only ({why})")
        out += [f for f in self.flags if f.startswith(FLAG_METER_ERROR + ":")]
        return out

    def _sum(self, estimate: bool | None) -> float | None:
        """Sum over the charged devices selected by ``estimate``; None when there is none or when
        one of them has no figure or an incomplete one (see :meth:`gaps`): a partial sum is
        never reported as if whole."""
        vals = [
            d.energy_j
            for d in self.charged
            if d.energy_j is not None and (estimate is None or d.is_estimate == estimate)
        ]
        if not vals or self.gaps(estimate):
            return None
        return sum(vals)

    def _rss(self, estimate: bool | None) -> float | None:
        vals = [
            d.uncertainty_j
            for d in self.charged
            if d.uncertainty_j is not None
            and d.energy_j is not None
            and (estimate is None or d.is_estimate == estimate)
        ]
        if not vals or self.gaps(estimate):
            return None
        return sum(v * v for v in vals) ** 0.5

    @property
    def energy_j(self) -> float | None:
        """Sum over charged devices, measured and estimated; None if none or any has a gap."""
        return self._sum(None)

    @property
    def uncertainty_j(self) -> float | None:
        """Root sum of squares of the charged devices' ~1 sigma (None as :attr:`energy_j`)."""
        return self._rss(None)

    @property
    def measured_energy_j(self) -> float | None:
        """Sum over charged devices read from a meter (never an estimate); None if none or any
        has a gap (see :meth:`gaps`)."""
        return self._sum(False)

    @property
    def measured_uncertainty_j(self) -> float | None:
        return self._rss(False)

    @property
    def estimated_energy_j(self) -> float | None:
        """Sum over charged devices whose figure is a power model; None if none."""
        return self._sum(True)

    @property
    def measured_kinds(self) -> list[str]:
        """Kinds of the charged devices that were measured ("gpu", "cpu", "module", ...)."""
        return sorted(
            {d.kind for d in self.charged if not d.is_estimate and d.energy_j is not None}
        )

    @property
    def estimated_kinds(self) -> list[str]:
        return sorted({d.kind for d in self.charged if d.is_estimate and d.energy_j is not None})

    @property
    def sources(self) -> list[str]:
        return sorted({str(d.source) for d in self.charged})

    @property
    def is_estimate(self) -> bool:
        """True when any charged joule in :attr:`energy_j` comes from a power model."""
        return any(d.is_estimate and d.energy_j is not None for d in self.charged)

    @property
    def is_shared(self) -> bool:
        """True when a charged device was shared (MIG, another process)."""
        return any(d.shared for d in self.charged)

    @property
    def is_simulated(self) -> bool:
        return any(d.simulated for d in self.devices)

    @property
    def complete(self) -> bool:
        return all(d.complete for d in self.charged)


def _same(stored: Any, now: Any) -> bool:
    """Whether a stored derived figure equals the recomputed one (sums to float rounding)."""
    number = (int, float)
    if isinstance(stored, number) and isinstance(now, float) and not isinstance(stored, bool):
        both_nan = math.isnan(stored) and math.isnan(now)
        return both_nan or math.isclose(stored, now, rel_tol=1e-9, abs_tol=1e-12)
    return bool(stored == now)
