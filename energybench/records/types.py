"""Typed run records: trials, windows, scenario results (one class per kind), phases, idle.

The lifecycle builds these types (trials, groups, scenario results: :mod:`energybench.serve`)
and the store writes them once as JSON (:meth:`Record.to_json`); the store parses them on load
(:func:`parse_scenario`), so a key that was renamed or lost fails there, naming the file,
instead of leaving a blank cell in a report. Each scenario kind declares its own outputs
(:class:`Output`): the report and the export render declared outputs generically, so a new
scenario kind's figures reach both with no change to either.

A leaf module: it imports only the standard library, pydantic and the meter table
(:mod:`energybench.meters.plugins`, which says whether a source is an estimate).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, TypeVar

from pydantic import ValidationError, model_validator

from energybench.plugins.registry import Registry
from energybench.records.record import Record
from energybench.records.window import Window


class Summary(Record):
    """Statistics of a sample (latency in ms, frames/s, items/s): ``metrics.latency.summarize``."""

    n: int
    mean: float | None
    min: float | None = None
    max: float | None = None
    p50: float | None = None
    p90: float | None = None
    p99: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None


class EnergyStat(Record):
    """J/item over trials with its 95 % CIs (combined; ``stat_*``: trial spread only)."""

    mean: float | None
    ci_low: float | None = None
    ci_high: float | None = None
    stat_ci_low: float | None = None
    stat_ci_high: float | None = None


class Trial(Record):
    """One measured trial: items served in one window and their energy."""

    items: int
    iterations: int
    duration_s: float
    energy_j: float | None
    energy_per_item_j: float | None
    measured_energy_per_item_j: float | None = None
    estimated_energy_per_item_j: float | None = None
    sigma_per_item_j: float | None = None  # the meter's own ~1 sigma, per item
    measured_sigma_per_item_j: float | None = None
    measurement: Window
    requests: int | None = None  # load trials: requests offered
    p99_all_ms: float | None = None  # load trials: p99 with rejections infinitely late (None)


class Precision(Record):
    """Whether a group's trials reached the suite's ``target_ci`` (``trials.precision``)."""

    basis: str | None = None  # "measured" (meters only) or "all" (estimates included)
    target_ci: float | None = None
    rel_ci: float | None = None  # the ranked 95 % interval's half-width / mean
    rel_stat_ci: float | None = None  # its trial-spread part (what ``reached`` is judged on)
    reached: bool | None = None
    trials: int | None = None  # trials judged (older runs: not recorded)
    trials_without_energy: int | None = None
    min_trials: int | None = None  # the suite's ``energy.trials`` and ``energy.max_trials``
    max_trials: int | None = None


class Group(Record):
    """A scenario's statistics over its trials at one batch size (``aggregate_trials``)."""

    unit: str
    latency_ms: Summary | None
    items_per_s: Summary | None
    energy_per_item_j: EnergyStat | None
    measured_energy_per_item_j: EnergyStat | None = None
    estimated_energy_per_item_j: EnergyStat | None = None
    trials_total: int
    trials_without_energy: int
    basis: str | None = None  # the ranking basis (``trials.ranking_basis``); None: older runs
    measured_kinds: list[str] = []
    estimated_kinds: list[str] = []
    sources: list[str]
    is_estimate: bool
    is_shared: bool = False
    is_simulated: bool = False
    flags: list[str]
    trials: list[Trial]
    precision: Precision | None = None


@dataclass(frozen=True)
class Output:
    """One figure a scenario kind produces beyond J/item and latency: ``name`` (its key in
    the export), a label and unit for the report, and how to read it from the result."""

    name: str
    label: str
    unit: str
    read: Callable[[Any], float | str | None]


def attr(path: str) -> Callable[[Any], Any]:
    """Read ``a.b.c`` from a result (None where a step is None)."""

    def read(obj: Any) -> Any:
        for part in path.split("."):
            if obj is None:
                return None
            obj = obj.get(part) if isinstance(obj, dict) else getattr(obj, part)
        return obj

    return read


class ScenarioResult(Record):
    """Base of every scenario kind's result: ``scenario`` is the kind, ``name`` its name."""

    scenario: str
    name: str | None = None
    compile: str = "none"
    outputs: ClassVar[tuple[Output, ...]] = ()

    def groups(self) -> dict[str, Group]:
        """Statistics per batch size (``""``: a scenario without batch sizes)."""
        raise NotImplementedError

    def group(self, batch_size: int | None) -> Group | None:
        """The statistics at ``batch_size`` (a scenario without batch sizes: its only group);
        None where it was not measured at that size."""
        groups = self.groups()
        return groups[""] if "" in groups else groups.get(str(batch_size))

    def output_values(self) -> list[tuple[Output, float | str | None]]:
        """Every declared output with its value (None: not applicable in this run)."""
        out = []
        for o in self.outputs:
            v = o.read(self)
            out.append((o, None if isinstance(v, float) and not math.isfinite(v) else v))
        return out


_Flat = TypeVar("_Flat", bound="FlatResult")


