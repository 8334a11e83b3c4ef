"""The GPU seam and its NVML adapter: read-only access to one GPU (or superchip module).

:class:`GpuDevice` / :class:`GpuBackend` are what the meter, the GPU selection and the probe
use. :class:`PynvmlDevice` / :class:`PynvmlBackend` implement them over an NVML module that is
*injected*: the real ``pynvml`` (nvidia-ml-py) by default, or
:class:`~energybench.meters.sim.fakenvml.FakeNvml` in tests and ``--simulate``, so that the same
adapter code runs in both. NVML errors become :class:`GpuError` subclasses here.

Superchips (GH200, GB200) are read with the *module* power scope: their counter and power are
GPU + CPU + memory, and GPU-scope power queries fail there. ``nvmlDeviceGetPowerUsage`` is a
~1 s average on most Ampere-and-later parts but instantaneous on GA100 (A100, A30) and older
(:meth:`GpuDevice.power_usage_average_s`).

This module only *reads*: it must never call an ``nvmlDeviceSet*``/reset function. A power
reading of 0 W or less is a failed read (:class:`GpuReadError`), never a figure.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

#: Averaging window of ``nvmlDeviceGetPowerUsage`` where it is an average (s).
POWER_USAGE_AVERAGE_S = 1.0
#: Product names of superchips whose NVML figures are module (GPU + CPU + memory) scope.
SUPERCHIP_RE = re.compile(r"\b(GH|GB)\d{3}\b|Grace", re.IGNORECASE)
#: GA100 products: ``nvmlDeviceGetPowerUsage`` is instantaneous there (nvidia-smi docs).
GA100_RE = re.compile(r"\bA(100|30)\b", re.IGNORECASE)
#: 64-bit words asked of ``nvmlDeviceGetCpuAffinity`` (4096 CPUs).
CPU_SET_WORDS = 64
_INSTANT_USAGE_ARCHS = {"kepler", "maxwell", "pascal", "volta", "turing"}


# =============================================================================== errors
class GpuError(Exception):
    """An NVML call failed (base class)."""


class GpuNotSupportedError(GpuError):
    """The query is not supported on this GPU or driver (e.g. the energy counter pre-Volta)."""


class GpuLostError(GpuError):
    """The GPU fell off the bus or needs a reset (NVML_ERROR_GPU_IS_LOST)."""


class GpuNoPermissionError(GpuError):
    """The caller may not make this query (NVML_ERROR_NO_PERMISSION), e.g. another user's
    processes in ``nvmlDeviceGetComputeRunningProcesses``."""


class GpuReadError(GpuError):
    """A reading was returned but is impossible (e.g. power <= 0 W): treated as a failed read."""


class NvmlUnavailableError(GpuError):
    """NVML could not be initialised; ``reason`` says why, ``fix`` what to do."""

    def __init__(self, reason: str, fix: str = "") -> None:
        super().__init__(f"{reason}. {fix}" if fix else reason)
        self.reason, self.fix = reason, fix


# =============================================================================== the seam
class GpuDevice(ABC):
    """One physical GPU or superchip module, read-only. Units: mJ, mW, degC, MHz, %."""

    index: int = 0  # NVML index (PCI bus order)

    @abstractmethod
    def uuid(self) -> str:
        """NVML UUID, e.g. ``"GPU-8932f937-..."``."""

    @abstractmethod
    def name(self) -> str:
        """Product name, e.g. ``"NVIDIA H100 80GB HBM3"``."""

    def scope(self) -> str:
        """``"gpu"``, or ``"module"`` on a superchip (figures are GPU + CPU + memory)."""
        return "gpu"

    def counter_scope(self) -> str:
        """Scope of :meth:`total_energy_mj`: ``"module"`` only where the module energy field
        works; ``"gpu"`` for ``nvmlDeviceGetTotalEnergyConsumption`` (the GPU alone)."""
        return self.scope()

    def cpu_affinity(self) -> frozenset[int] | None:
        """Ids of the CPUs attached to this GPU (a superchip: its Grace), or None if unknown."""
        return None

    @abstractmethod
    def total_energy_mj(self) -> int:
        """Energy since driver load in mJ (raises GpuNotSupportedError before Volta)."""

    @abstractmethod
    def power_instant_mw(self) -> int:
        """Instantaneous power in mW (``NVML_FI_DEV_POWER_INSTANT``), > 0."""

    @abstractmethod
    def power_usage_mw(self) -> int:
        """Power in mW from ``nvmlDeviceGetPowerUsage`` (see :meth:`power_usage_average_s`)."""

    def power_usage_average_s(self) -> float:
        """Averaging window of :meth:`power_usage_mw` in s (0: instantaneous)."""
        return POWER_USAGE_AVERAGE_S

    @abstractmethod
    def temperature_c(self) -> float:
        """GPU core temperature in degC."""

    @abstractmethod
    def sm_clock_mhz(self) -> float:
        """Current SM clock in MHz."""

    @abstractmethod
    def utilization_pct(self) -> float:
        """GPU utilisation in % over the driver's last sample period."""

    def power_limit_mw(self) -> int | None:
        """Enforced power limit in mW, or None if unknown."""
        return None

    def architecture(self) -> str | None:
        """Architecture name ("volta", "hopper", ...), or None if unknown."""
        return None

    def mig_enabled(self) -> bool:
        """Whether MIG mode is on (then energy is the whole GPU's, shared by all instances)."""
        return False

    def compute_pids(self) -> list[int]:
        """Pids of processes running compute work on this GPU (raises GpuError if unknown)."""
        raise GpuNotSupportedError("process list not available")


