"""Serving scenarios as plug-ins: a settings class, a runner, one registry line each.

A scenario is a :class:`ScenarioSettings` subclass whose ``scenario`` field is ``Literal`` of
its name, a result type (:class:`~energybench.records.types.ScenarioResult`, declaring the
scenario's own outputs, which the report and the export render with no change to either) and
a :class:`~energybench.serve.base.Scenario` class whose ``run(ctx)`` serves the model
(``ctx``: a :class:`~energybench.serve.base.ScenarioContext` with the model, task, device,
monitor, energy settings, window name and ``variant(name)``, other entries' models) and
returns the result (:mod:`energybench.serve.trials` builds its statistics), registered in
:data:`SERVE_SCENARIOS`::

    class Toy(ScenarioSettings):
        scenario: Literal["toy"]
        items: int = Field(8, ge=1)

    class ToyScenario(Scenario[Toy, ToyResult]):
        name = "toy"

        def run(self, ctx: ScenarioContext) -> ToyResult: ...

    SERVE_SCENARIOS.register(ToyScenario)

A plain function ``fn(settings, ctx)`` registered with ``register("toy", fn, settings=Toy,
result=ToyResult)`` still works (it may return a dict of its result). The schema validates an
entry's ``serve`` list against what is registered; the runner serves each scenario through its
registered class, and its record reaches the report's serving table and the export's
``scenarios`` and ``outputs`` tables. (``adaptive`` also gets the suite's other entries'
models from the runner: its variants.)
"""

from __future__ import annotations

import inspect
from typing import Annotated, Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from energybench.records.types import RESULT_KINDS, FlatResult, ScenarioResult, register_result
from energybench.suite.base import (
    MAX_BATCH,
    MAX_ENTRIES,
    MAX_ITEMS,
    MAX_NAME,
    MAX_RATE,
    MAX_SECONDS,
    Strict,
    folder_name,
)
from energybench.suite.plugins import Hook, Registered, SettingsRegistry


class ScenarioSettings(Strict):
    """Settings every serving scenario has; a scenario's class adds its own fields."""

    scenario: str
    name: str | None = Field(None, min_length=1, max_length=MAX_NAME)
    warmup: int = Field(
        5, ge=0, le=MAX_ITEMS, description="iterations run before measuring (excluded)"
    )
    iterations: int = Field(
        32, ge=1, le=MAX_ITEMS, description="measured iterations per trial (at least)"
    )
    compile: Literal["none", "default", "reduce-overhead", "max-autotune"] = Field(
        "none",
        description="serve through torch.compile with this mode ('reduce-overhead' uses CUDA "
        "graphs on GPUs); compilation happens in warm-up, outside the measured windows. Kept "
        "for older suites: prefer the entry's backend: {name: compile, compile_mode: ...}",
    )

    @field_validator("name")
    @classmethod
    def _name(cls, v: str | None) -> str | None:
        return folder_name(v, "scenario name")


class Throughput(ScenarioSettings):
    scenario: Literal["throughput"]
    batch_sizes: list[Annotated[int, Field(ge=1, le=MAX_BATCH)]] = Field(
        default_factory=lambda: [1], min_length=1, max_length=64
    )


class Stream(ScenarioSettings):
    scenario: Literal["stream"]
    fps: float = Field(25.0, gt=0, le=MAX_RATE)
    frames: int = Field(64, ge=1, le=MAX_ITEMS)


#: Defaults and floors of the p99 sweep's per-point minimums (requests served, seconds). A
#: point shorter than a few target latencies cannot show a growing queue: a 30-request burst
#: served in 0.1 s meets any p99 target above 0.1 s whatever the sustainable rate.
SWEEP_MIN_REQUESTS = 200
SWEEP_MIN_REQUESTS_FLOOR = 100
SWEEP_MIN_S = 2.0
SWEEP_MIN_S_FLOOR = 0.5


class Load(ScenarioSettings):
    scenario: Literal["load"]
    rate_per_s: float = Field(50.0, gt=0, le=MAX_RATE)
    deadline_ms: float = Field(100.0, gt=0, le=MAX_SECONDS * 1000)
    max_batch: int = Field(8, ge=1, le=MAX_BATCH)
    requests: int = Field(200, ge=1, le=MAX_ITEMS)
    p99_target_ms: float | None = Field(
        None,
        gt=0,
        le=MAX_SECONDS * 1000,
        description="find the highest rate whose p99 (rejections infinitely late) meets this",
    )
    sweep_min_requests: int = Field(
        SWEEP_MIN_REQUESTS,
        ge=SWEEP_MIN_REQUESTS_FLOOR,
        le=MAX_ITEMS,
        description="each sweep point serves at least this many requests (a point that meets "
        "the target serves >= 99 % of what it is offered; more is offered)",
    )
    threads: int | None = Field(
        None,
        ge=1,
        le=1024,
        description="intra-op CPU threads while this scenario serves (torch.set_num_threads); "
        "default: torch's. On a busy CPU with as many threads as cores, the first request after "
        "an idle gap waits for the sibling threads to be scheduled (measured ~100 ms per "
        "request on a loaded 2-core CPU, against 0.3 ms back to back)",
    )
    sweep_min_s: float = Field(
        SWEEP_MIN_S,
        ge=SWEEP_MIN_S_FLOOR,
        le=MAX_SECONDS,
        description="each sweep point lasts at least this long (and at least "
        "SWEEP_TARGET_MULTIPLE x p99_target_ms, so a queue that grows shows in its p99)",
    )


