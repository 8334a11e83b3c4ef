"""Environment snapshot for the manifest: OS, CPU, RAM, GPUs, library versions, git commit, the
numerics in force (TF32, matmul precision, cudnn.benchmark) and each GPU's settings that change
its numbers: power limit, clocks, persistence mode, ECC, MIG mode and the driver (NVML; with
``--simulate``, the simulated profile's fake NVML, marked so).

Read-only: it queries, never changes, anything on the machine.
"""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path
from typing import Any

from energybench import version
from energybench.run.allocator import allocator_settings


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _ram_bytes() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def git_commit(path: Path | None = None) -> str | None:
    """The commit of the energybench source tree, if it is a git checkout (with '+dirty')."""
    where = path or Path(version.__file__).resolve().parent.parent
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=where,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=where,
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout
        return sha + ("+dirty" if dirty.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def torch_gpus() -> list[dict[str, Any]]:
    """GPUs as torch sees them (names, memory, compute capability)."""
    import torch

    if not torch.cuda.is_available():
        return []
    out = []
    for i in range(torch.cuda.device_count()):
        p = torch.cuda.get_device_properties(i)
        out.append(
            {
                "index": i,
                "name": p.name,
                "total_memory_bytes": p.total_memory,
                "capability": f"{p.major}.{p.minor}",
                "uuid": str(getattr(p, "uuid", "")) or None,
            }
        )
    return out


def _read(fn: Any, *args: Any) -> Any:
    """One NVML read, None when the device does not support it (or it fails)."""
    try:
        return fn(*args)
    except Exception:  # noqa: BLE001 - NVMLError_NotSupported and friends: not recorded
        return None


def _mw_to_w(mw: Any) -> float | None:
    return None if mw is None else mw / 1000.0


def _enabled(value: Any) -> bool | None:
    return None if value is None else bool(value)


def _pair(value: Any) -> dict[str, bool] | None:
    """NVML's [current, pending] feature pair as booleans."""
    if value is None:
        return None
    return {"current": bool(value[0]), "pending": bool(value[1])}


def _handle(nvml: Any, index: int, simulated: bool) -> Any:
    """The NVML handle of torch GPU ``index``: by UUID (what CUDA opened, whatever
    ``CUDA_VISIBLE_DEVICES`` says), by index on a simulated server."""
    if not simulated:
        import torch

        if torch.cuda.is_available() and index < torch.cuda.device_count():
            uuid = str(getattr(torch.cuda.get_device_properties(index), "uuid", "") or "")
            if uuid:
                name = uuid if uuid.startswith(("GPU-", "MIG-")) else f"GPU-{uuid}"
                h = _read(nvml.nvmlDeviceGetHandleByUUID, name)
                if h is not None:
                    return h
    return _read(nvml.nvmlDeviceGetHandleByIndex, index)


def gpu_settings(nvml: Any, indices: list[int], simulated: bool = False) -> dict[str, Any]:
    """Driver and, per GPU (torch index), the settings that change its figures: power limit
    (W; the default too), SM/memory clocks (MHz: current, application, max), persistence
    mode, ECC and MIG mode ([current, pending]). Unsupported reads are None."""
    gpus = []
    for i in indices:
        h = _handle(nvml, i, simulated)
        if h is None:
            continue
        clocks = {}
        for kind, const in (("sm", nvml.NVML_CLOCK_SM), ("memory", nvml.NVML_CLOCK_MEM)):
            clocks[kind] = {
                "current_mhz": _read(nvml.nvmlDeviceGetClockInfo, h, const),
                "applications_mhz": _read(nvml.nvmlDeviceGetApplicationsClock, h, const),
                "max_mhz": _read(nvml.nvmlDeviceGetMaxClockInfo, h, const),
            }
        gpus.append(
            {
                "index": i,
                "name": _read(nvml.nvmlDeviceGetName, h),
                "power_limit_w": _mw_to_w(_read(nvml.nvmlDeviceGetPowerManagementLimit, h)),
                "enforced_power_limit_w": _mw_to_w(_read(nvml.nvmlDeviceGetEnforcedPowerLimit, h)),
                "default_power_limit_w": _mw_to_w(
                    _read(nvml.nvmlDeviceGetPowerManagementDefaultLimit, h)
                ),
                "clocks": clocks,
                "persistence_mode": _enabled(_read(nvml.nvmlDeviceGetPersistenceMode, h)),
                "ecc": _pair(_read(nvml.nvmlDeviceGetEccMode, h)),
                "mig": _pair(_read(nvml.nvmlDeviceGetMigMode, h)),
            }
        )
    return {
        "driver": _read(nvml.nvmlSystemGetDriverVersion),
        "cuda_driver_version": _read(nvml.nvmlSystemGetCudaDriverVersion),
        "gpus": gpus,
    }


def nvml_settings(simulate: str | None, indices: list[int]) -> dict[str, Any] | None:
    """:func:`gpu_settings` through NVML (or the ``simulate`` profile's fake NVML), or None
    when NVML cannot be opened here (no NVIDIA driver)."""
    if not indices and not simulate:
        return None
    if simulate:
        from energybench.meters.sim.profiles import simulated_nvml

        nvml: Any = simulated_nvml(simulate)
    else:
        try:
            import pynvml

            nvml = pynvml
        except ImportError:
            return None
    try:
        nvml.nvmlInit()
    except Exception:  # noqa: BLE001 - no driver, no library: nothing to record
        return None
    try:
        out = gpu_settings(nvml, indices or [0], simulated=bool(simulate))
    finally:
        _read(nvml.nvmlShutdown)  # NVML counts inits: the meters' session stays open
    return {**out, "simulated": bool(simulate)}


def snapshot(simulate: str | None = None, gpus: list[int] | None = None) -> dict[str, Any]:
    """Everything about this machine a reader needs to interpret the numbers; ``gpus``: the
    torch indices of the GPUs the run uses (their NVML settings are recorded)."""
    import torch

    from energybench.run.numerics import read_numerics

    return {
        "os": platform.platform(),
        "python": platform.python_version(),
        "hostname": platform.node(),
        "cpu": {
            "name": _cpu_name(),
            "logical_cores": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
        },
        "ram_bytes": _ram_bytes(),
        "allocator": allocator_settings(),
        "gpus": torch_gpus(),
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "versions": {
            "energybench": version.__version__,
            "torch": torch.__version__,
            "cuda": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version() if torch.cuda.is_available() else None,
        },
        "energybench_commit": git_commit(),
        "numerics": read_numerics(),
        "gpu_settings": nvml_settings(simulate, list(gpus or [])),
    }
