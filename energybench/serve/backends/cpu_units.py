"""Which reduced-precision matrix units this CPU has (bf16: AMX/AVX512-BF16; int8: AMX/VNNI).

A bf16 or int8 serving path is only worth serving where the CPU runs it in hardware: elsewhere
oneDNN emulates bf16 with fp32 arithmetic plus conversions, and int8 convolutions fall back to
slow AVX2 paths, so the "fast" variant would be slower than fp32 and its energy misleading.
``energybench validate`` refuses such an entry with :func:`missing_units`' reason.

The flags come from ``/proc/cpuinfo``. Seams for tests and for checking a suite against
another machine: the ``ENERGYBENCH_CPU_FLAGS`` environment variable (space- or comma-separated
flags, e.g. ``"avx2 fma"`` for an AVX2-only CPU) replaces the probe, and so does assigning a
function to :data:`probe`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

#: environment variable that replaces the CPU-flag probe (space- or comma-separated flags)
FLAGS_ENV = "ENERGYBENCH_CPU_FLAGS"

#: the flags that give a dtype hardware matrix units, best first
UNITS: dict[str, tuple[str, ...]] = {
    "bf16": ("amx_bf16", "avx512_bf16"),
    "int8": ("amx_int8", "avx512_vnni", "avx_vnni"),
}


def proc_cpuinfo_flags() -> set[str]:
    """The CPU's feature flags from ``/proc/cpuinfo`` (empty where there is none)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


#: the probe used when ``ENERGYBENCH_CPU_FLAGS`` is unset (tests may replace it)
probe: Callable[[], set[str]] = proc_cpuinfo_flags


def cpu_flags() -> set[str]:
    """This CPU's flags: ``ENERGYBENCH_CPU_FLAGS`` when set, else :data:`probe`."""
    forced = os.environ.get(FLAGS_ENV)
    if forced is not None:
        return set(forced.replace(",", " ").split())
    return probe()


def units(dtype: str, flags: set[str] | None = None) -> list[str]:
    """The flags giving ``dtype`` (bf16/int8) hardware units here, best first (empty: none)."""
    have = cpu_flags() if flags is None else flags
    return [f for f in UNITS.get(dtype, ()) if f in have]


def missing_units(dtype: str, flags: set[str] | None = None) -> str | None:
    """Why ``dtype`` cannot be served fast on this CPU (a sentence), or None when it can."""
    if dtype not in UNITS or units(dtype, flags):
        return None
    forced = f" ({FLAGS_ENV} is set)" if os.environ.get(FLAGS_ENV) is not None else ""
    return (
        f"this CPU has no {dtype} matrix units (none of {', '.join(UNITS[dtype])} in its "
        f"flags{forced}): {dtype} would be emulated and slower than fp32; serve fp32 here"
    )