class GpuBackend(ABC):
    """Enumerates GPUs."""

    @abstractmethod
    def driver_version(self) -> str: ...

    @abstractmethod
    def devices(self) -> list[GpuDevice]:
        """All GPUs in NVML index order."""

    def mig_parent_uuid(self, mig_id: str) -> str | None:
        """UUID of the GPU that holds MIG instance ``mig_id`` ("MIG-..."), or None."""
        return None

    def close(self) -> None:
        """Release the library (e.g. ``nvmlShutdown``)."""


# =============================================================================== adapter
def _text(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


class _Nvml:
    """Calls into one NVML module, mapping its errors to :class:`GpuError` subclasses."""

    def __init__(self, nvml: Any) -> None:
        self.lib = nvml

    def error(self, exc: Any) -> GpuError:
        code = exc.value
        msg = f"{exc} (NVML error {code})"
        if code == self.lib.NVML_ERROR_GPU_IS_LOST:
            return GpuLostError(msg)
        if code in (self.lib.NVML_ERROR_NOT_SUPPORTED, self.lib.NVML_ERROR_FUNCTION_NOT_FOUND):
            return GpuNotSupportedError(msg)
        if code == self.lib.NVML_ERROR_NO_PERMISSION:
            return GpuNoPermissionError(msg)
        return GpuError(msg)

    def __call__(self, fn: Callable[..., Any], *args: Any) -> Any:
        try:
            return fn(*args)
        except self.lib.NVMLError as exc:
            raise self.error(exc) from exc

    def field(self, handle: Any, field_id: int, scope: int = 0) -> int | float:
        """One field value of power scope ``scope`` (0, the default, is the GPU scope and is
        sent as a plain field id, which every nvidia-ml-py accepts); a per-field
        ``nvmlReturn`` other than success raises."""
        req = (field_id, scope) if scope else field_id
        v = self(self.lib.nvmlDeviceGetFieldValues, handle, [req])[0]
        if v.nvmlReturn != self.lib.NVML_SUCCESS:
            raise self.error(self.lib.NVMLError(v.nvmlReturn))
        member = {
            0: "dVal",
            1: "uiVal",
            2: "ulVal",
            3: "ullVal",
            4: "sllVal",
            5: "siVal",
            6: "usVal",
        }.get(int(v.valueType))
        if member is None:
            raise GpuReadError(f"field {field_id}: unknown value type {v.valueType}")
        return getattr(v.value, member)


def _positive_mw(v: float, what: str) -> int:
    if v <= 0:
        raise GpuReadError(f"{what} read {v} mW: a failed read, not a figure")
    return int(v)


class PynvmlDevice(GpuDevice):
    """A GPU through an NVML module (``pynvml`` or a fake). Only ``nvml*Get*`` calls are made.

    On a superchip (:meth:`scope` ``"module"``), energy and power are read with
    ``NVML_POWER_SCOPE_MODULE`` field values, as Zeus does on GH200.
    """

    def __init__(self, nvml: Any, index: int, handle: Any) -> None:
        self.nvml = nvml if isinstance(nvml, _Nvml) else _Nvml(nvml)
        self.index, self.handle = index, handle
        self._uuid: str | None = None
        self._name: str | None = None
        self._scope: str | None = None
        self._counter_scope: str | None = None

    @property
    def lib(self) -> Any:
        return self.nvml.lib

    def uuid(self) -> str:
        if self._uuid is None:
            self._uuid = _text(self.nvml(self.lib.nvmlDeviceGetUUID, self.handle))
        return self._uuid

    def name(self) -> str:
        if self._name is None:
            self._name = _text(self.nvml(self.lib.nvmlDeviceGetName, self.handle))
        return self._name

    def scope(self) -> str:
        """``"module"`` for GH200/GB200 (by name, or GPU-scope power failing where module scope
        works), else ``"gpu"``. Decided once."""
        if self._scope is None:
            self._scope = "gpu"
            if SUPERCHIP_RE.search(self.name()):
                self._scope = "module"
            elif hasattr(self.lib, "NVML_POWER_SCOPE_MODULE"):
                fid = self.lib.NVML_FI_DEV_POWER_INSTANT
                try:
                    self.nvml.field(self.handle, fid)
                except GpuLostError:
                    raise
                except GpuError:
                    try:
                        self.nvml.field(self.handle, fid, self.lib.NVML_POWER_SCOPE_MODULE)
                        self._scope = "module"
                    except GpuError:
                        pass
        return self._scope

    def _scope_id(self) -> int:
        """The power scope of this device's field reads: module on superchips, else GPU (0)."""
        if self.scope() == "module":
            return int(self.lib.NVML_POWER_SCOPE_MODULE)
        return 0

    def counter_scope(self) -> str:
        """``"module"`` where the module-scope ``NVML_FI_DEV_ENERGY`` field works (decided once;
        a lost GPU raises), else ``"gpu"``: ``nvmlDeviceGetTotalEnergyConsumption`` counts the
        GPU alone, also on a superchip."""
        if self._counter_scope is None:
            scope = "gpu"
            if self.scope() == "module":
                fid = self.lib.NVML_FI_DEV_ENERGY
                try:
                    self.nvml.field(self.handle, fid, self._scope_id())
                    scope = "module"
                except GpuLostError:
                    raise
                except GpuError:
                    pass
            self._counter_scope = scope
        return self._counter_scope

    def total_energy_mj(self) -> int:
        """The module energy field where it works (:meth:`counter_scope`), else the GPU-only
        ``nvmlDeviceGetTotalEnergyConsumption``."""
        if self.counter_scope() == "module":
            return int(self.nvml.field(self.handle, self.lib.NVML_FI_DEV_ENERGY, self._scope_id()))
        return int(self.nvml(self.lib.nvmlDeviceGetTotalEnergyConsumption, self.handle))

    def cpu_affinity(self) -> frozenset[int] | None:
        """CPUs attached to this GPU (``nvmlDeviceGetCpuAffinity``), None when not supported."""
        try:
            words = self.nvml(self.lib.nvmlDeviceGetCpuAffinity, self.handle, CPU_SET_WORDS)
        except GpuError:
            return None
        cpus = frozenset(
            w * 64 + b for w, word in enumerate(words) for b in range(64) if int(word) >> b & 1
        )
        return cpus or None

    def power_instant_mw(self) -> int:
        fid = getattr(self.lib, "NVML_FI_DEV_POWER_INSTANT", None)
        if fid is None:
            raise GpuNotSupportedError("this pynvml has no NVML_FI_DEV_POWER_INSTANT")
        v = self.nvml.field(self.handle, fid, self._scope_id())
        return _positive_mw(v, "instantaneous power")

    def power_usage_mw(self) -> int:
        if self.scope() == "module":
            fid = self.lib.NVML_FI_DEV_POWER_AVERAGE
            return _positive_mw(self.nvml.field(self.handle, fid, self._scope_id()), "power")
        v = self.nvml(self.lib.nvmlDeviceGetPowerUsage, self.handle)
        return _positive_mw(v, "nvmlDeviceGetPowerUsage")

    def power_usage_average_s(self) -> float:
        """0 (instantaneous) before Ampere and on GA100 (A100/A30); ~1 s elsewhere."""
        if self.scope() == "module":
            return POWER_USAGE_AVERAGE_S
        arch = self.architecture()
        if arch in _INSTANT_USAGE_ARCHS:
            return 0.0
        if arch == "ampere" and GA100_RE.search(self.name()):
            return 0.0
        return POWER_USAGE_AVERAGE_S

    def temperature_c(self) -> float:
        return float(
            self.nvml(self.lib.nvmlDeviceGetTemperature, self.handle, self.lib.NVML_TEMPERATURE_GPU)
        )

    def sm_clock_mhz(self) -> float:
        return float(
            self.nvml(self.lib.nvmlDeviceGetClockInfo, self.handle, self.lib.NVML_CLOCK_SM)
        )

    def utilization_pct(self) -> float:
        return float(self.nvml(self.lib.nvmlDeviceGetUtilizationRates, self.handle).gpu)

    def power_limit_mw(self) -> int | None:
        try:
            return int(self.nvml(self.lib.nvmlDeviceGetEnforcedPowerLimit, self.handle))
        except GpuError:
            return None

    def architecture(self) -> str | None:
        try:
            arch = int(self.nvml(self.lib.nvmlDeviceGetArchitecture, self.handle))
        except GpuError:
            return None
        names = {
            getattr(self.lib, k): k[len("NVML_DEVICE_ARCH_") :].lower()
            for k in dir(self.lib)
            if k.startswith("NVML_DEVICE_ARCH_")
        }
        return names.get(arch, str(arch))

    def mig_enabled(self) -> bool:
        try:
            current, _pending = self.nvml(self.lib.nvmlDeviceGetMigMode, self.handle)
        except GpuError:
            return False
        return bool(current)

    def compute_pids(self) -> list[int]:
        procs = self.nvml(self.lib.nvmlDeviceGetComputeRunningProcesses, self.handle)
        return [int(p.pid) for p in procs]


class PynvmlBackend(GpuBackend):
    """NVML through ``nvml`` (default: the real ``pynvml``); ``nvmlInit`` on construction,
    ``nvmlShutdown`` on :meth:`close`."""

    def __init__(self, nvml: Any = None) -> None:
        if nvml is None:
            try:
                import pynvml
            except ImportError as exc:  # pragma: no cover - it is a dependency
                raise NvmlUnavailableError(
                    "pynvml is not installed", "pip install nvidia-ml-py"
                ) from exc
            nvml = pynvml
        self.nvml = _Nvml(nvml)
        try:
            nvml.nvmlInit()
        except nvml.NVMLError as exc:
            raise NvmlUnavailableError(
                f"NVML could not be initialised ({exc})",
                "Install the NVIDIA driver (libnvidia-ml.so must be on the library path); in a "
                "container, start it with GPU access (`docker run --gpus all`, NVIDIA Container "
                "Toolkit). Check with `nvidia-smi`. Without NVML, GPU energy is not measured.",
            ) from exc
        self._closed = False
        self._devices: list[GpuDevice] | None = None

    @property
    def lib(self) -> Any:
        return self.nvml.lib

    def driver_version(self) -> str:
        return _text(self.nvml(self.lib.nvmlSystemGetDriverVersion))

    def devices(self) -> list[GpuDevice]:
        if self._devices is None:
            n = int(self.nvml(self.lib.nvmlDeviceGetCount))
            self._devices = [
                PynvmlDevice(self.nvml, i, self.nvml(self.lib.nvmlDeviceGetHandleByIndex, i))
                for i in range(n)
            ]
        return self._devices

    def mig_parent_uuid(self, mig_id: str) -> str | None:
        try:
            h = self.nvml(self.lib.nvmlDeviceGetHandleByUUID, mig_id)
            parent = self.nvml(self.lib.nvmlDeviceGetDeviceHandleFromMigDeviceHandle, h)
            return _text(self.nvml(self.lib.nvmlDeviceGetUUID, parent))
        except GpuError:
            pass
        want = mig_id.lower()
        for dev in self.devices():  # a prefix of a MIG UUID: search every instance
            assert isinstance(dev, PynvmlDevice)
            try:
                count = int(self.nvml(self.lib.nvmlDeviceGetMaxMigDeviceCount, dev.handle))
            except GpuError:
                continue
            for i in range(count):
                try:
                    mh = self.nvml(self.lib.nvmlDeviceGetMigDeviceHandleByIndex, dev.handle, i)
                    uuid = _text(self.nvml(self.lib.nvmlDeviceGetUUID, mh))
                except GpuError:
                    continue
                if uuid.lower().startswith(want):
                    return dev.uuid()
        return None

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            try:
                self.lib.nvmlShutdown()
            except self.lib.NVMLError:
                pass
