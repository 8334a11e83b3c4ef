"""NVIDIA GPU energy through NVML: the device seam, GPU selection, and the NVML meter.

Two channels per GPU:

* **counter** — ``nvmlDeviceGetTotalEnergyConsumption`` (mJ since driver load, Volta and newer)
  read at both window edges. Primary where supported.
* **integrated** — a background :class:`~energybench.meters.sampler.PowerSampler` reading
  instantaneous power (``NVML_FI_DEV_POWER_INSTANT``; falling back to
  ``nvmlDeviceGetPowerUsage``, a ~1 s average on Ampere and newer), trapezoid-integrated.
  Primary before Volta, a cross-check elsewhere.

Everything NVML-specific sits behind :class:`GpuDevice` / :class:`GpuBackend`, so that
:mod:`energybench.meters.sim` can replay traces through the very same meter code.
This module only *reads*: it must never change clocks, power limits, persistence or any other
GPU setting, and ``NvmlMeter.end`` must never raise (an unmeasurable GPU is ``energy_j=None``
or ``complete=False`` with the reason in ``issues``).
"""

from __future__ import annotations

import math
import os
import re
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from energybench.meters.base import SYSTEM_CLOCK, Clock, DeviceEnergy, Meter, Source
from energybench.meters.sampler import PowerSampler, Reading, WindowStats

#: NVML power sensor accuracy assumed for both channels (relative, ~1 sigma). NVIDIA documents
#: power readings as accurate to about +/-5 % of the current draw on recent data-centre GPUs.
SENSOR_REL_UNCERTAINTY = 0.05
#: Update period assumed when it could not be probed (s); ~100 ms on current GPUs.
ASSUMED_UPDATE_PERIOD_S = 0.1
#: Averaging window of ``nvmlDeviceGetPowerUsage`` on Ampere and newer (s).
POWER_USAGE_AVERAGE_S = 1.0
TRACE_FILE = "power-nvml.csv"


# =============================================================================== errors
class GpuError(Exception):
    """An NVML call failed (base class)."""


class GpuNotSupportedError(GpuError):
    """The query is not supported on this GPU or driver (e.g. the energy counter pre-Volta)."""


class GpuLostError(GpuError):
    """The GPU fell off the bus or needs a reset (NVML_ERROR_GPU_IS_LOST)."""


class NvmlUnavailableError(GpuError):
    """NVML could not be initialised; ``reason`` says why, ``fix`` what to do."""

    def __init__(self, reason: str, fix: str = "") -> None:
        super().__init__(f"{reason}. {fix}" if fix else reason)
        self.reason, self.fix = reason, fix


class GpuSelectionError(GpuError):
    """The GPUs the run uses cannot be mapped to NVML devices; ``str()`` says why."""


# =============================================================================== the seam
class GpuDevice(ABC):
    """One physical GPU, read-only. Units: mJ, mW, degC, MHz, %."""

    index: int = 0  # NVML index (PCI bus order)

    @abstractmethod
    def uuid(self) -> str:
        """NVML UUID, e.g. ``"GPU-8932f937-..."``."""

    @abstractmethod
    def name(self) -> str:
        """Product name, e.g. ``"NVIDIA H100 80GB HBM3"``."""

    @abstractmethod
    def total_energy_mj(self) -> int:
        """Energy since driver load in mJ (raises GpuNotSupportedError before Volta)."""

    @abstractmethod
    def power_instant_mw(self) -> int:
        """Instantaneous power in mW (``NVML_FI_DEV_POWER_INSTANT``)."""

    @abstractmethod
    def power_usage_mw(self) -> int:
        """Power in mW from ``nvmlDeviceGetPowerUsage`` (~1 s average on Ampere+)."""

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


class GpuBackend(ABC):
    """Enumerates GPUs (NVML or simulated)."""

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


# =============================================================================== pynvml
def _map_nvml_error(exc: Exception) -> GpuError:
    import pynvml

    code = getattr(exc, "value", None)
    msg = f"{exc} (NVML error {code})"
    if code == pynvml.NVML_ERROR_GPU_IS_LOST:
        return GpuLostError(msg)
    if code in (pynvml.NVML_ERROR_NOT_SUPPORTED, pynvml.NVML_ERROR_FUNCTION_NOT_FOUND):
        return GpuNotSupportedError(msg)
    return GpuError(msg)


