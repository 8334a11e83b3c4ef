"""Typed phase records (``entries/<entry>/<phase>.json``) and the idle baseline (``idle.json``).

The lifecycle writes these shapes as JSON (``Runner._record``: entry, phase, status, config
hash, then the phase's own fields); the store parses every file on load (:func:`parse_phase`,
:func:`parse_idle`), so a lost or renamed key fails there, naming the file. A ``failed`` record
carries only ``error`` and ``traceback`` beside the common fields, so every phase-specific field
has a default. The runner builds these types and the store writes them once
(:meth:`~energybench.records.store.RunStore.write_phase`); serving scenarios are typed results
in a record the runner builds, and stored JSON objects in one read from a file, which the store
types per kind (:func:`energybench.records.types.parse_scenario`, ``RunData.results``).

A leaf module: it imports only the standard library, pydantic and :mod:`records.types`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator

from energybench.records.types import Record, RecordShapeError, ScenarioResult, Window, problems

#: the lifecycle's phases in order: the one list (the store, runner and report read it)
PHASES = ("train", "compress", "serve", "evaluate")


class ModelInfo(Record):
    """``describe_model`` of the phase's model (serve adds FLOPs and the input shape)."""

    params: int | None = None
    size_bytes: int | None = None
    sparsity: float | None = None
    flops_per_item: int | float | None = None  # an int stays an int (as written)
    input_shape: list[int] | None = None


class Checkpoint(Record):
    """The checkpoint a train or compress phase saved, with its sha256."""

    file: str
    sha256: str


class PhaseMemory(Record):
    """Peak CUDA memory of one phase on its device (the caching allocator's figures, reset when
    the phase starts): tensors allocated, and what the allocator reserved for them. Absent (None)
    for a phase on the CPU, a simulated GPU or DDP ranks: no figure is made up."""

    device: str | None = None
    peak_allocated_bytes: int | None = None
    peak_reserved_bytes: int | None = None


class PhaseRecord(Record):
    """What every phase record has: which phase of which entry, how it ended, and (when it
    measured one) its window."""

    phase: str
    entry: str
    status: Literal["done", "skipped", "failed"]
    config_hash: str
    schema_version: int | None = None
    reason: str | None = None  # why it was skipped
    error: str | None = None  # why it failed
    traceback: str | None = None
    started_unix_s: float | None = None
    duration_s: float | None = None
    measurement: Window | None = None
    memory: PhaseMemory | None = None  # runs before CUDA memory was recorded: None

    @property
    def done(self) -> bool:
        return self.status == "done"

    def windows(self) -> list[tuple[str, Window]]:
        """(label, window) of each measurement window of this record, finest first (a serve
        record's trials are in its typed scenarios: ``RunData.results``)."""
        return [(self.phase, self.measurement)] if self.measurement is not None else []


class BatchSizing(Record):
    """How ``train.batch_size: auto`` was resolved (:mod:`energybench.train.sizing`)."""

    batch_size: int = Field(ge=1, le=65_536)
    rule: str
    device: str
    device_total_bytes: int | None = None
    fixed_bytes: int | None = None
    per_item_bytes: int | None = None
    predicted_peak_bytes: int | None = None


class TrainStats(Record):
    steps: int | None = None
    seconds: float | None = None
    final_loss: float | None = None
    batch_size: int | None = None
    batch_sizing: BatchSizing | None = None


class TrainRecord(PhaseRecord):
    phase: Literal["train"]
    train: TrainStats | None = None
    model: ModelInfo | None = None
    checkpoint: Checkpoint | None = None
    inherited_from: str | None = None


class CompressStep(Record):
    """One compression method's step, measured in its own window."""

    method: str
    measurement: Window | None = None
    started_unix_s: float | None = None
    duration_s: float | None = None


class CompressRecord(PhaseRecord):
    phase: Literal["compress"]
    methods: list[CompressStep] = []
    checkpoint: Checkpoint | None = None

    def windows(self) -> list[tuple[str, Window]]:
        """Each method's window (``compress/<i>-<method>``); the outer window is not listed (the
        steps add up to it)."""
        return [
            (f"compress/{i}-{m.method}", m.measurement)
            for i, m in enumerate(self.methods)
            if m.measurement is not None
        ]


class Parity(Record):
    """Served outputs compared with eager PyTorch."""

    max_abs_diff: float | None = None
    frames: int | None = None
    tolerance: float | None = None


class BackendExport(Record):
    """The serving backend's one-off step (export, compile, calibration)."""

    measurement: Window | None = None
    parity: Parity | None = None
    started_unix_s: float | None = None
    duration_s: float | None = None


