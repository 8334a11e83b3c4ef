"""Meter plug-ins: one module with a ``build`` and a ``probe`` function, one line in :data:`METERS`.

A meter plug-in declares its ``role``: ``"gpu"`` meters the GPUs a run uses, ``"host"`` the CPU
and memory of the machine. :func:`energybench.meters.factory.build_monitor` chooses from this
table alone: meters named in ``energy.meters`` are forced (one that cannot work stops the run
before its folder exists); ``auto`` runs the first GPU meter that works when the run uses a GPU,
and the first host meter, in registration order, that works. A plug-in also declares the
provenance labels its records carry (``sources``), each marked measured or estimated: every
energy figure names one (:class:`Source`), and only these are accepted.

Adding a meter::

    # energybench/meters/toy.py
    def build(ctx: MeterContext) -> Meter: ...          # raise MeterUnavailableError(reason, fix)
    def probe(ctx: MeterContext) -> MeterStatus: ...

    METERS.register(MeterPlugin("toy", "host", "energybench.meters.toy:build",
                                "energybench.meters.toy:probe", sources={"toy": MEASURED}))

``build``/``probe`` may be lazy ``"module:attr"`` strings: this module imports nothing heavy and
nothing else of energybench's meters, so the suite schema can validate meter names cheaply.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from energybench.errors import UserError
from energybench.plugins.registry import Registry, resolve

Role = Literal["gpu", "host"]
MEASURED, ESTIMATED = False, True  # a source's ``estimate`` flag
AUTO = "auto"  # the meter name that lets the table choose


_INTERNED: dict[str, Source] = {}


class Source(str):
    """How an energy figure was obtained: a label some meter plug-in declares (or
    ``unmeasured``). ``Source("rapl")`` refuses a label nobody declared."""

    __slots__ = ()

    def __new__(cls, label: str) -> Source:
        if label not in METERS.sources:
            known = ", ".join(sorted(METERS.sources))
            raise ValueError(f"unknown energy source '{label}' (known: {known})")
        if label not in _INTERNED:  # one object per label: ``is`` compares like an enum
            _INTERNED[label] = super().__new__(cls, label)
        return _INTERNED[label]

    @property
    def value(self) -> str:
        return str(self)

    @property
    def is_estimate(self) -> bool:
        """Whether figures with this label come from a power model, not a meter."""
        return is_estimated_source(self)


def is_estimated_source(label: str) -> bool:
    """Whether figures labelled ``label`` come from a power model: the meter table's answer, the
    one place this is decided (writers, the store's records and every report table ask here).
    A label no installed meter declares (a run read where its plug-in is not installed) counts
    as an estimate: a figure of unknown provenance is never shown as a measurement."""
    return METERS.sources.get(str(label), ESTIMATED)


class MeterUnavailableError(UserError, RuntimeError):
    """A meter cannot work here: raised by a plug-in's ``build`` (``reason`` why, ``fix`` what
    to do; ``auto`` then tries the next meter) and by the factory for a meter that
    ``energy.meters`` names (bad input, exit 2)."""

    def __init__(self, reason: str, fix: str = "") -> None:
        super().__init__(f"{reason}. {fix}" if fix else reason)
        self.reason, self.fix = reason, fix


@dataclass(frozen=True)
class MeterPlugin:
    """One meter: its name in ``energy.meters``, its role, how to build and probe it, the
    source labels its records carry (label -> :data:`ESTIMATED` or :data:`MEASURED`), and
    whether ``auto`` may choose it."""

    name: str
    role: Role
    build: Callable[..., Any] | str  # (MeterContext) -> Meter
    probe: Callable[..., Any] | str  # (MeterContext) -> MeterStatus
    sources: Mapping[str, bool] = field(default_factory=dict)
    auto: bool = True
    help: str = ""

    # The table imports nothing of the meters (the suite schema reads it): ``ctx`` is a
    # :class:`~energybench.meters.context.MeterContext`, the results a
    # :class:`~energybench.meters.base.Meter` and a :class:`~energybench.meters.base.MeterStatus`.
    def make(self, ctx: Any) -> Any:
        """The meter (:class:`MeterUnavailableError` when it cannot work here)."""
        return resolve(self.build)(ctx)

    def status(self, ctx: Any) -> Any:
        """What this meter sees here, and why not and how to fix it when it does not work."""
        return resolve(self.probe)(ctx)


class MeterRegistry(Registry[MeterPlugin]):
    """The meter table: plug-ins in registration order (the order ``auto`` tries them), and the
    source labels they declare (label -> estimated?)."""

    def __init__(self) -> None:
        super().__init__("meter", MeterPlugin)
        self.sources: dict[str, bool] = {"unmeasured": MEASURED}

    def register(
        self, name: str | MeterPlugin, target: MeterPlugin | str | None = None, help: str = ""
    ) -> None:
        """Register a :class:`MeterPlugin` (``register(plugin)``); its sources must agree with
        those already declared (a label is measured or estimated, never both)."""
        plugin = name if isinstance(name, MeterPlugin) else target
        if not isinstance(plugin, MeterPlugin):
            raise TypeError("a meter registers as a MeterPlugin: METERS.register(MeterPlugin(...))")
        if plugin.name == AUTO:
            raise ValueError(f"meter '{AUTO}' is registered twice: the name lets the table choose")
        for label, estimate in plugin.sources.items():
            if self.sources.get(label, estimate) != estimate:
                raise ValueError(f"source '{label}' is declared measured and estimated")
        super().register(plugin.name, plugin, help or plugin.help)
        self.sources.update(plugin.sources)

    def unregister(self, name: str) -> None:
        """Forget meter ``name`` and the sources only it declared (tests clean up with this)."""
        plugin = self.get(name) if name in self.ordered() else None
        super().unregister(name)
        if plugin is not None:
            kept = {s for p in self.values() for s in p.sources} | {"unmeasured"}
            for label in set(plugin.sources) - kept:
                del self.sources[label]

    def names(self) -> list[str]:
        """Every name ``energy.meters`` accepts: ``auto`` and each plug-in, in order."""
        return [AUTO, *self.ordered()]

    def role(self, role: Role) -> list[MeterPlugin]:
        return [p for p in self.values() if p.role == role]


METERS = MeterRegistry()
METERS.register(
    MeterPlugin(
        "nvml",
        "gpu",
        "energybench.meters.nvml_plugin:build",
        "energybench.meters.nvml_plugin:probe",
        sources={"nvml-counter": MEASURED, "nvml-power-integrated": MEASURED},
        help="NVIDIA GPUs: the energy counter, or sampled power integrated where there is none",
    )
)
METERS.register(
    MeterPlugin(
        "rapl",
        "host",
        "energybench.meters.rapl:build",
        "energybench.meters.rapl:probe",
        sources={"rapl": MEASURED},
        help="CPU package and DRAM energy counters (Linux powercap)",
    )
)
METERS.register(
    MeterPlugin(
        "estimate",
        "host",
        "energybench.meters.estimate:build",
        "energybench.meters.estimate:probe",
        sources={"estimate": ESTIMATED},
        help="codecarbon's CPU/RAM power model: an estimate, never a measurement",
    )
)