def _nvml_call(fn: Callable[..., Any], *args: Any) -> Any:
    import pynvml

    try:
        return fn(*args)
    except pynvml.NVMLError as exc:
        raise _map_nvml_error(exc) from exc


def _text(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


class PynvmlDevice(GpuDevice):
    """A real GPU through pynvml (nvidia-ml-py). Only ``nvmlDeviceGet*`` calls are made."""

    def __init__(self, index: int, handle: Any) -> None:
        self.index, self.handle = index, handle

    def uuid(self) -> str:
        import pynvml

        return _text(_nvml_call(pynvml.nvmlDeviceGetUUID, self.handle))

    def name(self) -> str:
        import pynvml

        return _text(_nvml_call(pynvml.nvmlDeviceGetName, self.handle))

    def total_energy_mj(self) -> int:
        import pynvml

        return int(_nvml_call(pynvml.nvmlDeviceGetTotalEnergyConsumption, self.handle))

    def power_instant_mw(self) -> int:
        import pynvml

        fid = getattr(pynvml, "NVML_FI_DEV_POWER_INSTANT", None)
        if fid is None:
            raise GpuNotSupportedError("this pynvml has no NVML_FI_DEV_POWER_INSTANT")
        v = _nvml_call(pynvml.nvmlDeviceGetFieldValues, self.handle, [fid])[0]
        if v.nvmlReturn != pynvml.NVML_SUCCESS:
            raise _map_nvml_error(pynvml.NVMLError(v.nvmlReturn))
        kind = {
            0: "dVal",
            1: "uiVal",
            2: "ulVal",
            3: "ullVal",
            4: "sllVal",
            5: "siVal",
            6: "usVal",
        }.get(int(v.valueType), "uiVal")
        return int(getattr(v.value, kind))

    def power_usage_mw(self) -> int:
        import pynvml

        return int(_nvml_call(pynvml.nvmlDeviceGetPowerUsage, self.handle))

    def temperature_c(self) -> float:
        import pynvml

        return float(
            _nvml_call(pynvml.nvmlDeviceGetTemperature, self.handle, pynvml.NVML_TEMPERATURE_GPU)
        )

    def sm_clock_mhz(self) -> float:
        import pynvml

        return float(_nvml_call(pynvml.nvmlDeviceGetClockInfo, self.handle, pynvml.NVML_CLOCK_SM))

    def utilization_pct(self) -> float:
        import pynvml

        return float(_nvml_call(pynvml.nvmlDeviceGetUtilizationRates, self.handle).gpu)

    def power_limit_mw(self) -> int | None:
        import pynvml

        try:
            return int(_nvml_call(pynvml.nvmlDeviceGetEnforcedPowerLimit, self.handle))
        except GpuError:
            return None

    def architecture(self) -> str | None:
        import pynvml

        try:
            arch = int(_nvml_call(pynvml.nvmlDeviceGetArchitecture, self.handle))
        except GpuError:
            return None
        names = {
            getattr(pynvml, k): k[len("NVML_DEVICE_ARCH_") :].lower()
            for k in dir(pynvml)
            if k.startswith("NVML_DEVICE_ARCH_")
        }
        return names.get(arch, str(arch))

    def mig_enabled(self) -> bool:
        import pynvml

        try:
            current, _pending = _nvml_call(pynvml.nvmlDeviceGetMigMode, self.handle)
        except GpuError:
            return False
        return bool(current)


class PynvmlBackend(GpuBackend):
    """NVML through pynvml; ``nvmlInit`` on construction, ``nvmlShutdown`` on :meth:`close`."""

    def __init__(self) -> None:
        try:
            import pynvml
        except ImportError as exc:  # pragma: no cover - it is a dependency
            raise NvmlUnavailableError(
                "pynvml is not installed", "pip install nvidia-ml-py"
            ) from exc
        try:
            pynvml.nvmlInit()
        except pynvml.NVMLError as exc:
            raise NvmlUnavailableError(
                f"NVML could not be initialised ({exc})",
                "Install the NVIDIA driver (libnvidia-ml.so must be on the library path); in a "
                "container, start it with GPU access (`docker run --gpus all`, NVIDIA Container "
                "Toolkit). Check with `nvidia-smi`. Without NVML, GPU energy is not measured.",
            ) from exc
        self._closed = False
        self._devices: list[GpuDevice] | None = None

    def driver_version(self) -> str:
        import pynvml

        return _text(_nvml_call(pynvml.nvmlSystemGetDriverVersion))

    def devices(self) -> list[GpuDevice]:
        import pynvml

        if self._devices is None:
            n = int(_nvml_call(pynvml.nvmlDeviceGetCount))
            self._devices = [
                PynvmlDevice(i, _nvml_call(pynvml.nvmlDeviceGetHandleByIndex, i)) for i in range(n)
            ]
        return self._devices

    def mig_parent_uuid(self, mig_id: str) -> str | None:
        import pynvml

        try:
            h = _nvml_call(pynvml.nvmlDeviceGetHandleByUUID, mig_id)
            parent = _nvml_call(pynvml.nvmlDeviceGetDeviceHandleFromMigDeviceHandle, h)
            return _text(_nvml_call(pynvml.nvmlDeviceGetUUID, parent))
        except GpuError:
            pass
        want = mig_id.lower()
        for dev in self.devices():  # a prefix of a MIG UUID: search every instance
            assert isinstance(dev, PynvmlDevice)
            try:
                count = int(_nvml_call(pynvml.nvmlDeviceGetMaxMigDeviceCount, dev.handle))
            except GpuError:
                continue
            for i in range(count):
                try:
                    mh = _nvml_call(pynvml.nvmlDeviceGetMigDeviceHandleByIndex, dev.handle, i)
                    if _text(_nvml_call(pynvml.nvmlDeviceGetUUID, mh)).lower().startswith(want):
                        return dev.uuid()
                except GpuError:
                    continue
        return None

    def close(self) -> None:
        import pynvml

        if not self._closed:
            self._closed = True
            try:
                pynvml.nvmlShutdown()
            except pynvml.NVMLError:
                pass


# =============================================================================== GPU selection
@dataclass
class GpuTarget:
    """A GPU the run uses: the NVML device, its torch position and notes for every record."""

    device: GpuDevice
    cuda_position: int | None = None
    mig_id: str | None = None
    issues: list[str] = field(default_factory=list)


def _norm_uuid(u: str) -> str:
    u = u.strip().lower()
    return u[4:] if u.startswith("gpu-") else u


def visible_gpus(
    env: str | None, backend: GpuBackend, order: str | None = None
) -> tuple[list[tuple[GpuDevice, str | None]], list[str]]:
    """Map ``CUDA_VISIBLE_DEVICES`` to NVML devices, in CUDA (torch) order.

    Entries may be NVML indices, GPU UUIDs or unique UUID prefixes (with or without ``GPU-``)
    and MIG ids (``MIG-<uuid>`` or ``MIG-GPU-<uuid>/<gi>/<ci>``; mapped to their parent GPU).
    As in CUDA, the list stops at the first invalid entry; ``""`` means no GPU; unset means all.
    Returns ``[(device, mig_id or None), ...]`` and notes.
    """
    gpus = backend.devices()
    notes: list[str] = []
    if env is None:
        if len(gpus) > 1 and (order or "").upper() != "PCI_BUS_ID":
            notes.append(
                "CUDA_VISIBLE_DEVICES is unset and CUDA_DEVICE_ORDER is not PCI_BUS_ID: CUDA may "
                "number GPUs fastest-first while NVML uses PCI order; set "
                "CUDA_DEVICE_ORDER=PCI_BUS_ID to be sure the right GPUs are measured"
            )
        return [(g, None) for g in gpus], notes
    by_uuid = {_norm_uuid(g.uuid()): g for g in gpus}
    out: list[tuple[GpuDevice, str | None]] = []
    seen: set[str] = set()
    for tok in (t.strip() for t in env.split(",")):
        dev: GpuDevice | None = None
        mig: str | None = None
        if re.fullmatch(r"-?\d+", tok):
            i = int(tok)
            dev = gpus[i] if 0 <= i < len(gpus) else None
        elif tok.lower().startswith("mig-"):
            mig = tok
            m = re.fullmatch(r"(?i)mig-(gpu-[0-9a-f-]+)/\d+/\d+", tok)
            parent = m.group(1) if m else backend.mig_parent_uuid(tok)
            dev = by_uuid.get(_norm_uuid(parent)) if parent else None
        elif tok:
            hits = [g for u, g in by_uuid.items() if u.startswith(_norm_uuid(tok))]
            dev = hits[0] if len(hits) == 1 else None
        if dev is None or (mig is None and dev.uuid() in seen):
            if tok:
                notes.append(
                    f"CUDA_VISIBLE_DEVICES entry '{tok}' matches no single GPU: CUDA ignores it "
                    "and every entry after it"
                )
            break
        seen.add(dev.uuid())
        out.append((dev, mig))
    return out, notes


def select_gpus(
    backend: GpuBackend,
    cuda_devices: Sequence[int] | None,
    env: str | None = None,
    torch_uuids: Sequence[str] | None = None,
    order: str | None = None,
) -> list[GpuTarget]:
    """The NVML devices behind torch devices ``cuda_devices`` (positions in CUDA's list).

    ``env`` is ``CUDA_VISIBLE_DEVICES`` (read from the environment when not given; pass ``""``
    explicitly for "no GPU"). ``torch_uuids`` (``torch.cuda.get_device_properties(i).uuid`` per
    position) wins over the environment when given, since it is what CUDA actually opened.
    ``cuda_devices=None`` selects every visible GPU. Each physical GPU appears once; MIG
    instances are reported as their parent GPU with a warning in ``issues``.
    Raises :class:`GpuSelectionError` when a position has no GPU.
    """
    if env is None:
        env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if order is None:
        order = os.environ.get("CUDA_DEVICE_ORDER")
    visible, notes = visible_gpus(env, backend, order)
    by_uuid = {_norm_uuid(g.uuid()): g for g in backend.devices()}
    positions = list(range(len(visible))) if cuda_devices is None else list(cuda_devices)
    targets: dict[str, GpuTarget] = {}
    for pos in positions:
        dev: GpuDevice | None = None
        mig: str | None = None
        if torch_uuids is not None and 0 <= pos < len(torch_uuids):
            u = _norm_uuid(str(torch_uuids[pos]))
            dev = by_uuid.get(u)
            if dev is None:
                mig = u if u.startswith("mig-") else f"MIG-{u}"
                parent = backend.mig_parent_uuid(mig)
                dev = by_uuid.get(_norm_uuid(parent)) if parent else None
                mig = mig if dev is not None else None
        if dev is None:
            if not 0 <= pos < len(visible):
                raise GpuSelectionError(
                    f"cuda:{pos} is used but only {len(visible)} GPU(s) are visible "
                    f"(CUDA_VISIBLE_DEVICES={env!r}; NVML sees {len(backend.devices())}). "
                    + " ".join(notes)
                )
            dev, mig = visible[pos]
        uuid = dev.uuid()
        tgt = targets.get(uuid)
        if tgt is None:
            tgt = targets[uuid] = GpuTarget(dev, cuda_position=pos, issues=list(notes))
        if mig is not None or dev.mig_enabled():
            tgt.mig_id = mig
            warn = (
                f"MIG instance {mig or '(MIG mode on)'}: NVML reports energy for the whole "
                f"parent GPU {uuid}, shared with every other instance on it"
            )
            if warn not in tgt.issues:
                tgt.issues.append(warn)
    return list(targets.values())


# =============================================================================== probing
@dataclass
class UpdatePeriods:
    """Observed update periods in s (None: not seen to change while probing)."""

    counter_s: float | None = None
    power_s: float | None = None
    probe_s: float = 0.0


def _median_period(times: list[float]) -> float | None:
    if len(times) < 3:
        return None
    diffs = sorted(b - a for a, b in zip(times[:-1], times[1:], strict=True))
    return diffs[len(diffs) // 2]


def probe_update_periods(
    read_counter: Callable[[], float] | None,
    read_power: Callable[[], float] | None,
    clock: Clock = SYSTEM_CLOCK,
    max_s: float = 1.0,
    changes: int = 5,
    poll_s: float = 0.002,
) -> UpdatePeriods:
    """Poll the counter and power as fast as ``poll_s`` allows and time their changes (as Zeus
    does): the median gap between value changes is the update period. Stops after ``changes``
    changes of each channel or ``max_s`` seconds.
    """
    t_start = clock.time()
    readers = {k: f for k, f in (("counter", read_counter), ("power", read_power)) if f}
    last: dict[str, float] = {}
    seen: dict[str, list[float]] = {k: [] for k in readers}
    for k, f in list(readers.items()):
        try:
            last[k] = f()
        except GpuError:
            readers.pop(k)
    while readers and clock.time() - t_start < max_s:
        if all(len(seen[k]) > changes for k in readers):
            break
        clock.sleep(poll_s)
        for k, f in list(readers.items()):
            try:
                v = f()
            except GpuError:
                readers.pop(k)
                continue
            if v != last[k]:
                seen[k].append(clock.time())
                last[k] = v
    return UpdatePeriods(
        counter_s=_median_period(seen.get("counter", [])),
        power_s=_median_period(seen.get("power", [])),
        probe_s=clock.time() - t_start,
    )


# =============================================================================== uncertainty
def counter_uncertainty_j(energy_j: float, duration_s: float, update_period_s: float) -> float:
    """~1 sigma of a counter delta in J: sensor accuracy (5 % of the energy) plus edge effects.

    The counter advances every ``update_period_s``; each edge can miss up to one period of energy,
    counted as ``update_period_s x mean power`` for both edges together. Added linearly
    (conservative).
    """
    mean_w = energy_j / duration_s if duration_s > 0 else 0.0
    return SENSOR_REL_UNCERTAINTY * energy_j + update_period_s * mean_w


def integrated_uncertainty_j(
    energy_j: float, duration_s: float, effective_period_s: float, stats: WindowStats | None
) -> float:
    """~1 sigma of sampled-and-integrated energy in J.

    Sensor accuracy (5 %) + edge effects (``effective_period_s x mean power``, the period being
    the slower of sampling and sensor update) + sampling error of the mean power
    (``duration x std / sqrt(n)``). Note the instantaneous sensor observes only part of each
    update period on A100/H100 (~25 ms of 100 ms, Yang et al. SC'24), so short bursty loads can
    be off by more than this: use windows of >= 5 s and the counter where available.
    """
    mean_w = energy_j / duration_s if duration_s > 0 else 0.0
    sampling = 0.0
    if stats is not None and stats.samples > 1:
        sampling = duration_s * stats.std_w / math.sqrt(stats.samples)
    return SENSOR_REL_UNCERTAINTY * energy_j + effective_period_s * mean_w + sampling


# =============================================================================== the meter
@dataclass
class _Gpu:
    target: GpuTarget
    id: str
    uuid: str
    name: str
    counter_ok: bool = False
    power_channel: str | None = None  # "instant" | "average" | None
    periods: UpdatePeriods = field(default_factory=UpdatePeriods)
    notes: list[str] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)
    aux_off: set[str] = field(default_factory=set)  # extras found unsupported


@dataclass
class _Edge:
    counter_mj: int | None
    error: str | None
    cum_j: float | None


@dataclass
class _Window:
    t0: float
    edges: dict[str, _Edge]


class NvmlMeter(Meter):
    """Energy of the GPUs a run uses: counter deltas first, integrated power as cross-check.

    ``targets`` are the GPUs to measure (see :func:`select_gpus`). ``sample_period_s`` is the
    power sampling period; ``cross_check_threshold`` the relative disagreement between the two
    channels that sets ``cross_check["flag"]`` (only judged on windows long enough for edge
    effects to stay below the threshold: ``min_window_s = 2 x update period / threshold``).
    ``probe_s`` bounds the update-period probe at :meth:`start` (0 skips it and assumes
    100 ms). ``background=False`` samples only at window edges and when :meth:`poll` is
    called (for virtual-clock tests). The power trace goes to ``trace_dir/power-nvml.csv``.
    """

    name = "nvml"

    def __init__(
        self,
        targets: Sequence[GpuTarget | GpuDevice],
        *,
        driver_version: str | None = None,
        sample_period_s: float = 0.05,
        cross_check_threshold: float = 0.10,
        trace_dir: Path | None = None,
        clock: Clock | None = None,
        probe_s: float = 1.0,
        background: bool = True,
        on_close: Callable[[], None] | None = None,
    ) -> None:
        self.clock: Clock = clock or SYSTEM_CLOCK
        self.sample_period_s = sample_period_s
        self.cross_check_threshold = cross_check_threshold
        self.trace_path = trace_dir / TRACE_FILE if trace_dir is not None else None
        self.probe_s, self.background = probe_s, background
        self.driver_version = driver_version
        self._on_close = on_close
        self._gpus: list[_Gpu] = []
        for t in targets:
            tgt = t if isinstance(t, GpuTarget) else GpuTarget(t)
            uuid = tgt.device.uuid()
            self._gpus.append(_Gpu(tgt, f"gpu:{uuid}", uuid, tgt.device.name()))
        self.sampler: PowerSampler | None = None
        self._windows: dict[str, _Window] = {}
        self._lock = threading.RLock()
        self._closed = False

    # ------------------------------------------------------------------ setup
    def _setup(self) -> None:
        if self.sampler is not None:
            return
        readers: dict[str, Callable[[], Reading]] = {}
        for g in self._gpus:
            dev = g.target.device
            try:
                dev.total_energy_mj()
                g.counter_ok = True
            except GpuNotSupportedError:
                g.notes.append(
                    "no energy counter (needs Volta or newer): energy is integrated power"
                )
            except GpuError as exc:
                g.notes.append(f"energy counter unreadable at start ({exc})")
            for channel, fn in (("instant", dev.power_instant_mw), ("average", dev.power_usage_mw)):
                try:
                    fn()
                    g.power_channel = channel
                    break
                except GpuError:
                    continue
            if g.power_channel == "average":
                g.notes.append(
                    "instantaneous power not available: sampling nvmlDeviceGetPowerUsage "
                    f"(a ~{POWER_USAGE_AVERAGE_S:g} s average on Ampere and newer)"
                )
            elif g.power_channel is None:
                g.notes.append("power is not readable: no integrated channel")
            if self.probe_s > 0:
                g.periods = probe_update_periods(
                    dev.total_energy_mj if g.counter_ok else None,
                    self._power_fn(g) if g.power_channel else None,
                    self.clock,
                    max_s=self.probe_s,
                )
            limit = dev.power_limit_mw()
            g.info = {
                "index": dev.index,
                "uuid": g.uuid,
                "name": g.name,
                "driver": self.driver_version,
                "architecture": dev.architecture(),
                "cuda_position": g.target.cuda_position,
                "mig": g.target.mig_id,
                "power_limit_w": limit / 1000 if limit is not None else None,
                "counter_supported": g.counter_ok,
                "power_channel": g.power_channel,
            }
            if g.power_channel:
                readers[g.id] = self._reader(g)
        self.sampler = PowerSampler(
            readers, period_s=self.sample_period_s, clock=self.clock, trace_path=self.trace_path
        )

    def _power_fn(self, g: _Gpu) -> Callable[[], float]:
        dev = g.target.device
        return dev.power_instant_mw if g.power_channel == "instant" else dev.power_usage_mw

    def _reader(self, g: _Gpu) -> Callable[[], Reading]:
        power = self._power_fn(g)
        dev = g.target.device
        extras = (
            ("temp", dev.temperature_c),
            ("clock", dev.sm_clock_mhz),
            ("util", dev.utilization_pct),
        )

        def read() -> Reading:
            p_w = power() / 1000.0
            vals: list[float | None] = []
            for key, fn in extras:
                v = None
                if key not in g.aux_off:
                    try:
                        v = fn()
                    except GpuNotSupportedError:
                        g.aux_off.add(key)
                vals.append(v)
            return Reading(p_w, *vals)

        return read

    def temperatures_c(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for g in self._gpus:
            try:
                out[g.id] = float(g.target.device.temperature_c())
            except Exception:  # noqa: BLE001 - unsupported or lost: no figure for this GPU
                continue
        return out

    def counter_period_s(self, g: _Gpu) -> float:
        return g.periods.counter_s or ASSUMED_UPDATE_PERIOD_S

    def effective_power_period_s(self, g: _Gpu) -> float:
        sensor = g.periods.power_s or ASSUMED_UPDATE_PERIOD_S
        if g.power_channel == "average":
            sensor = max(sensor, POWER_USAGE_AVERAGE_S)
        return max(sensor, self.sample_period_s)

    # ------------------------------------------------------------------ Meter API
    def start(self) -> None:
        with self._lock:
            self._setup()
            assert self.sampler is not None
            if self.background:
                self.sampler.start()

    def close(self) -> None:
        with self._lock:
            if self.sampler is not None:
                self.sampler.stop()
            if self._on_close is not None and not self._closed:
                self._on_close()
            self._closed = True

    def poll(self) -> None:
        """Take one power sample of every GPU now (what the background thread does)."""
        self._setup()
        assert self.sampler is not None
        self.sampler.poll()

    def _read_counter(self, g: _Gpu) -> tuple[int | None, str | None]:
        if not g.counter_ok:
            return None, None
        try:
            return g.target.device.total_energy_mj(), None
        except GpuLostError as exc:
            return None, f"GPU lost: {exc}"
        except GpuError as exc:
            return None, f"{type(exc).__name__}: {exc}"

    def begin(self, key: str) -> None:
        with self._lock:
            self.poll()
            assert self.sampler is not None
            t0 = self.clock.time()
            edges: dict[str, _Edge] = {}
            for g in self._gpus:
                c0, err = self._read_counter(g)
                cum = None
                if g.power_channel and not self.sampler.failing(g.id):
                    cum = self.sampler.cum_energy_j(g.id, t0)
                edges[g.id] = _Edge(c0, err, cum)
            self.sampler.open_window(key)
            self._windows[key] = _Window(t0, edges)

    def end(self, key: str) -> list[DeviceEnergy]:
        with self._lock:
            try:
                self.poll()
            except Exception:  # never raise out of end()
                pass
            t1 = self.clock.time()
            win = self._windows.pop(key, None)
            stats = self.sampler.close_window(key) if self.sampler else {}
            out: list[DeviceEnergy] = []
            for g in self._gpus:
                try:
                    if win is None:
                        raise KeyError(f"window '{key}' was not opened on the NVML meter")
                    out.append(self._energy(g, win, t1, stats.get(g.id)))
                except Exception as exc:
                    out.append(
                        DeviceEnergy(
                            device=g.id,
                            kind="gpu",
                            name=g.name,
                            source=Source.NVML_COUNTER,
                            energy_j=None,
                            complete=False,
                            issues=[*g.target.issues, *g.notes, f"measurement failed: {exc!r}"],
                        )
                    )
            return out

    def _energy(self, g: _Gpu, win: _Window, t1: float, stats: WindowStats | None) -> DeviceEnergy:
        assert self.sampler is not None
        duration = max(t1 - win.t0, 0.0)
        edge = win.edges[g.id]
        issues = [*g.target.issues, *g.notes]
        complete = True
        t_counter = self.counter_period_s(g)
        t_power = self.effective_power_period_s(g)

        integrated: float | None = None
        lost_sampling = False
        if g.power_channel and edge.cum_j is not None:
            cum1 = self.sampler.cum_energy_j(g.id, t1)
            if cum1 is not None:
                integrated = max(cum1 - edge.cum_j, 0.0)
            if self.sampler.failing(g.id):
                lost_sampling = True
                last = self.sampler.last_sample(g.id)
                when = f" after {last[0] - win.t0:.3f} s" if last else ""
                issues.append(
                    f"power sampling failed{when} ({self.sampler.last_error(g.id)}): integrated "
                    "energy covers only the part of the window before that"
                )
                complete = False

        counter: float | None = None
        if g.counter_ok:
            c1, err1 = self._read_counter(g)
            if edge.error or err1:
                complete = False
                issues.append(
                    f"energy counter unreadable at window {'start' if edge.error else 'end'} "
                    f"({edge.error or err1})"
                )
            elif edge.counter_mj is not None and c1 is not None:
                if c1 < edge.counter_mj:
                    complete = False
                    issues.append(
                        f"energy counter went backwards ({edge.counter_mj} -> {c1} mJ): counter "
                        "reset (driver reload or GPU reset?); energy from integrated power"
                    )
                else:
                    counter = (c1 - edge.counter_mj) / 1000.0

        if duration < t_counter and g.counter_ok:
            issues.append(
                f"window of {duration:.3f} s is shorter than the counter update period "
                f"({t_counter:.3f} s): the figure is mostly edge effects"
            )

        source, energy, sigma = Source.NVML_COUNTER, None, None
        if counter is not None and counter > 0:
            energy, sigma = counter, counter_uncertainty_j(counter, duration, t_counter)
        elif integrated is not None:
            source, energy = Source.NVML_INTEGRATED, integrated
            sigma = integrated_uncertainty_j(integrated, duration, t_power, stats)
            if counter == 0.0 and duration > 0:
                issues.append(
                    f"energy counter did not advance in {duration:.3f} s (update period "
                    f"{t_counter:.3f} s): energy from sampled power, uncertainty >= 100 %"
                )
                sigma = max(sigma, integrated)
        elif counter == 0.0:
            energy, complete = None, False
            issues.append("energy counter did not advance and no power samples: not measured")
        else:
            complete = False
            issues.append("no usable channel for this window: not measured")

        cross: dict[str, Any] | None = None
        if counter is not None and counter > 0 and integrated is not None and not lost_sampling:
            rel = abs(integrated - counter) / counter
            min_s = 2 * max(t_counter, t_power) / self.cross_check_threshold
            cross = {
                "integrated_j": integrated,
                "counter_j": counter,
                "rel_diff": rel,
                "flag": bool(rel > self.cross_check_threshold and duration >= min_s),
                "min_window_s": min_s,
            }
        return DeviceEnergy(
            device=g.id,
            kind="gpu",
            name=g.name,
            source=source,
            energy_j=energy,
            uncertainty_j=sigma,
            mean_power_w=(energy / duration) if energy is not None and duration > 0 else None,
            peak_power_w=stats.peak_w if stats else None,
            samples=stats.samples if stats else 0,
            complete=complete,
            issues=issues,
            cross_check=cross,
        )

    def live_power_w(self) -> float | None:
        if self.sampler is None:
            return None
        vals = []
        for g in self._gpus:
            if g.power_channel and not self.sampler.failing(g.id):
                last = self.sampler.last_sample(g.id)
                if last is not None:
                    vals.append(last[1])
        return sum(vals) if vals else None

    def update_period_s(self) -> float | None:
        if not self._gpus:
            return None
        return max(
            self.counter_period_s(g) if g.counter_ok else self.effective_power_period_s(g)
            for g in self._gpus
        )

    def describe(self) -> list[dict[str, Any]]:
        out = []
        for g in self._gpus:
            d: dict[str, Any] = {
                "device": g.id,
                "index": g.target.device.index,
                "uuid": g.uuid,
                "name": g.name,
                "driver": self.driver_version,
                "cuda_position": g.target.cuda_position,
                "mig": g.target.mig_id,
                **g.info,
            }
            d.update(
                counter_update_period_s=g.periods.counter_s,
                power_update_period_s=g.periods.power_s,
                update_period_probe_s=g.periods.probe_s,
                assumed_update_period_s=ASSUMED_UPDATE_PERIOD_S,
                sample_period_s=self.sample_period_s,
                trace=str(self.trace_path) if self.trace_path else None,
                notes=[*g.target.issues, *g.notes],
            )
            out.append(d)
        return out
