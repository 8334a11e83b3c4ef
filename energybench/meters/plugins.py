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

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from energybench.errors import UserError
from energybench.plugins.registry import CURRENT_ORIGIN, UnknownNameError, resolve

if TYPE_CHECKING:
    from energybench.meters.base import Clock, Meter, MeterStatus
    from energybench.suite.energy import EnergySettings

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
class MeterContext:
    """What a plug-in's ``build`` and ``probe`` get.

    ``cuda_devices``: torch positions the run uses (empty: none). ``forced``: the meter is named
    in ``energy.meters`` (``build`` then meters all it can see rather than choosing).
    ``host``: this process meters the host (False for distributed ranks other than local rank
    0). The remaining fields are seams for tests, the benchmark and ``--simulate``: an NVML
    backend, its ``CUDA_VISIBLE_DEVICES``, a powercap tree, a clock, torch's GPU UUIDs, the
    run's own pids, whether the GPUs are simulated, the ``/proc`` view that says whether the
    run is in a PID namespace (:class:`~energybench.meters.pidns.ProcView`), and the CPUs the
    run may use (superchip attribution).
    """

    settings: EnergySettings | None = None
    cuda_devices: Sequence[int] = ()
    trace_dir: Path | None = None
    forced: bool = False
    host: bool = True
    background: bool = True
    probe_s: float = 1.0
    clock: Clock | None = None
    gpu_backend: Any = None
    env: str | None = None
    rapl_fs: Any = None
    torch_uuids: Sequence[str] | None = None
    own_pids: Callable[[], set[int]] | None = None
    simulated: bool = False
    proc: Any = None
    cpu_affinity: Callable[[], frozenset[int] | None] | None = None

    def with_forced(self, forced: bool) -> MeterContext:
        return replace(self, forced=forced)


@dataclass(frozen=True)
class MeterPlugin:
    """One meter: its name in ``energy.meters``, its role, how to build and probe it, the
    source labels its records carry (label -> :data:`ESTIMATED` or :data:`MEASURED`), and
    whether ``auto`` may choose it."""

    name: str
    role: Role
    build: Callable[[MeterContext], Meter] | str
    probe: Callable[[MeterContext], MeterStatus] | str
    sources: Mapping[str, bool] = field(default_factory=dict)
    auto: bool = True
    help: str = ""

    def make(self, ctx: MeterContext) -> Meter:
        """The meter (:class:`MeterUnavailableError` when it cannot work here)."""
        fn: Callable[[MeterContext], Meter] = resolve(self.build)
        return fn(ctx)

    def status(self, ctx: MeterContext) -> MeterStatus:
        """What this meter sees here, and why not and how to fix it when it does not work."""
        fn: Callable[[MeterContext], MeterStatus] = resolve(self.probe)
        return fn(ctx)


class MeterRegistry:
    """The meter table: plug-ins in registration order (the order ``auto`` tries them)."""

    def __init__(self) -> None:
        self._plugins: dict[str, MeterPlugin] = {}
        self.sources: dict[str, bool] = {"unmeasured": MEASURED}
        self.origins: dict[str, str] = {}  # meter -> "energybench" or the plug-in that added it

    def register(self, plugin: MeterPlugin) -> None:
        if plugin.name in self._plugins or plugin.name == AUTO:
            raise ValueError(f"meter '{plugin.name}' is registered twice")
        self.origins[plugin.name] = CURRENT_ORIGIN.get()
        for label, estimate in plugin.sources.items():
            if self.sources.get(label, estimate) != estimate:
                raise ValueError(f"source '{label}' is declared measured and estimated")
        self._plugins[plugin.name] = plugin
        self.sources.update(plugin.sources)

    def unregister(self, name: str) -> None:
        """Forget meter ``name`` and the sources only it declared (tests clean up with this)."""
        plugin = self._plugins.pop(name, None)
        if plugin is not None:
            kept = {s for p in self._plugins.values() for s in p.sources} | {"unmeasured"}
            for label in set(plugin.sources) - kept:
                del self.sources[label]

    def get(self, name: str) -> MeterPlugin:
        if name not in self._plugins:
            raise UnknownNameError("meter", name, self.names())
        return self._plugins[name]

    def names(self) -> list[str]:
        """Every name ``energy.meters`` accepts: ``auto`` and each plug-in."""
        return [AUTO, *self._plugins]

    def role(self, role: Role) -> list[MeterPlugin]:
        return [p for p in self._plugins.values() if p.role == role]


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
