"""CPU package and DRAM energy from RAPL counters in ``/sys/class/powercap``.

Reads ``intel-rapl:N`` (package-N, one per socket) and their ``dram`` sub-zones; ``core``,
``uncore`` (inside the package) and ``psys`` (overlaps everything) are skipped to avoid double
counting, as are ``intel-rapl-mmio`` mirrors of the package counter. Counters wrap at
``max_energy_range_uj``: a light poll thread keeps an unwrapped total so that windows longer than
one wrap (minutes at high power) stay right. The root path goes through :class:`RaplFs` so tests
can use a fake tree (:mod:`energybench.meters.sim.doubles`). This module only reads sysfs; it must
not change permissions itself, and ``RaplMeter.end`` must not raise.

Uncertainty (~1 sigma, documented per figure): package 5 % — on Haswell and later RAPL is
measured, not modelled, and agrees with external meters to a few percent (Hackenberg et al.,
"An Energy Efficiency Feature Survey of the Intel Haswell Processor", IPDPSW 2015; Khan et al.,
"RAPL in Action", TOMPECS 2018); DRAM 10 % (less validated, platform dependent). Edge effects are
negligible (counters update every ~1 ms).
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from energybench.meters.base import SYSTEM_CLOCK, Clock, DeviceEnergy, Meter, MeterStatus
from energybench.meters.context import MeterContext
from energybench.meters.plugins import MeterUnavailableError, Source
from energybench.meters.sampler import Poller

DEFAULT_ROOT = Path("/sys/class/powercap")
PACKAGE_REL_UNCERTAINTY = 0.05
DRAM_REL_UNCERTAINTY = 0.10
RAPL_UPDATE_PERIOD_S = 0.001
RAPL_PERMISSION_FIX = (
    "RAPL energy counters are readable by root only since Linux 5.10 (CVE-2020-8694). Run as "
    "root, or grant read access until the next reboot with "
    "`sudo chmod -R a+r /sys/class/powercap/intel-rapl` (a udev rule or systemd-tmpfiles entry "
    "makes it permanent). Until then the CPU figure is an estimate."
)
RAPL_MISSING_FIX = (
    "No RAPL zones: this is not Linux on an Intel/AMD x86 CPU, the powercap driver is not "
    "loaded (`sudo modprobe intel_rapl_msr`), or a VM/container hides /sys/class/powercap"
)
RAPL = Source("rapl")
_ZONE = re.compile(r"^intel-rapl:(\d+)(?::(\d+))?$")


class RaplUnavailableError(MeterUnavailableError):
    """RAPL cannot be used; ``reason`` says why and ``fix`` how to make it work."""


class RaplFs:
    """Read access to a powercap tree rooted at ``root`` (the seam that tests replace)."""

    def __init__(self, root: Path | str = DEFAULT_ROOT) -> None:
        self.root = Path(root)

    def exists(self) -> bool:
        return self.root.is_dir()

    def zones(self) -> list[str]:
        """Names of entries directly under the root (``intel-rapl:0``, ``intel-rapl:0:1``, ...)."""
        return sorted(p.name for p in self.root.iterdir())

    def read(self, zone: str, file: str) -> str:
        """Text of ``root/zone/file`` (raises OSError, e.g. PermissionError)."""
        return (self.root / zone / file).read_text().strip()


@dataclass
class RaplDomain:
    """One RAPL zone that is measured. ``max_range_uj`` is the counter range in uJ."""

    zone: str
    name: str
    device: str
    kind: str  # "cpu" | "dram"
    socket: int
    max_range_uj: int

    @property
    def rel_uncertainty(self) -> float:
        return DRAM_REL_UNCERTAINTY if self.kind == "dram" else PACKAGE_REL_UNCERTAINTY


def discover_domains(fs: RaplFs) -> list[RaplDomain]:
    """Package and DRAM domains under ``fs`` whose counters can be read.

    Raises :class:`RaplUnavailableError` (with a fix) when there are none or they are unreadable.
    """
    if not fs.exists():
        raise RaplUnavailableError(f"{fs.root} does not exist", RAPL_MISSING_FIX)
    domains: list[RaplDomain] = []
    for zone in fs.zones():
        m = _ZONE.match(zone)
        if not m:
            continue
        try:
            name = fs.read(zone, "name")
        except OSError:
            name = f"package-{m.group(1)}" if m.group(2) is None else "unknown"
        socket = int(m.group(1))
        if m.group(2) is None and name.startswith("package"):
            kind, device = "cpu", f"cpu:{name}"
        elif m.group(2) is not None and name == "dram":
            kind, device = "dram", f"dram:{socket}"
        else:
            continue  # core, uncore, psys: inside or overlapping the package
        try:
            fs.read(zone, "energy_uj")
            max_range = int(fs.read(zone, "max_energy_range_uj"))
        except PermissionError as exc:
            raise RaplUnavailableError(
                f"cannot read {fs.root / zone}/energy_uj ({exc.strerror or 'permission denied'})",
                RAPL_PERMISSION_FIX,
            ) from exc
        except (OSError, ValueError) as exc:
            raise RaplUnavailableError(
                f"cannot read {fs.root / zone}: {exc}", RAPL_MISSING_FIX
            ) from exc
        domains.append(RaplDomain(zone, name, device, kind, socket, max_range))
    if not domains:
        raise RaplUnavailableError(f"no package RAPL zone under {fs.root}", RAPL_MISSING_FIX)
    return domains


def rapl_status(fs: RaplFs | None = None) -> MeterStatus:
    """What ``energybench meters`` says about RAPL: domains seen, or why not and the fix."""
    fs = fs or RaplFs()
    try:
        domains = discover_domains(fs)
    except RaplUnavailableError as exc:
        fix = f"{exc.fix}. Without RAPL, 'auto' estimates CPU energy (codecarbon model)"
        return MeterStatus("rapl", ok=False, reason=exc.reason, fix=fix)
    return MeterStatus(
        "rapl",
        ok=True,
        details=[
            {
                "device": d.device,
                "zone": d.zone,
                "name": d.name,
                "socket": d.socket,
                "max_energy_range_j": d.max_range_uj / 1e6,
                "root": str(fs.root),
            }
            for d in domains
        ],
    )


def build(ctx: MeterContext) -> RaplMeter:
    """The RAPL plug-in's meter (:class:`RaplUnavailableError` when RAPL is not readable)."""
    return RaplMeter(ctx.rapl_fs, clock=ctx.clock, background=ctx.background)


