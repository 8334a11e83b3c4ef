"""Test doubles that are not NVML: a virtual clock, a fake RAPL sysfs tree, a fake ``/proc``.

Simulated GPUs are :mod:`energybench.meters.sim.fakenvml` (a fake ``pynvml`` module behind the real
adapter). :class:`ManualClock` lets tests run on virtual time; its wall and monotonic clocks
differ (and the wall clock can jump), so code that mixes them fails. :class:`FakeRaplTree` sits
behind :class:`~energybench.meters.rapl.RaplFs`; :class:`FakeProcView` behind
:class:`~energybench.meters.pidns.ProcView` (a container or not). Nothing here touches real
hardware; it is not a meter and must never be picked by ``meters: [auto]``.
"""

from __future__ import annotations

from pathlib import Path

from energybench.meters.pidns import PROC_PID_INIT_INO, ProcView
from energybench.meters.rapl import RaplFs

SIM_START_UNIX_S = 1_700_000_000.0
SIM_START_MONOTONIC_S = 1_000.0


class ManualClock:
    """A virtual clock: :meth:`sleep` advances it instantly.

    :meth:`time` is unix seconds, :meth:`monotonic` another origin (as on a real host);
    :meth:`jump_wall` steps only the wall clock (NTP, DST), which must not change any interval.
    """

    def __init__(
        self, start: float = SIM_START_UNIX_S, monotonic_start: float = SIM_START_MONOTONIC_S
    ) -> None:
        self.t = start
        self.m = monotonic_start

    def time(self) -> float:
        return self.t

    def monotonic(self) -> float:
        return self.m

    def sleep(self, seconds: float) -> None:
        dt = max(seconds, 0.0)
        self.t += dt
        self.m += dt

    advance = sleep

    def jump_wall(self, seconds: float) -> None:
        """Step the wall clock by ``seconds`` (may be negative); monotonic time is unchanged."""
        self.t += seconds


# =============================================================================== RAPL
class FakeRaplTree:
    """Builds a powercap tree under ``root`` (e.g. pytest's ``tmp_path``) and drives it.

    ``add_package(socket)`` creates ``intel-rapl:<socket>`` (package-<socket>) with optional
    ``dram``, ``core`` sub-zones; ``add_energy(zone, joules)`` advances a counter, wrapping at
    its ``max_energy_range_uj`` like the kernel does.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "intel-rapl").mkdir(exist_ok=True)  # the control type, no counter

    def _zone(self, zone: str, name: str, max_range_uj: int, energy_uj: int) -> str:
        d = self.root / zone
        d.mkdir(parents=True, exist_ok=True)
        (d / "name").write_text(f"{name}\n")
        (d / "max_energy_range_uj").write_text(f"{max_range_uj}\n")
        (d / "energy_uj").write_text(f"{energy_uj}\n")
        return zone

    def add_package(
        self,
        socket: int = 0,
        *,
        dram: bool = True,
        core: bool = True,
        max_range_uj: int = 262_143_328_850,
        energy_uj: int = 1_000_000,
    ) -> str:
        zone = self._zone(f"intel-rapl:{socket}", f"package-{socket}", max_range_uj, energy_uj)
        if core:
            self._zone(f"intel-rapl:{socket}:0", "core", max_range_uj, energy_uj)
        if dram:
            self._zone(f"intel-rapl:{socket}:1", "dram", 65_712_999_613, energy_uj)
        return zone

    def add_psys(self) -> str:
        return self._zone("intel-rapl:9", "psys", 262_143_328_850, 5)

    def energy_uj(self, zone: str) -> int:
        return int((self.root / zone / "energy_uj").read_text())

    def set_energy_uj(self, zone: str, value: int) -> None:
        (self.root / zone / "energy_uj").write_text(f"{value}\n")

    def add_energy(self, zone: str, joules: float) -> None:
        rng = int((self.root / zone / "max_energy_range_uj").read_text())
        self.set_energy_uj(zone, (self.energy_uj(zone) + int(round(joules * 1e6))) % rng)


class DeniedRaplFs(RaplFs):
    """A :class:`RaplFs` whose ``energy_uj`` reads raise PermissionError (as for non-root users
    since Linux 5.10), for all zones or those in ``zones``; ``after_reads`` lets that many
    reads succeed first."""

    def __init__(self, root: Path, zones: set[str] | None = None, after_reads: int = 0) -> None:
        super().__init__(root)
        self.zones_denied, self.after_reads, self.reads = zones, after_reads, 0

    def read(self, zone: str, file: str) -> str:
        if file == "energy_uj" and (self.zones_denied is None or zone in self.zones_denied):
            self.reads += 1
            if self.reads > self.after_reads:
                raise PermissionError(13, "Permission denied", str(self.root / zone / file))
        return super().read(zone, file)


# =============================================================================== /proc
class FakeProcView(ProcView):
    """A ``/proc`` for :mod:`energybench.meters.pidns`: ``NSpid`` lists per pid (``"self"``
    too) and PID-namespace inodes per pid; anything else is unreadable (None)."""

    def __init__(
        self, nspids: dict[str, list[int]], ns_inodes: dict[str, int] | None = None
    ) -> None:
        super().__init__()
        self.nspids, self.ns_inodes = nspids, dict(ns_inodes or {})

    def status(self, pid: str) -> str | None:
        if pid not in self.nspids:
            return None
        ids = "\t".join(map(str, self.nspids[pid]))
        return f"Name:\tpython\nPid:\t{self.nspids[pid][-1]}\nNSpid:\t{ids}\n"

    def pid_ns_inode(self, pid: str) -> int | None:
        return self.ns_inodes.get(pid)


#: A PID namespace inode other than the initial one (a container's).
CONTAINER_NS_INODE = 4026532511


def bare_metal_proc(pid: int) -> FakeProcView:
    """``/proc`` of a process ``pid`` in the initial PID namespace (no container)."""
    return FakeProcView({"self": [pid]}, {"self": PROC_PID_INIT_INO, "1": PROC_PID_INIT_INO})


def docker_proc(pid: int) -> FakeProcView:
    """``/proc`` inside Docker: the container mounts its own ``/proc``, so ``NSpid`` shows one
    pid and the host pid is not visible; only the namespace link says it is a container."""
    return FakeProcView({"self": [pid]}, {"self": CONTAINER_NS_INODE, "1": CONTAINER_NS_INODE})