class FlatResult(ScenarioResult, Group):
    """A scenario measured at one batch size: its statistics sit at the top of the record."""

    @classmethod
    def from_group(cls: type[_Flat], group: Group, **fields: Any) -> _Flat:
        """This kind's result: its own ``fields`` first, then ``group``'s statistics
        (:func:`energybench.serve.trials.aggregate_trials`)."""
        return cls(**fields, **group.given())

    def groups(self) -> dict[str, Group]:
        return {"": self}


class ThroughputResult(ScenarioResult):
    scenario: Literal["throughput"]
    batch_sizes: list[int]
    by_batch: dict[str, Group]

    def groups(self) -> dict[str, Group]:
        return dict(self.by_batch)


class StreamResult(FlatResult):
    scenario: Literal["stream"]
    target_fps: float
    frames_per_trial: int
    deadline_miss_rate: float | None
    deadline_misses: int
    fps_achieved: Summary | None
    outputs = (
        Output("target_fps", "target rate", "frames/s", attr("target_fps")),
        Output("fps_achieved", "achieved rate", "frames/s", attr("fps_achieved.mean")),
        Output("deadline_miss_rate", "deadline misses", "fraction", attr("deadline_miss_rate")),
    )


class SweepPoint(Record):
    """One rate of the p99 sweep (one trial, its window not kept)."""

    rate_per_s: float
    requests: int | None = None
    served: int | None = None  # older runs: not recorded
    duration_s: float | None = None
    offered_span_s: float | None = None  # time from the start to the last arrival
    p99_all_ms: float | None = None  # None: some requests were rejected (infinitely late)
    meets_target: bool | None = None
    energy_per_item_j: float | None = None
    sigma_per_item_j: float | None = None
    measured_energy_per_item_j: float | None = None
    measured_sigma_per_item_j: float | None = None
    measurement: Window | None = None


SweepBound = Literal["measured", "lower", "none"]


class Sweep(Record):
    """The load scenario's p99 sweep: the highest rate that meets ``p99_target_ms``.

    ``bound``: ``measured`` (a failing rate, ``first_failing_rate_per_s``, lies just above it),
    ``lower`` (the highest rate tried still met the target: the maximum is at least this,
    shown "≥") or ``none`` (no rate tried met it). Records written before the bound was stored
    get it from their points: the old sweep stopped at its first rate when that rate passed,
    so such a maximum is a lower bound.
    """

    p99_target_ms: float
    capacity_estimate_per_s: float | None
    max_rate_per_s: float | None
    energy_per_request_j: float | None
    points: list[SweepPoint]
    bound: SweepBound | None = None
    lower_bound: bool | None = None
    first_failing_rate_per_s: float | None = None
    ceiling_per_s: float | None = None
    min_requests: int | None = None  # the documented per-point minimums this sweep used
    min_s: float | None = None
    served_at_max: int | None = None
    duration_s_at_max: float | None = None

    @model_validator(mode="after")
    def _infer_bound(self) -> Sweep:
        if self.bound is None:
            if self.max_rate_per_s is None:
                self.bound = "none"
            elif self.points and self.points[0].rate_per_s == self.max_rate_per_s:
                self.bound = "lower"
            else:
                self.bound = "measured"
        if self.lower_bound is None:
            self.lower_bound = self.bound == "lower"
        return self

    def max_rate_text(self) -> str:
        """The maximum as a reader should see it: "≥ 1.2e+03" for a lower bound."""
        if self.max_rate_per_s is None:
            return "none meets"
        mark = "≥ " if self.bound == "lower" else ""
        return f"{mark}{self.max_rate_per_s:.4g}"


def _sweep_bound(r: Any) -> str | None:
    sweep = r.sweep
    if sweep is None:
        return None
    return {
        "lower": "lower bound (≥): the highest rate tried still met the target",
        "measured": "measured maximum: the next rate tried failed",
        "none": "none: no rate tried met the target",
    }[sweep.bound]


class LoadResult(FlatResult):
    scenario: Literal["load"]
    rate_per_s: float
    deadline_ms: float
    max_batch: int
    requests_per_trial: int
    profile: dict[str, Any]
    deadline_miss_rate: float | None
    rejection_rate: float | None
    sweep: Sweep | None
    threads: int | None = None  # intra-op CPU threads it served with (older runs: not recorded)
    outputs = (
        Output("rate_per_s", "offered rate", "requests/s", attr("rate_per_s")),
        Output("deadline_ms", "deadline", "ms", attr("deadline_ms")),
        Output("deadline_miss_rate", "deadline misses", "fraction", attr("deadline_miss_rate")),
        Output("rejection_rate", "rejected", "fraction", attr("rejection_rate")),
        Output("sweep_p99_target_ms", "sweep: p99 target", "ms", attr("sweep.p99_target_ms")),
        Output(
            "sweep_max_rate_per_s",
            "sweep: highest rate within the p99 target",
            "requests/s",
            attr("sweep.max_rate_per_s"),
        ),
        Output(
            "sweep_energy_per_request_j",
            "sweep: energy per request at that rate",
            "J",
            attr("sweep.energy_per_request_j"),
        ),
        Output("sweep_bound", "sweep: the highest rate is a", "", _sweep_bound),
        Output(
            "sweep_first_failing_rate_per_s",
            "sweep: lowest failing rate above it",
            "requests/s",
            attr("sweep.first_failing_rate_per_s"),
        ),
        Output(
            "sweep_served_at_max",
            "sweep: requests served at that rate",
            "requests",
            attr("sweep.served_at_max"),
        ),
        Output(
            "sweep_duration_s_at_max",
            "sweep: duration at that rate",
            "s",
            attr("sweep.duration_s_at_max"),
        ),  # fmt: skip
        Output("sweep_points", "sweep: rates measured", "points", lambda r: _count(r.sweep)),
    )