def probe(ctx: MeterContext) -> MeterStatus:
    """The RAPL plug-in's status: :func:`rapl_status` of the context's powercap tree."""
    return rapl_status(ctx.rapl_fs)


def wrap_delta_uj(before: int, after: int, max_range_uj: int) -> int:
    """Counter delta in uJ allowing one wraparound at ``max_range_uj``."""
    if after >= before:
        return after - before
    return after + max_range_uj - before


@dataclass
class _Acc:
    raw: int | None = None
    total_uj: int = 0
    errors: int = 0
    last_error: str | None = None
    failing: bool = False
    power_w: float | None = None
    last_t: float | None = None


class RaplMeter(Meter):
    """CPU package and DRAM energy per socket from RAPL (source ``rapl``).

    ``poll_s`` is the unwrap poll period (must be well under one wrap: ``max_energy_range_uj``
    at full power is minutes). ``background=False`` reads only at window edges and on
    :meth:`poll` (tests). Construction raises :class:`RaplUnavailableError` if unreadable.
    """

    name = "rapl"

    def __init__(
        self,
        fs: RaplFs | None = None,
        *,
        poll_s: float = 1.0,
        clock: Clock | None = None,
        background: bool = True,
    ) -> None:
        self.fs = fs or RaplFs()
        self.domains = discover_domains(self.fs)
        self.clock: Clock = clock or SYSTEM_CLOCK
        self.background = background
        self._acc = {d.device: _Acc() for d in self.domains}
        self._lock = threading.Lock()
        self._windows: dict[str, tuple[float, dict[str, tuple[int, int]]]] = {}
        self._poller = Poller(self.poll, poll_s, name="energybench-rapl")
        self.poll()

    def poll(self) -> None:
        """Read every counter once and fold it into the unwrapped totals."""
        with self._lock:
            t = self.clock.monotonic()
            for d in self.domains:
                acc = self._acc[d.device]
                try:
                    raw = int(self.fs.read(d.zone, "energy_uj"))
                except (OSError, ValueError) as exc:
                    acc.errors += 1
                    acc.failing = True
                    acc.last_error = f"{type(exc).__name__}: {exc}"
                    continue
                if acc.raw is not None:
                    delta = wrap_delta_uj(acc.raw, raw, d.max_range_uj)
                    acc.total_uj += delta
                    if acc.last_t is not None and t > acc.last_t:
                        acc.power_w = delta / 1e6 / (t - acc.last_t)
                acc.raw, acc.last_t, acc.failing = raw, t, False

    def start(self) -> None:
        if self.background:
            self._poller.start()

    def close(self) -> None:
        self._poller.stop()

    def begin(self, key: str) -> None:
        self.poll()
        with self._lock:
            self._windows[key] = (
                self.clock.monotonic(),
                {dev: (a.total_uj, a.errors) for dev, a in self._acc.items()},
            )

    def end(self, key: str) -> list[DeviceEnergy]:
        try:
            self.poll()
        except Exception:
            pass
        with self._lock:
            t1 = self.clock.monotonic()
            win = self._windows.pop(key, None)
            out = []
            for d in self.domains:
                acc = self._acc[d.device]
                rec = DeviceEnergy(
                    device=d.device,
                    kind=d.kind,
                    name=d.name,
                    source=RAPL,
                    energy_j=None,
                    complete=False,
                )
                if win is None:
                    rec.issues.append(f"window '{key}' was not opened on the RAPL meter")
                    out.append(rec)
                    continue
                t0, start = win
                total0, errors0 = start[d.device]
                energy = (acc.total_uj - total0) / 1e6
                duration = max(t1 - t0, 0.0)
                rec.energy_j = energy
                rec.uncertainty_j = d.rel_uncertainty * energy
                rec.mean_power_w = energy / duration if duration > 0 else None
                rec.complete = acc.errors == errors0
                if not rec.complete:
                    rec.issues.append(
                        f"{acc.errors - errors0} failed read(s) of "
                        f"{self.fs.root / d.zone}/energy_uj in this window ({acc.last_error}): "
                        "energy covers the readable part"
                    )
                out.append(rec)
            return out

    def live_power_w(self) -> float | None:
        vals = [a.power_w for a in self._acc.values() if a.power_w is not None and not a.failing]
        return sum(vals) if vals else None

    def update_period_s(self) -> float | None:
        return RAPL_UPDATE_PERIOD_S

    def describe(self) -> list[dict[str, Any]]:
        return [
            {
                "device": d.device,
                "zone": d.zone,
                "name": d.name,
                "socket": d.socket,
                "max_energy_range_j": d.max_range_uj / 1e6,
                "root": str(self.fs.root),
                "rel_uncertainty": d.rel_uncertainty,
            }
            for d in self.domains
        ]