class Backend(Record):
    """What an entry was served on: the backend's name, its settings and its one-off step."""

    name: str | None = None
    settings: dict[str, Any] | None = None
    export: BackendExport | None = None


class ServeRecord(PhaseRecord):
    phase: Literal["serve"]
    #: name -> result: the stored JSON object as read (typed per kind by ``RunData.results``) or
    #: the typed result as the runner keeps it (written with its own kind's fields)
    scenarios: dict[str, Any] = {}
    backend: Backend | None = None
    model: ModelInfo | None = None
    device: str | None = None

    @field_validator("scenarios")
    @classmethod
    def _objects(cls, scenarios: dict[str, Any]) -> dict[str, Any]:
        for name, sc in scenarios.items():
            if not isinstance(sc, dict | ScenarioResult):
                raise ValueError(f"scenario {name!r}: input should be a valid dictionary")
        return scenarios

    def backend_export(self) -> BackendExport | None:
        """The one-off backend step of a finished serve record (None: none, or not done)."""
        if not self.done or self.backend is None:
            return None
        return self.backend.export

    def windows(self) -> list[tuple[str, Window]]:
        """The backend's export window (the scenarios' trials: through the typed results)."""
        export = self.backend.export if self.backend else None
        if export is not None and export.measurement is not None:
            return [("serve/export", export.measurement)]
        return []


class EvaluateRecord(PhaseRecord):
    phase: Literal["evaluate"]
    split: str | None = None
    quality: dict[str, Any] = {}

    def score(self, name: str) -> Any:
        """The quality figure ``name`` (``ssim``, ``psnr_db``, ...); None if not measured."""
        return self.quality.get(name)


PHASE_KINDS: dict[str, type[PhaseRecord]] = {
    "train": TrainRecord,
    "compress": CompressRecord,
    "serve": ServeRecord,
    "evaluate": EvaluateRecord,
}


@dataclass
class EntryPhases:
    """The typed phase records of one entry (None: not recorded)."""

    train: TrainRecord | None = None
    compress: CompressRecord | None = None
    serve: ServeRecord | None = None
    evaluate: EvaluateRecord | None = None

    def record(self, phase: str) -> PhaseRecord | None:
        rec = getattr(self, phase, None) if phase in PHASES else None
        return rec if isinstance(rec, PhaseRecord) else None

    def set(self, rec: PhaseRecord) -> None:
        setattr(self, rec.phase, rec)

    def items(self) -> Iterator[tuple[str, PhaseRecord]]:
        """(phase, record) of each recorded phase, in lifecycle order."""
        for phase in PHASES:
            rec = self.record(phase)
            if rec is not None:
                yield phase, rec

    def status(self, phase: str) -> str:
        rec = self.record(phase)
        return rec.status if rec is not None else "missing"


def parse_phase(phase: str, data: dict[str, Any]) -> PhaseRecord:
    """The typed record of ``phase`` (the file's name), or :class:`RecordShapeError` saying
    what is missing or wrong."""
    cls = PHASE_KINDS.get(phase)
    if cls is None:
        raise RecordShapeError(f"unknown phase {phase!r} (known: {', '.join(PHASES)})")
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        raise RecordShapeError(f"a {phase} phase record: {problems(exc)}") from None


class IdleBaseline(Record):
    """Idle power per device over ``seconds`` (``warmed``: the devices a warm-up ran on just
    before an active baseline)."""

    seconds: float
    power_w: dict[str, float]
    temp_c: dict[str, float] | None = None
    measured_unix_s: float | None = None
    warmed: list[str] | None = None


class IdleRecord(Record):
    """``idle.json``: the idle baselines. ``before``: cold, before any work; ``active``: after a
    warm-up with each device's context open (``energybench.run.idle``); ``after``: optional,
    after the run. ``split_basis`` names the one every window's static/dynamic split used
    (runs written before the active baseline existed used ``before``)."""

    before: IdleBaseline | None = None
    active: IdleBaseline | None = None
    after: IdleBaseline | None = None
    split_basis: Literal["before", "active"] | None = None

    @property
    def split_uses(self) -> str | None:
        """Which baseline the static/dynamic split used (None: no baseline at all)."""
        if self.split_basis is not None:
            return self.split_basis
        return "before" if self.before is not None else None

    @property
    def split_baseline(self) -> IdleBaseline | None:
        basis = self.split_uses
        return getattr(self, basis) if basis is not None else None


def parse_idle(data: dict[str, Any]) -> IdleRecord:
    try:
        return IdleRecord.model_validate(data)
    except ValidationError as exc:
        raise RecordShapeError(f"an idle record: {problems(exc)}") from None
