"""A fake ``pynvml`` module: NVIDIA GPUs in software, for tests and ``--simulate``.

:class:`FakeNvml` instances stand in for the ``pynvml`` module (nvidia-ml-py) behind
:class:`~energybench.meters.nvml_device.PynvmlBackend`, so that the very adapter code that runs
on a GPU server runs here: same function names, units (mW, mJ, degC, MHz), return types, error
classes (``NVMLError(code)`` maps to ``NVMLError_NotSupported`` etc. as in the real module),
constants, field-value structs (``c_nvmlFieldValue_t`` with a per-field ``nvmlReturn``,
``valueType`` and a value union) and power scopes (``(fieldId, scopeId)`` pairs).

Each :class:`FakeGpu` has a true power that is a base
:class:`~energybench.meters.sim.fakepower.PowerSource` (a replayed trace,
or a load model) overridden by **asynchronous work**: :meth:`FakeNvml.submit` queues
(duration, power) on the GPU's stream; it executes in order on the device clock, so its energy
lands only when the stream reaches it, and :meth:`FakeNvml.synchronize` waits for it (as
``torch.cuda.synchronize`` does). Sensors behave like the hardware: the energy counter updates
every ``counter_period_s`` (~100 ms); the instantaneous power field observes only the last
``instant_window_s`` (25 ms on A100/H100) of each ``sensor_period_s``; ``nvmlDeviceGetPowerUsage``
is a ~1 s average on Hopper and later but instantaneous on GA100 (A100/A30). Superchips
(GH200/GB200) report module (GPU + CPU + memory) power and energy and fail GPU-scope power
queries. Counter resets, lost GPUs, per-call faults, MIG mode and other processes' compute work
can be scripted.

This module must never touch real hardware, and it offers no ``nvmlDeviceSet*`` call: the
adapter must stay read-only. Its constants mirror nvidia-ml-py's values (a test checks them).
"""

from __future__ import annotations

import ctypes
import math
import string
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from energybench.meters.base import Clock
from energybench.meters.sim.fakepower import PowerSource as PowerSource
from energybench.meters.sim.fakepower import PowerTrace as PowerTrace

# =============================================================================== constants
NVML_SUCCESS = 0
NVML_ERROR_UNINITIALIZED = 1
NVML_ERROR_INVALID_ARGUMENT = 2
NVML_ERROR_NOT_SUPPORTED = 3
NVML_ERROR_NO_PERMISSION = 4
NVML_ERROR_ALREADY_INITIALIZED = 5
NVML_ERROR_NOT_FOUND = 6
NVML_ERROR_INSUFFICIENT_SIZE = 7
NVML_ERROR_DRIVER_NOT_LOADED = 9
NVML_ERROR_TIMEOUT = 10
NVML_ERROR_LIBRARY_NOT_FOUND = 12
NVML_ERROR_FUNCTION_NOT_FOUND = 13
NVML_ERROR_GPU_IS_LOST = 15
NVML_ERROR_RESET_REQUIRED = 16
NVML_ERROR_NO_DATA = 21
NVML_ERROR_NOT_READY = 27
NVML_ERROR_UNKNOWN = 999

NVML_VALUE_TYPE_DOUBLE = 0
NVML_VALUE_TYPE_UNSIGNED_INT = 1
NVML_VALUE_TYPE_UNSIGNED_LONG = 2
NVML_VALUE_TYPE_UNSIGNED_LONG_LONG = 3
NVML_VALUE_TYPE_SIGNED_LONG_LONG = 4
NVML_VALUE_TYPE_SIGNED_INT = 5
NVML_VALUE_TYPE_UNSIGNED_SHORT = 6

NVML_FI_DEV_POWER_AVERAGE = 185
NVML_FI_DEV_POWER_INSTANT = 186
NVML_FI_DEV_ENERGY = 191

NVML_POWER_SCOPE_GPU = 0
NVML_POWER_SCOPE_MODULE = 1
NVML_POWER_SCOPE_MEMORY = 2