class ContentionStep(Strict):
    """From ``at_s`` seconds into the stream on, ``threads`` busy workers compete for the device
    (CPU: matrix-multiply threads; GPU: CUDA kernel loops); 0 stops them."""

    at_s: float = Field(ge=0, le=MAX_SECONDS)
    threads: int = Field(ge=0, le=64)


class Adaptive(ScenarioSettings):
    """A stream at ``fps`` under a declared contention schedule, served by a policy that
    switches between already-loaded variants (entries of the suite, best quality first)."""

    scenario: Literal["adaptive"]
    fps: float = Field(10.0, gt=0, le=MAX_RATE)
    duration_s: float = Field(20.0, gt=0, le=3600, description="length of the stream")
    variants: list[str] = Field(
        min_length=1,
        max_length=MAX_ENTRIES,
        description="entries whose final models are switched between, best first",
    )
    policy: str = Field(
        "deadline",
        description="'static' (first variant only), 'deadline', or a policy registered from "
        "Python in energybench.serve.adaptive.POLICIES",
    )
    baseline: bool = Field(
        True, description="also run the 'static' policy under the same schedule, for comparison"
    )
    contention: list[ContentionStep] = Field(default_factory=list, max_length=1000)
    contention_device: Literal["auto", "cpu", "cuda"] = "auto"
    threads: int | None = Field(
        None,
        ge=1,
        le=1024,
        description="intra-op CPU threads of the served stream (torch.set_num_threads) for this "
        "scenario; default: torch's. As many threads as cores stall under contention (an "
        "OpenMP thread waits for a descheduled sibling at every barrier)",
    )
    miss_window: int = Field(
        10, ge=1, le=MAX_ITEMS, description="deadline policy: frames in the miss window"
    )
    down_after_misses: int = Field(
        2, ge=1, le=MAX_ITEMS, description="... switch down after k misses in it"
    )
    up_after_on_time: int = Field(
        20, ge=1, le=MAX_ITEMS, description="... up after m on-time frames in a row"
    )
    headroom: float = Field(
        0.6, gt=0, le=1, description="... each of which finished within this fraction of 1/fps"
    )
    max_backoff: int = Field(
        8,
        ge=1,
        le=1024,
        description="... a probe up that falls back within m frames doubles m for the next, "
        "up to this factor (1: no backoff)",
    )

    @model_validator(mode="after")
    def _schedule_order(self) -> Adaptive:
        times = [c.at_s for c in self.contention]
        if times != sorted(times):
            raise ValueError("contention steps must be in increasing 'at_s' order")
        return self


class ScenarioRegistry(SettingsRegistry):
    """:class:`SettingsRegistry` whose entries also name the type their records parse as
    (:class:`~energybench.records.types.ScenarioResult`, declaring the scenario's own outputs
    for the report and the export)."""

    def register(  # type: ignore[override]
        self,
        name: str | type,
        target: Hook | None = None,
        help: str = "",
        *,
        settings: type[BaseModel] | None = None,
        result: type[ScenarioResult] | None = None,
        **hooks: Hook | None,
    ) -> None:
        """Register a :class:`~energybench.serve.base.Scenario` class
        (``register(BurstScenario)``: its ``name``, ``settings_type`` and ``result_type``), or
        scenario ``name`` with its ``target`` (a lazy ``"module:Class"``, or a plain function
        ``fn(settings, ctx)``), its ``settings`` class and ``result`` type (default:
        :class:`~energybench.records.types.FlatResult`, statistics at the record's top level and
        no outputs of its own; the built-in kinds have theirs in ``records.types``)."""
        if isinstance(name, type):  # a Scenario class says all of it itself
            target, name = name, str(getattr(name, "name"))  # noqa: B009
            settings, result = getattr(target, "settings_type"), getattr(target, "result_type")  # noqa: B009
            help = help or (inspect.getdoc(target) or "").split("\n")[0]
        if target is None or settings is None:
            raise TypeError(
                f"serving scenario '{name}': give a Scenario class, or a target and settings"
            )
        super().register(name, target, help, settings=settings, **hooks)
        if result is not None or name not in RESULT_KINDS:
            register_result(name, result or FlatResult)

    def unregister(self, name: str) -> None:
        super().unregister(name)
        RESULT_KINDS.unregister(name)


SERVE_SCENARIOS = ScenarioRegistry("serving scenario", "scenario", ScenarioSettings)
# the built-in classes are named lazily (the schema imports no runtime), so their settings are
# given here too (a test checks they are the classes' own); their result kinds are in
# ``records.types``. ``adaptive`` gets its variants through the context like anything else.
_SERVE = "energybench.serve"
SERVE_SCENARIOS.register(
    "throughput", f"{_SERVE}.scenarios:ThroughputScenario", settings=Throughput
)
SERVE_SCENARIOS.register("stream", f"{_SERVE}.scenarios:StreamScenario", settings=Stream)
SERVE_SCENARIOS.register("load", f"{_SERVE}.load:LoadScenario", settings=Load)
SERVE_SCENARIOS.register("adaptive", f"{_SERVE}.adaptive:AdaptiveScenario", settings=Adaptive)

ServeScenario = Annotated[ScenarioSettings, Registered(SERVE_SCENARIOS)]
"""One ``serve`` scenario: the settings of a scenario registered in :data:`SERVE_SCENARIOS`."""
