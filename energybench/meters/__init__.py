"""Energy measurement: meters (NVML, RAPL, codecarbon estimate) and the monitor.

Phases call :func:`build_monitor` once per run and open windows on the returned
:class:`EnergyMonitor`; nothing outside this package talks to NVML or sysfs. Importing this
package must stay cheap: pynvml, torch and codecarbon are imported only when used.
"""

from __future__ import annotations

from energybench.meters.base import (
    FLAG_BELOW_MIN_WINDOW,
    FLAG_CHANNELS_DISAGREE,
    FLAG_ESTIMATE,
    FLAG_INCOMPLETE,
    FLAG_METER_ERROR,
    FLAG_SHARED_DEVICE,
    FLAG_SHORT_WINDOW,
    FLAG_SIMULATED,
    SYSTEM_CLOCK,
    Clock,
    DeviceEnergy,
    EnergyMonitor,
    Measurement,
    Meter,
    MeterStatus,
    Source,
    SystemClock,
    WindowHandle,
)
from energybench.meters.factory import (
    SIMULATE_PROFILES,
    MeterUnavailableError,
    UnknownProfileError,
    build_monitor,
    probe_meters,
    simulated_gpu_count,
)

__all__ = [
    "FLAG_BELOW_MIN_WINDOW",
    "FLAG_CHANNELS_DISAGREE",
    "FLAG_ESTIMATE",
    "FLAG_INCOMPLETE",
    "FLAG_METER_ERROR",
    "FLAG_SHARED_DEVICE",
    "FLAG_SHORT_WINDOW",
    "FLAG_SIMULATED",
    "SIMULATE_PROFILES",
    "SYSTEM_CLOCK",
    "Clock",
    "DeviceEnergy",
    "EnergyMonitor",
    "Measurement",
    "Meter",
    "MeterStatus",
    "MeterUnavailableError",
    "Source",
    "SystemClock",
    "UnknownProfileError",
    "WindowHandle",
    "build_monitor",
    "probe_meters",
    "simulated_gpu_count",
]
