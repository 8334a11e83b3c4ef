"""``--simulate PROFILE``: named simulated GPU servers built on the fake NVML module.

Each profile is a :class:`~energybench.meters.sim.fakenvml.FakeNvml` whose GPUs behave like a real
part (sensor periods, power-channel nature, power scope, MIG, other processes). The run itself
executes on the CPU, so simulated GPU power follows a **load model**: every 10 ms cell of device
time draws ``idle W + (busy W - idle W) x u``, where ``u`` is this process's CPU utilisation over
the time since the previous reading (``time.process_time`` delta / ``time.monotonic`` delta /
threads in use, clamped to [0, 1]). Cells in the past never change, so counters never go
backwards; the sensors then sample that power exactly as on the real part.

Figures from a simulated GPU are marked ``simulated`` and are not measurements of anything. This
module must not touch real hardware or pretend a profile is the host's GPU.
"""

from __future__ import annotations

import math
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from energybench.errors import UserError
from energybench.meters.base import SYSTEM_CLOCK, Clock
from energybench.meters.pidns import ProcView
from energybench.meters.sim.doubles import bare_metal_proc, docker_proc
from energybench.meters.sim.fakenvml import FakeGpu, FakeNvml, PowerSource, PowerTrace

#: Profile name -> short description (for ``--help`` and errors).
SIMULATE_PROFILES: dict[str, str] = {
    "h100": "one H100 SXM: counter every 100 ms, instant power sees 25 ms of each 100 ms, "
    "nvmlDeviceGetPowerUsage a 1 s average",
    "a100": "one A100 SXM (GA100) on a driver without the instant-power field: "
    "nvmlDeviceGetPowerUsage is instantaneous",
    "2xh100": "two H100 SXM GPUs",
    "gh200": "one GH200 superchip: module scope only (GPU + Grace CPU + memory), GPU-scope "
    "power queries fail",
    "h100-mig": "one H100 in MIG mode (energy shared by every instance)",
    "h100-shared": "one H100 also running another process's compute work",
    "h100-container": "one H100 seen from a Docker container: NVML reports the run's host pid, "
    "which cannot be matched (sharing not checked)",
    "4xgh200": "four GH200 superchips (one Grace each, 72 CPUs per module); the run may use "
    "every CPU",
    "gb200": "one GB200 superchip: two GPUs sharing one Grace CPU; module figures cover both",
}

#: GPUs each profile simulates (1 where not listed).
_GPU_COUNT = {"2xh100": 2, "4xgh200": 4, "gb200": 2}
#: CPUs of one Grace (GH200/GB200).
GRACE_CPUS = 72

#: Load-model cell length in s (divides every sensor period used by the profiles).
CELL_S = 0.01


class UnknownProfileError(UserError, ValueError):
    """``--simulate`` names no profile; ``str()`` lists the profiles."""


def _check(profile: str) -> str:
    if profile not in SIMULATE_PROFILES:
        names = "\n".join(f"  {k}: {v}" for k, v in SIMULATE_PROFILES.items())
        raise UnknownProfileError(f"unknown --simulate profile {profile!r}; profiles:\n{names}")
    return profile


def simulated_gpu_count(profile: str) -> int:
    """How many GPUs ``profile`` simulates (the runner uses positions ``0..n-1``)."""
    return _GPU_COUNT.get(_check(profile), 1)


@dataclass(frozen=True)
class SimHost:
    """What the simulated server's host says about the run: its ``/proc`` (a container or
    not) and the CPUs it may use (None: whatever the real machine says)."""

    proc: ProcView
    cpus: frozenset[int] | None = None


def simulated_host(profile: str) -> SimHost:
    """The host side of ``profile``: bare metal, except ``h100-container`` (Docker's own
    ``/proc``); the superchip profiles let the run use every Grace CPU (unpinned)."""
    me = os.getpid()
    if _check(profile) == "h100-container":
        return SimHost(docker_proc(me))
    cpus = {"4xgh200": 4 * GRACE_CPUS, "gb200": GRACE_CPUS, "gh200": GRACE_CPUS}.get(profile)
    return SimHost(bare_metal_proc(me), frozenset(range(cpus)) if cpus else None)