NVML_TEMPERATURE_GPU = 0
NVML_CLOCK_GRAPHICS = 0
NVML_CLOCK_SM = 1
NVML_CLOCK_MEM = 2
NVML_FEATURE_DISABLED = 0
NVML_FEATURE_ENABLED = 1
NVML_DEVICE_MIG_DISABLE = 0
NVML_DEVICE_MIG_ENABLE = 1

NVML_DEVICE_ARCH_KEPLER = 2
NVML_DEVICE_ARCH_MAXWELL = 3
NVML_DEVICE_ARCH_PASCAL = 4
NVML_DEVICE_ARCH_VOLTA = 5
NVML_DEVICE_ARCH_TURING = 6
NVML_DEVICE_ARCH_AMPERE = 7
NVML_DEVICE_ARCH_ADA = 8
NVML_DEVICE_ARCH_HOPPER = 9
NVML_DEVICE_ARCH_BLACKWELL = 10
NVML_DEVICE_ARCH_UNKNOWN = 0xFFFFFFFF

_ARCH = {
    "kepler": NVML_DEVICE_ARCH_KEPLER,
    "maxwell": NVML_DEVICE_ARCH_MAXWELL,
    "pascal": NVML_DEVICE_ARCH_PASCAL,
    "volta": NVML_DEVICE_ARCH_VOLTA,
    "turing": NVML_DEVICE_ARCH_TURING,
    "ampere": NVML_DEVICE_ARCH_AMPERE,
    "ada": NVML_DEVICE_ARCH_ADA,
    "hopper": NVML_DEVICE_ARCH_HOPPER,
    "blackwell": NVML_DEVICE_ARCH_BLACKWELL,
}


# =============================================================================== errors
class NVMLError(Exception):
    """As in pynvml: ``NVMLError(code)`` builds the per-code subclass; ``.value`` is the code."""

    _valClassMapping: dict[int, type[NVMLError]] = {}  # noqa: N815 - pynvml's name
    _errcode_to_string = {
        NVML_ERROR_UNINITIALIZED: "Uninitialized",
        NVML_ERROR_INVALID_ARGUMENT: "Invalid Argument",
        NVML_ERROR_NOT_SUPPORTED: "Not Supported",
        NVML_ERROR_NO_PERMISSION: "Insufficient Permissions",
        NVML_ERROR_ALREADY_INITIALIZED: "Already Initialized",
        NVML_ERROR_NOT_FOUND: "Not Found",
        NVML_ERROR_INSUFFICIENT_SIZE: "Insufficient Size",
        NVML_ERROR_DRIVER_NOT_LOADED: "Driver Not Loaded",
        NVML_ERROR_TIMEOUT: "Timeout",
        NVML_ERROR_LIBRARY_NOT_FOUND: "NVML Shared Library Not Found",
        NVML_ERROR_FUNCTION_NOT_FOUND: "Function Not Found",
        NVML_ERROR_GPU_IS_LOST: "GPU is lost",
        NVML_ERROR_RESET_REQUIRED: "GPU requires restart",
        NVML_ERROR_UNKNOWN: "Unknown Error",
    }
    value: int

    def __new__(cls, value: int) -> NVMLError:
        if cls is NVMLError:
            cls = NVMLError._valClassMapping.get(value, cls)
        obj = Exception.__new__(cls)
        obj.value = value
        return obj

    def __init__(self, value: int) -> None:
        super().__init__(value)

    def __str__(self) -> str:
        return self._errcode_to_string.get(self.value, f"NVML Error with code {self.value}")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, NVMLError) and self.value == other.value

    __hash__ = Exception.__hash__


def _make_error_classes() -> dict[str, type[NVMLError]]:
    out: dict[str, type[NVMLError]] = {}
    for name, val in list(globals().items()):
        if not name.startswith("NVML_ERROR_"):
            continue
        cls_name = "NVMLError_" + string.capwords(name[len("NVML_ERROR_") :], "_").replace("_", "")

        def new(cls: type, *args: Any, _v: int = val) -> NVMLError:
            return NVMLError.__new__(cls, _v)

        def init(self: Exception, *args: Any, _v: int = val) -> None:
            Exception.__init__(self, _v)

        cls = type(cls_name, (NVMLError,), {"__new__": new, "__init__": init})
        NVMLError._valClassMapping[val] = cls
        out[cls_name] = cls
    return out