def _count(sweep: Sweep | None) -> int | None:
    return None if sweep is None else len(sweep.points)


class FpsPoint(Record):
    t_s: float
    fps: float


class PerFrame(Record):
    """One adaptive run's frames: arrival time, latency (None: dropped), variant, missed."""

    t_s: list[float] = []
    latency_ms: list[float | None] = []
    variant: list[int] = []
    missed: list[bool] = []


class AdaptiveRun(Record):
    """One policy's run of an adaptive stream (the static baseline's included)."""

    frames: int
    dropped: int
    deadline_miss_rate: float | None
    fps_timeline: list[FpsPoint] = []
    fps_achieved: Summary | None = None
    longest_stall_s: float | None = None
    time_per_variant_s: dict[str, float] = {}
    switches: list[dict[str, Any]] = []
    switch_ms: Summary | None = None
    per_frame: PerFrame = PerFrame()
    psnr_mean_db: float | None = None
    energy_per_frame_j: float | None = None
    is_estimate: bool = False


class AdaptiveResult(FlatResult):
    scenario: Literal["adaptive"]
    target_fps: float
    duration_s: float
    variants: list[str]
    policy: str
    threads: int | None
    runs: dict[str, AdaptiveRun]
    deadline_miss_rate: float | None
    psnr_mean_db: float | None
    longest_stall_s: float | None
    fps_achieved: Summary | None
    versus_static: dict[str, Any] | None = None
    contention: list[dict[str, Any]] = []
    outputs = (
        Output("policy", "policy", "", attr("policy")),
        Output("target_fps", "target rate", "frames/s", attr("target_fps")),
        Output("fps_achieved", "achieved rate", "frames/s", attr("fps_achieved.mean")),
        Output("deadline_miss_rate", "deadline misses", "fraction", attr("deadline_miss_rate")),
        Output("psnr_mean_db", "mean PSNR", "dB", attr("psnr_mean_db")),
        Output("longest_stall_s", "longest stall", "s", attr("longest_stall_s")),
        Output(
            "miss_rate_diff_vs_static",
            "deadline misses minus static's",
            "fraction",
            attr("versus_static.miss_rate_diff"),
        ),
    )


#: scenario kind -> its result class; a new kind registers with :func:`register_result`
RESULT_KINDS: Registry[type[ScenarioResult]] = Registry("scenario result kind", ScenarioResult)
RESULT_KINDS.register("throughput", ThroughputResult)
RESULT_KINDS.register("stream", StreamResult)
RESULT_KINDS.register("load", LoadResult)
RESULT_KINDS.register("adaptive", AdaptiveResult)


def register_result(kind: str, cls: type[ScenarioResult]) -> None:
    """Make ``kind``'s records parse as ``cls`` (a serving scenario plug-in's result); the
    same class again is a no-op, another class a ValueError."""
    if kind in RESULT_KINDS and RESULT_KINDS.get(kind) is cls:
        return
    RESULT_KINDS.register(kind, cls)


class RecordShapeError(ValueError):
    """A stored record that lacks a field its type requires (or has one of the wrong type)."""


def problems(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        where = ".".join(str(p) for p in err["loc"])
        parts.append(f"{where}: {err['msg'].lower()}")
    more = len(exc.errors()) - 5
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")


def parse_scenario(data: dict[str, Any]) -> ScenarioResult:
    """The typed result of one stored scenario, or :class:`RecordShapeError` saying what is
    missing or wrong (a renamed key fails here, not as a blank cell)."""
    kind = data.get("scenario")
    if str(kind) not in RESULT_KINDS:
        known = ", ".join(RESULT_KINDS.names())
        raise RecordShapeError(f"unknown scenario kind {kind!r} (known: {known})")
    cls = RESULT_KINDS.get(str(kind))
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        raise RecordShapeError(f"a {kind} scenario record: {problems(exc)}") from None


def parse_scenarios(scenarios: dict[str, Any]) -> dict[str, ScenarioResult]:
    """Every stored scenario (name -> record) typed; :class:`RecordShapeError` names the
    scenario (``scenarios.<name>: ...``)."""
    out: dict[str, ScenarioResult] = {}
    for name, sc in scenarios.items():
        if isinstance(sc, ScenarioResult):  # typed already (a run's writer keeps them typed)
            out[name] = sc
            continue
        try:
            out[name] = parse_scenario(sc)
        except RecordShapeError as exc:
            raise RecordShapeError(f"scenarios.{name}: {exc}") from None
    return out