class BusyGpus:
    """Which simulated GPU positions the run's work is on now (None: every GPU).

    The monitor sets it from :meth:`~energybench.meters.base.EnergyMonitor.charging`, so that
    the load model drives only the GPUs the running entry uses; the others stay at idle power,
    as an unused GPU would on a real server.
    """

    def __init__(self) -> None:
        self.positions: frozenset[int] | None = None

    def set(self, positions: frozenset[int] | None) -> None:
        self.positions = positions

    def busy(self, index: int) -> bool:
        return self.positions is None or index in self.positions


def process_cpu_s() -> float:
    """CPU seconds used by this process so far (all threads): :func:`time.process_time`."""
    return time.process_time()


def default_threads() -> int:
    """Threads the model uses: torch's intra-op threads if torch is loaded, else usable CPUs."""
    torch = sys.modules.get("torch")
    if torch is not None:
        try:
            return max(int(torch.get_num_threads()), 1)
        except Exception:  # noqa: BLE001 - a broken torch: fall back to the CPU count
            pass
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except AttributeError:  # pragma: no cover - not Linux
        return max(os.cpu_count() or 1, 1)


@dataclass
class CpuLoadPower(PowerSource):
    """Power driven by this process's CPU utilisation (the load model, see the module doc).

    ``cpu_s`` returns CPU seconds used (default :func:`process_cpu_s`); ``threads`` defaults to
    :func:`default_threads` at each reading; device time is ``clock.monotonic() - t0``.
    Thread-safe; history is committed in :data:`CELL_S` cells and never changes afterwards.
    """

    idle_w: float
    busy_w: float
    clock: Clock = SYSTEM_CLOCK
    threads: int | None = None
    cpu_s: Callable[[], float] | None = None
    t0: float = 0.0
    busy: Callable[[], bool] | None = None  # False: the run's work is not on this GPU (idle)
    _trace: PowerTrace = field(init=False)
    _done_s: float = field(init=False, default=0.0)  # device time committed
    _cpu0: float = field(init=False, default=0.0)
    _lock: threading.Lock = field(init=False, default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._trace = PowerTrace([(0.0, self.idle_w)])
        self._cpu = self.cpu_s or process_cpu_s
        self._cpu0 = self._cpu()

    def utilisation(self, cpu_delta_s: float, wall_delta_s: float) -> float:
        """CPU utilisation in [0, 1] of the threads in use."""
        if wall_delta_s <= 0:
            return 0.0
        threads = self.threads or default_threads()
        return min(max(cpu_delta_s / wall_delta_s / threads, 0.0), 1.0)

    def _extend(self) -> None:
        now = self.clock.monotonic() - self.t0
        cells = math.floor(now / CELL_S + 1e-9) * CELL_S
        with self._lock:
            if cells <= self._done_s:
                return
            cpu = self._cpu()
            u = self.utilisation(cpu - self._cpu0, now - self._done_s)
            if self.busy is not None and not self.busy():
                u = 0.0
            p = self.idle_w + (self.busy_w - self.idle_w) * u
            if abs(p - self._trace.p[-1]) >= 0.5:
                self._trace.append(self._done_s, p)
            self._done_s, self._cpu0 = cells, cpu

    def energy_j(self, t: float) -> float:
        self._extend()
        return self._trace.energy_j(t)

    def power_w(self, t: float) -> float:
        self._extend()
        return self._trace.power_w(t)


def _h100(load: Callable[[float, float], PowerSource], **kw: object) -> FakeGpu:
    return FakeGpu(
        name="NVIDIA H100 80GB HBM3",
        arch="hopper",
        power=load(70.0, 700.0),
        **kw,  # type: ignore[arg-type]
    )


def simulated_nvml(
    profile: str,
    clock: Clock = SYSTEM_CLOCK,
    *,
    threads: int | None = None,
    cpu_s: Callable[[], float] | None = None,
    busy: BusyGpus | None = None,
) -> FakeNvml:
    """The fake NVML module of ``profile`` on ``clock``, GPUs driven by the CPU load model.

    With ``busy``, only the GPUs it names draw load (GPUs are numbered in profile order; a
    single superchip module always does, since the CPU work runs inside it; on several modules
    CPU-only work loads module 0).
    """
    _check(profile)
    t0 = clock.monotonic()
    index = iter(range(1_000))

    def on(i: int) -> Callable[[], bool] | None:
        if busy is None or profile == "gh200":
            return None
        if profile in ("4xgh200", "gb200"):
            return lambda: busy.busy(i) or (busy.positions == frozenset() and i == 0)
        return lambda: busy.busy(i)

    def load(idle_w: float, busy_w: float) -> PowerSource:
        i = next(index)
        return CpuLoadPower(
            idle_w, busy_w, clock=clock, threads=threads, cpu_s=cpu_s, t0=t0, busy=on(i)
        )

    me = os.getpid()
    own = [(me, 0.0, math.inf)]  # this process's CUDA context: never "another process"
    host_pids: dict[int, int] = {}
    gpus = _gpus(profile, load, own)
    if profile == "h100-container":  # the driver reports the run's pid on the host
        host_pids[me] = 3_000_000 + me % 1_000_000
    fake = FakeNvml(gpus, clock, driver="550.54.15-simulated", host_pids=host_pids)
    for g in fake.gpus:  # one time origin for the device and its load model
        if isinstance(g.power, CpuLoadPower):
            g.power.t0 = g.t0
    return fake


def _superchip(name: str, power: PowerSource, i: int, **kw: object) -> FakeGpu:
    return FakeGpu(
        name=name,
        arch="blackwell" if "GB" in name else "hopper",
        module=True,
        power=power,
        power_limit_w=1200.0 if "GB" in name else 900.0,
        cpus=tuple(range(i * GRACE_CPUS, (i + 1) * GRACE_CPUS)),
        **kw,  # type: ignore[arg-type]
    )


def _gpus(
    profile: str, load: Callable[[float, float], PowerSource], own: list[tuple[int, float, float]]
) -> list[FakeGpu]:
    """The GPUs of ``profile`` (every one runs the run's own process ``own``)."""
    if profile in ("h100", "h100-container"):
        return [_h100(load, processes=own)]
    if profile == "2xh100":
        return [_h100(load, processes=own), _h100(load, processes=list(own))]
    if profile == "a100":
        return [
            FakeGpu(
                name="NVIDIA A100-SXM4-40GB",
                arch="ampere",
                power=load(55.0, 400.0),
                instant_supported=False,
                power_usage_average_s=0.0,
                power_limit_w=400.0,
                processes=own,
            )
        ]
    if profile in ("gh200", "4xgh200"):
        n = 4 if profile == "4xgh200" else 1
        return [
            _superchip("NVIDIA GH200 480GB", load(150.0, 900.0), i, grace_w=100.0, processes=own)
            for i in range(n)
        ]
    if profile == "gb200":  # the Grace's power is in the first GPU's share of the module
        return [
            _superchip(
                "NVIDIA GB200",
                load(250.0, 1500.0),
                0,
                grace_w=100.0,
                superchip="gb0",
                processes=own,
            ),
            _superchip("NVIDIA GB200", load(150.0, 1200.0), 0, superchip="gb0", processes=own),
        ]
    if profile == "h100-mig":
        return [
            _h100(
                load,
                mig=(1, 1),
                mig_devices=["MIG-5c5e5d3a-0001-5b1d-9d4c-000000000001"],
                processes=own,
            )
        ]
    # h100-shared: another process keeps part of the GPU busy
    me = own[0][0]
    other = 4_242_424 if me != 4_242_424 else 4_242_425
    return [_h100(load, processes=[*own, (other, 0.0, math.inf)])]