ERROR_CLASSES = _make_error_classes()
globals().update(ERROR_CLASSES)


# =============================================================================== structs
class c_nvmlValue_t(ctypes.Union):  # noqa: N801 - pynvml's name
    _fields_ = [
        ("dVal", ctypes.c_double),
        ("uiVal", ctypes.c_uint),
        ("ulVal", ctypes.c_ulong),
        ("ullVal", ctypes.c_ulonglong),
        ("sllVal", ctypes.c_longlong),
        ("siVal", ctypes.c_int),
        ("usVal", ctypes.c_ushort),
    ]


class c_nvmlFieldValue_t(ctypes.Structure):  # noqa: N801 - pynvml's name
    _fields_ = [
        ("fieldId", ctypes.c_uint32),
        ("scopeId", ctypes.c_uint32),
        ("timestamp", ctypes.c_int64),
        ("latencyUsec", ctypes.c_int64),
        ("valueType", ctypes.c_uint),
        ("nvmlReturn", ctypes.c_uint),
        ("value", c_nvmlValue_t),
    ]


class c_nvmlUtilization_t(ctypes.Structure):  # noqa: N801 - pynvml's name
    _fields_ = [("gpu", ctypes.c_uint), ("memory", ctypes.c_uint)]


@dataclass
class FakeProcessInfo:
    """What ``nvmlDeviceGetComputeRunningProcesses`` returns per process (a friendly object)."""

    pid: int
    usedGpuMemory: int | None = None  # noqa: N815 - pynvml's name
    gpuInstanceId: int = 0xFFFFFFFF  # noqa: N815
    computeInstanceId: int = 0xFFFFFFFF  # noqa: N815


# =============================================================================== devices
@dataclass
class Fault:
    """Calls of ``function`` (a pynvml name, or "*") raise ``NVMLError(code)`` in [start, end)
    (device seconds)."""

    function: str
    start_s: float
    end_s: float = math.inf
    code: int = NVML_ERROR_UNKNOWN


@dataclass
class FakeGpu:
    """One simulated GPU (or superchip module). Times are seconds since ``t0`` on the device
    clock (the owning :class:`FakeNvml`'s ``clock.monotonic()``).

    ``power`` is the base power (W or a :class:`PowerSource`); work queued with
    :meth:`FakeNvml.submit` replaces it while it runs. ``module=True`` makes a GH200/GB200-like
    superchip: every figure is module (GPU + CPU + memory) power/energy and GPU-scope power
    queries fail with NOT_SUPPORTED. ``power_usage_average_s`` is the averaging window of
    ``nvmlDeviceGetPowerUsage`` (1.0 on Hopper+, 0 = instantaneous as on GA100).
    ``zero_power_s`` are intervals where the power sensors read 0 mW (a glitch; the true power
    and the counter go on). On a module, ``grace_w`` is the constant power of its Grace CPU and
    memory inside ``power``: ``nvmlDeviceGetTotalEnergyConsumption`` counts the GPU alone
    (module energy minus ``grace_w`` x time), as on real superchips; ``module_energy_field``
    False is a driver without the module-scope ``NVML_FI_DEV_ENERGY``. GPUs with the same
    ``superchip`` label share one module (GB200: two GPUs and one Grace): each one's module-scope
    figures are those of the whole superchip. ``cpus`` are the CPU ids attached to the GPU
    (``nvmlDeviceGetCpuAffinity``; None: not supported).
    """

    name: str = "NVIDIA H100 80GB HBM3"
    power: PowerSource | float = 70.0
    uuid: str = ""
    arch: str = "hopper"
    counter_period_s: float = 0.1
    sensor_period_s: float = 0.1
    instant_window_s: float = 0.025
    power_usage_average_s: float = 1.0
    counter_offset_mj: int = 5_000_000_000  # > 2**32: a 32-bit read would truncate it
    counter_supported: bool = True
    instant_supported: bool = True
    module: bool = False
    power_limit_w: float = 700.0
    default_power_limit_w: float | None = None  # None: power_limit_w
    persistence: int = 1  # NVML_FEATURE_ENABLED
    ecc: tuple[int, int] = (1, 1)  # (current, pending)
    max_clock_mhz: dict[int, int] = field(default_factory=lambda: {0: 1980, 1: 1980, 2: 2619})
    app_clock_mhz: dict[int, int] = field(default_factory=lambda: {0: 1755, 1: 1755, 2: 2619})
    mig: tuple[int, int] = (0, 0)  # (current, pending)
    mig_devices: list[str] = field(default_factory=list)  # MIG instance UUIDs
    processes: list[tuple[int, float, float]] = field(default_factory=list)  # pid, start, end
    lost_at_s: float | None = None
    counter_resets_s: list[float] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    zero_power_s: list[tuple[float, float]] = field(default_factory=list)  # sensor reads 0 mW
    grace_w: float = 0.0
    module_energy_field: bool = True
    superchip: str | None = None
    cpus: tuple[int, ...] | None = None
    t0: float = 0.0
    stream: list[tuple[float, float, float]] = field(default_factory=list)  # start, end, W

    def __post_init__(self) -> None:
        if not isinstance(self.power, PowerSource):
            self.power = PowerTrace(float(self.power))

    @property
    def base(self) -> PowerSource:
        assert isinstance(self.power, PowerSource)
        return self.power

    # ------------------------------------------------------------------ truth
    def energy_j(self, t: float) -> float:
        """True energy in J from ``t0`` to ``t`` (device seconds), queued work included."""
        e = self.base.energy_j(t) - self.base.energy_j(0.0)
        for s, end, p in self.stream:
            if s >= t:
                break
            e2 = min(end, t)
            e += p * (e2 - s) - (self.base.energy_j(e2) - self.base.energy_j(s))
        return e

    def power_w(self, t: float) -> float:
        for s, end, p in self.stream:
            if s <= t < end:
                return p
        return self.base.power_w(t)

    def mean_w(self, end: float, window: float) -> float:
        if window <= 0:
            return self.power_w(end - 1e-9)
        return (self.energy_j(end) - self.energy_j(end - window)) / window

    def stream_end(self) -> float:
        return self.stream[-1][1] if self.stream else -math.inf


