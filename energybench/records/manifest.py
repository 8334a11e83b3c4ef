"""The typed view of a run's ``manifest.json`` that reports read: the machine it ran on, the
meters that measured it, where each entry ran, whether it finished.

The runner writes the manifest (``run.runner``); the store checks it on read
(``records.check.check_manifest``) and types it here, so reports read attributes, never keys.
Fields older runs did not write have the default such a run means (no placements: nothing
marked). The suite itself is typed by the suite schema (``RunData.suite``).

A leaf module: it imports only the standard library, pydantic and :mod:`records.types`.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, ValidationError, model_validator

from energybench.records.types import Record, RecordShapeError, problems


class CpuInfo(Record):
    name: str = "?"
    logical_cores: int | None = None


class GpuInfo(Record):
    name: str = "?"


class Environment(Record):
    """The machine a run ran on (``run.environment.snapshot``)."""

    hostname: str = "?"
    os: str = "?"
    cpu: CpuInfo | None = None
    gpus: list[GpuInfo | str] = []
    versions: dict[str, Any] = {}
    energybench_commit: str | None = None

    @property
    def gpu_names(self) -> list[str]:
        return [g.name if isinstance(g, GpuInfo) else g for g in self.gpus]


#: the keys every meter description may have; the others are the meter's own details
_GENERIC = ("meter", "device", "source", "model", "name", "note", "notes")


class MeterInfo(Record):
    """One meter's description of what it measured (``Meter.describe``). ``details``: every
    key beyond the generic ones, in the order the meter wrote them (a plug-in meter's own
    keys included); the NVML meter's channels are declared for the report's provenance."""

    meter: str | None = None
    kind: str | None = None
    device: str | None = None
    source: str | None = None
    model: str | None = None
    name: str | None = None
    note: str | None = None
    notes: list[Any] = []
    driver: Any = None
    counter_supported: bool = False
    power_channel: Any = None
    simulated: bool = False
    details: list[tuple[str, Any]] = Field(default_factory=list, exclude=True)

    @model_validator(mode="before")
    @classmethod
    def _keep_details(cls, data: Any) -> Any:
        if isinstance(data, dict):
            kept = [(k, v) for k, v in data.items() if k not in _GENERIC]
            data = {k: v for k, v in data.items() if k != "details"} | {"details": kept}
        return data


class RunInfo(Record):
    """What the manifest says about a run besides its suite."""

    store_version: int = 1
    energybench_version: str | None = None
    environment: Environment = Environment()
    meters: list[MeterInfo] = []
    placements: dict[str, str] = {}  # entry -> device label; older runs: none recorded
    simulate: str | None = None  # the simulated-GPU profile (``--simulate``)
    finished: bool = False
    created_unix_s: float = 0.0
    peaks: dict[str, dict[str, float]] = {}  # device label -> dtype -> GEMM FLOP/s; older: none

    def placement(self, entry: str) -> str | None:
        """Where ``entry`` ran (``cpu``, ``cuda:0``, ...); None where the run did not record it."""
        return self.placements.get(entry)


def parse_run_info(manifest: dict[str, Any]) -> RunInfo:
    """The typed manifest (:class:`RecordShapeError` saying which field is wrong)."""
    try:
        return RunInfo.model_validate({k: v for k, v in manifest.items() if k != "suite"})
    except ValidationError as exc:
        raise RecordShapeError(f"a manifest: {problems(exc)}") from None
