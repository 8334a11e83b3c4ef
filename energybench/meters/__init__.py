"""Energy measurement: meters (NVML, RAPL, codecarbon estimate) and the monitor.

Phases call :func:`energybench.meters.factory.build_monitor` once per run and open windows on the
returned :class:`~energybench.meters.base.EnergyMonitor`; nothing outside this package talks to
NVML or sysfs. The meters themselves are plug-ins listed in :mod:`energybench.meters.plugins`.
Importing this package (or the plug-in table) must stay cheap: it imports no submodule, and
pynvml, torch and codecarbon are imported only when used.
"""