class _Handle:
    """Opaque device handle (as ``c_nvmlDevice_t``); MIG handles know their parent."""

    def __init__(self, gpu: FakeGpu, index: int, mig_uuid: str | None = None) -> None:
        self.gpu, self.index, self.mig_uuid = gpu, index, mig_uuid

    def __repr__(self) -> str:
        return f"<fake nvmlDevice_t {self.mig_uuid or self.index}>"


def _last_update(t: float, period: float) -> float:
    return math.floor(t / period + 1e-9) * period


# =============================================================================== the module
class FakeNvml:
    """A fake ``pynvml`` module over ``gpus`` on ``clock`` (device time = ``clock.monotonic()``).

    Use it where ``pynvml`` is used: ``PynvmlBackend(FakeNvml([...], clock))``. Test helpers:
    :meth:`submit`, :meth:`synchronize`, :meth:`true_energy_j`, :meth:`now`, :attr:`calls`.
    ``host_pids`` maps a process's pid (as the process sees it) to the pid NVML reports: the
    host's, as the real driver does for a process in a container's PID namespace.
    """

    def __init__(
        self,
        gpus: Sequence[FakeGpu],
        clock: Clock,
        *,
        driver: str = "550.54.15",
        init_error: int | None = None,
        host_pids: dict[int, int] | None = None,
    ) -> None:
        self.gpus = list(gpus)
        self.host_pids = dict(host_pids or {})
        self.clock = clock
        self.driver = driver
        self.init_error = init_error
        self.calls: dict[str, int] = {}
        self._init_count = 0
        self._lock = threading.RLock()
        t = clock.monotonic()
        for i, g in enumerate(self.gpus):
            g.t0 = t
            if not g.uuid:
                g.uuid = f"GPU-{i:08x}-5151-4e00-8000-{i:012x}"
        self._handles = [_Handle(g, i) for i, g in enumerate(self.gpus)]
        self.NVMLError = NVMLError
        for k, v in globals().items():
            if k.startswith(("NVML_", "NVMLError_")) or k.startswith("c_nvml"):
                setattr(self, k, v)

    # ------------------------------------------------------------------ test helpers
    def now(self, index: int = 0) -> float:
        """Device seconds of GPU ``index`` now."""
        return self.clock.monotonic() - self.gpus[index].t0

    def submit(self, index: int, duration_s: float, power_w: float) -> None:
        """Queue ``duration_s`` of work drawing ``power_w`` on GPU ``index``'s stream."""
        with self._lock:
            g = self.gpus[index]
            start = max(self.now(index), g.stream_end())
            g.stream.append((start, start + duration_s, float(power_w)))

    def synchronize(self, index: int | None = None) -> None:
        """Wait until the queued work of GPU ``index`` (default: every GPU) has executed."""
        with self._lock:
            idx = range(len(self.gpus)) if index is None else [index]
            wait = max((self.gpus[i].stream_end() - self.now(i) for i in idx), default=0.0)
        if wait > 0:
            self.clock.sleep(wait)

    def true_energy_j(self, index: int, t0_mono: float, t1_mono: float) -> float:
        """What GPU ``index`` really used between two ``clock.monotonic()`` times, in J."""
        g = self.gpus[index]
        return g.energy_j(t1_mono - g.t0) - g.energy_j(t0_mono - g.t0)

    def reset_counter(self, index: int) -> None:
        """The energy counter restarts from 0 now (driver reload, GPU reset)."""
        self.gpus[index].counter_resets_s.append(self.now(index))

    # ------------------------------------------------------------------ plumbing
    def _enter(self, fn: str, handle: Any = None) -> tuple[FakeGpu, float] | None:
        self.calls[fn] = self.calls.get(fn, 0) + 1
        if self._init_count <= 0:
            raise NVMLError(NVML_ERROR_UNINITIALIZED)
        if handle is None:
            return None
        if not isinstance(handle, _Handle):
            raise NVMLError(NVML_ERROR_INVALID_ARGUMENT)
        g = handle.gpu
        t = self.clock.monotonic() - g.t0
        if g.lost_at_s is not None and t >= g.lost_at_s:
            raise NVMLError(NVML_ERROR_GPU_IS_LOST)
        for f in g.faults:
            if f.function in (fn, "*") and f.start_s <= t < f.end_s:
                raise NVMLError(f.code)
        return g, t

    def _members(self, g: FakeGpu) -> list[FakeGpu]:
        """The GPUs whose module ``g``'s module-scope figures cover (itself, or its superchip)."""
        if g.superchip is None:
            return [g]
        return [x for x in self.gpus if x.superchip == g.superchip]

    def _energy_j(self, g: FakeGpu, t: float, module: bool) -> float:
        """True energy since ``t0``: the module's (superchip's), or the GPU's alone."""
        if module:
            return sum(x.energy_j(t) for x in self._members(g))
        return g.energy_j(t) - g.grace_w * t

    def _counter_mj(self, g: FakeGpu, t: float, module: bool = False) -> int:
        if not g.counter_supported:
            raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
        u = _last_update(t, g.counter_period_s)
        resets = [r for r in g.counter_resets_s if r <= t]
        if resets:
            e = self._energy_j(g, u, module) - self._energy_j(g, resets[-1], module)
            return int(max(e, 0.0) * 1000)
        return g.counter_offset_mj + int(self._energy_j(g, u, module) * 1000)

    def _mean_w(self, g: FakeGpu, end: float, window: float) -> float:
        """Module-scope mean power (a superchip's members summed)."""
        return sum(x.mean_w(end, window) for x in self._members(g))

    def _instant_mw(self, g: FakeGpu, t: float) -> int:
        if any(a <= t < b for a, b in g.zero_power_s):
            return 0
        u = _last_update(t, g.sensor_period_s)
        return int(round(self._mean_w(g, u, g.instant_window_s) * 1000))

    def _usage_mw(self, g: FakeGpu, t: float) -> int:
        if any(a <= t < b for a, b in g.zero_power_s):
            return 0
        u = _last_update(t, g.sensor_period_s)
        if g.power_usage_average_s <= 0:
            return int(round(self._mean_w(g, u, g.instant_window_s) * 1000))
        return int(round(self._mean_w(g, u, g.power_usage_average_s) * 1000))

    # ------------------------------------------------------------------ init / system
    def nvmlInit(self) -> None:  # noqa: N802 - pynvml's names from here on
        self.calls["nvmlInit"] = self.calls.get("nvmlInit", 0) + 1
        if self.init_error is not None:
            raise NVMLError(self.init_error)
        self._init_count += 1

    def nvmlShutdown(self) -> None:  # noqa: N802
        self._enter("nvmlShutdown")
        self._init_count -= 1

    def nvmlSystemGetDriverVersion(self) -> str:  # noqa: N802
        self._enter("nvmlSystemGetDriverVersion")
        return self.driver

    def nvmlDeviceGetCount(self) -> int:  # noqa: N802
        self._enter("nvmlDeviceGetCount")
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> _Handle:  # noqa: N802
        self._enter("nvmlDeviceGetHandleByIndex")
        if not 0 <= index < len(self._handles):
            raise NVMLError(NVML_ERROR_INVALID_ARGUMENT)
        return self._handles[index]

    def nvmlDeviceGetHandleByUUID(self, uuid: str) -> _Handle:  # noqa: N802
        self._enter("nvmlDeviceGetHandleByUUID")
        u = uuid.decode() if isinstance(uuid, bytes) else uuid
        for i, g in enumerate(self.gpus):
            if g.uuid == u:
                return self._handles[i]
            if u in g.mig_devices:
                return _Handle(g, i, u)
        raise NVMLError(NVML_ERROR_NOT_FOUND)

    # ------------------------------------------------------------------ identity
    def nvmlDeviceGetUUID(self, handle: _Handle) -> str:  # noqa: N802
        self._enter("nvmlDeviceGetUUID", handle)
        return handle.mig_uuid or handle.gpu.uuid

    def nvmlDeviceGetName(self, handle: _Handle) -> str:  # noqa: N802
        self._enter("nvmlDeviceGetName", handle)
        return handle.gpu.name

    def nvmlDeviceGetIndex(self, handle: _Handle) -> int:  # noqa: N802
        self._enter("nvmlDeviceGetIndex", handle)
        return handle.index

    def nvmlDeviceGetArchitecture(self, handle: _Handle) -> int:  # noqa: N802
        self._enter("nvmlDeviceGetArchitecture", handle)
        return _ARCH.get(handle.gpu.arch, NVML_DEVICE_ARCH_UNKNOWN)

    # ------------------------------------------------------------------ energy and power
    def nvmlDeviceGetTotalEnergyConsumption(self, handle: _Handle) -> int:  # noqa: N802
        g, t = self._enter("nvmlDeviceGetTotalEnergyConsumption", handle)  # type: ignore[misc]
        with self._lock:
            return self._counter_mj(g, t)

    def nvmlDeviceGetPowerUsage(self, handle: _Handle) -> int:  # noqa: N802
        g, t = self._enter("nvmlDeviceGetPowerUsage", handle)  # type: ignore[misc]
        if g.module:  # GPU-scope power query on a superchip
            raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
        with self._lock:
            return self._usage_mw(g, t)

    def nvmlDeviceGetFieldValues(  # noqa: N802
        self,
        handle: _Handle,
        fieldIds: Sequence[int | tuple[int, int]],  # noqa: N803
    ) -> Any:
        g, t = self._enter("nvmlDeviceGetFieldValues", handle)  # type: ignore[misc]
        values = (c_nvmlFieldValue_t * len(fieldIds))()
        with self._lock:
            for i, fid in enumerate(fieldIds):
                v = values[i]
                try:
                    v.fieldId, v.scopeId = fid  # type: ignore[misc]
                except TypeError:
                    v.fieldId = fid
                v.timestamp = int(self.clock.time() * 1e6)
                v.latencyUsec = 0
                self._fill(g, t, v)
        return values

    def _fill(self, g: FakeGpu, t: float, v: c_nvmlFieldValue_t) -> None:
        scope = int(v.scopeId)
        power_field = v.fieldId in (NVML_FI_DEV_POWER_INSTANT, NVML_FI_DEV_POWER_AVERAGE)
        if v.fieldId == NVML_FI_DEV_ENERGY or power_field:
            wanted = NVML_POWER_SCOPE_MODULE if g.module else NVML_POWER_SCOPE_GPU
            if scope != wanted:
                v.nvmlReturn = NVML_ERROR_NOT_SUPPORTED
                v.valueType = NVML_VALUE_TYPE_UNSIGNED_INT
                v.value.uiVal = 0xDEADBEEF  # garbage: a reader ignoring nvmlReturn sees this
                return
        try:
            if v.fieldId == NVML_FI_DEV_ENERGY:
                if g.module and not g.module_energy_field:
                    raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
                v.valueType = NVML_VALUE_TYPE_UNSIGNED_LONG_LONG
                v.value.ullVal = self._counter_mj(g, t, module=g.module)
            elif v.fieldId == NVML_FI_DEV_POWER_INSTANT:
                if not g.instant_supported:
                    raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
                v.valueType = NVML_VALUE_TYPE_UNSIGNED_INT
                v.value.uiVal = self._instant_mw(g, t)
            elif v.fieldId == NVML_FI_DEV_POWER_AVERAGE:
                v.valueType = NVML_VALUE_TYPE_UNSIGNED_INT
                v.value.uiVal = self._usage_mw(g, t)
            else:
                raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
            v.nvmlReturn = NVML_SUCCESS
        except NVMLError as exc:
            v.nvmlReturn = exc.value
            v.valueType = NVML_VALUE_TYPE_UNSIGNED_INT
            v.value.uiVal = 0xDEADBEEF

    def nvmlDeviceGetEnforcedPowerLimit(self, handle: _Handle) -> int:  # noqa: N802
        self._enter("nvmlDeviceGetEnforcedPowerLimit", handle)
        return int(handle.gpu.power_limit_w * 1000)

    # ------------------------------------------------------------------ other sensors
    def nvmlDeviceGetTemperature(self, handle: _Handle, sensor: int) -> int:  # noqa: N802
        g, t = self._enter("nvmlDeviceGetTemperature", handle)  # type: ignore[misc]
        if sensor != NVML_TEMPERATURE_GPU:
            raise NVMLError(NVML_ERROR_INVALID_ARGUMENT)
        return int(round(30.0 + 0.06 * g.power_w(t)))

    def nvmlDeviceGetClockInfo(self, handle: _Handle, kind: int) -> int:  # noqa: N802
        """Current clock, MHz (SM/graphics follow load; memory is fixed)."""
        g, t = self._enter("nvmlDeviceGetClockInfo", handle)  # type: ignore[misc]
        if kind == NVML_CLOCK_MEM:
            return g.max_clock_mhz[NVML_CLOCK_MEM]
        if kind not in (NVML_CLOCK_SM, NVML_CLOCK_GRAPHICS):
            raise NVMLError(NVML_ERROR_INVALID_ARGUMENT)
        return g.max_clock_mhz[kind] if g.power_w(t) > 0.3 * g.power_limit_w else 345

    def nvmlDeviceGetMaxClockInfo(self, handle: _Handle, kind: int) -> int:  # noqa: N802
        """Maximum clock, MHz."""
        g, _ = self._enter("nvmlDeviceGetMaxClockInfo", handle)  # type: ignore[misc]
        if kind not in g.max_clock_mhz:
            raise NVMLError(NVML_ERROR_INVALID_ARGUMENT)
        return g.max_clock_mhz[kind]

    def nvmlDeviceGetApplicationsClock(self, handle: _Handle, kind: int) -> int:  # noqa: N802
        """Application (target) clock, MHz."""
        g, _ = self._enter("nvmlDeviceGetApplicationsClock", handle)  # type: ignore[misc]
        if kind not in g.app_clock_mhz:
            raise NVMLError(NVML_ERROR_INVALID_ARGUMENT)
        return g.app_clock_mhz[kind]

    def nvmlDeviceGetPowerManagementLimit(self, handle: _Handle) -> int:  # noqa: N802
        """The power limit set (mW)."""
        g, _ = self._enter("nvmlDeviceGetPowerManagementLimit", handle)  # type: ignore[misc]
        return int(g.power_limit_w * 1000)

    def nvmlDeviceGetPowerManagementDefaultLimit(self, handle: _Handle) -> int:  # noqa: N802
        """The default power limit (mW)."""
        g, _ = self._enter("nvmlDeviceGetPowerManagementDefaultLimit", handle)  # type: ignore[misc]
        return int((g.default_power_limit_w or g.power_limit_w) * 1000)

    def nvmlDeviceGetPersistenceMode(self, handle: _Handle) -> int:  # noqa: N802
        """NVML_FEATURE_ENABLED (1) or NVML_FEATURE_DISABLED (0)."""
        g, _ = self._enter("nvmlDeviceGetPersistenceMode", handle)  # type: ignore[misc]
        return g.persistence

    def nvmlDeviceGetEccMode(self, handle: _Handle) -> list[int]:  # noqa: N802
        """[current, pending] ECC mode (NVML_FEATURE_*)."""
        g, _ = self._enter("nvmlDeviceGetEccMode", handle)  # type: ignore[misc]
        return [g.ecc[0], g.ecc[1]]

    def nvmlSystemGetCudaDriverVersion(self) -> int:  # noqa: N802
        """The CUDA version the driver supports, e.g. 12040 for 12.4."""
        self._enter("nvmlSystemGetCudaDriverVersion")
        return 12040

    def nvmlDeviceGetUtilizationRates(self, handle: _Handle) -> c_nvmlUtilization_t:  # noqa: N802
        g, t = self._enter("nvmlDeviceGetUtilizationRates", handle)  # type: ignore[misc]
        busy = min(100, int(round(100 * g.power_w(t) / g.power_limit_w)))
        return c_nvmlUtilization_t(gpu=busy, memory=busy // 2)

    # ------------------------------------------------------------------ sharing
    def nvmlDeviceGetMigMode(self, handle: _Handle) -> list[int]:  # noqa: N802
        g, _ = self._enter("nvmlDeviceGetMigMode", handle)  # type: ignore[misc]
        if g.arch not in ("ampere", "hopper", "blackwell"):
            raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
        return [g.mig[0], g.mig[1]]

    def nvmlDeviceGetComputeRunningProcesses(  # noqa: N802
        self, handle: _Handle
    ) -> list[FakeProcessInfo]:
        g, t = self._enter("nvmlDeviceGetComputeRunningProcesses", handle)  # type: ignore[misc]
        return [
            FakeProcessInfo(self.host_pids.get(pid, pid), 1 << 30)
            for pid, s, e in g.processes
            if s <= t < e
        ]

    def nvmlDeviceGetCpuAffinity(self, handle: _Handle, cpuSetSize: int) -> list[int]:  # noqa: N802, N803
        g, _ = self._enter("nvmlDeviceGetCpuAffinity", handle)  # type: ignore[misc]
        if g.cpus is None:
            raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
        words = [0] * cpuSetSize
        for c in g.cpus:
            if c < 64 * cpuSetSize:
                words[c // 64] |= 1 << (c % 64)
        return words

    def nvmlDeviceGetMaxMigDeviceCount(self, handle: _Handle) -> int:  # noqa: N802
        g, _ = self._enter("nvmlDeviceGetMaxMigDeviceCount", handle)  # type: ignore[misc]
        return 7 if g.mig[0] else 0

    def nvmlDeviceGetMigDeviceHandleByIndex(self, handle: _Handle, index: int) -> _Handle:  # noqa: N802
        g, _ = self._enter("nvmlDeviceGetMigDeviceHandleByIndex", handle)  # type: ignore[misc]
        if not 0 <= index < len(g.mig_devices):
            raise NVMLError(NVML_ERROR_NOT_FOUND)
        return _Handle(g, handle.index, g.mig_devices[index])

    def nvmlDeviceGetDeviceHandleFromMigDeviceHandle(self, handle: _Handle) -> _Handle:  # noqa: N802
        self._enter("nvmlDeviceGetDeviceHandleFromMigDeviceHandle", handle)
        if handle.mig_uuid is None:
            raise NVMLError(NVML_ERROR_INVALID_ARGUMENT)
        return self._handles[handle.index]
