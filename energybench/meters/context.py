"""What a meter plug-in's ``build`` and ``probe`` get (:class:`MeterContext`).

Apart from the meter table (:mod:`energybench.meters.plugins`), which the suite schema reads and
so must not know the suite's types.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from energybench.meters.base import Clock
    from energybench.suite.energy import EnergySettings


@dataclass(frozen=True)
class MeterContext:
    """What a plug-in's ``build`` and ``probe`` get.

    ``cuda_devices``: torch positions the run uses (empty: none). ``forced``: the meter is named
    in ``energy.meters`` (``build`` then meters all it can see rather than choosing).
    ``host``: this process meters the host (False for distributed ranks other than local rank
    0). The remaining fields are seams for tests, the benchmark and ``--simulate``: an NVML
    backend, its ``CUDA_VISIBLE_DEVICES``, a powercap tree, a clock, torch's GPU UUIDs, the
    run's own pids, whether the GPUs are simulated, the ``/proc`` view that says whether the
    run is in a PID namespace (:class:`~energybench.meters.pidns.ProcView`), and the CPUs the
    run may use (superchip attribution).
    """

    settings: EnergySettings | None = None
    cuda_devices: Sequence[int] = ()
    trace_dir: Path | None = None
    forced: bool = False
    host: bool = True
    background: bool = True
    probe_s: float = 1.0
    clock: Clock | None = None
    gpu_backend: Any = None
    env: str | None = None
    rapl_fs: Any = None
    torch_uuids: Sequence[str] | None = None
    own_pids: Callable[[], set[int]] | None = None
    simulated: bool = False
    proc: Any = None
    cpu_affinity: Callable[[], frozenset[int] | None] | None = None

    def with_forced(self, forced: bool) -> MeterContext:
        return replace(self, forced=forced)
