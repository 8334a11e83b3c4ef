"""The suite schema: typed pydantic models of a YAML suite.

Only structure and value ranges live here; cross-references (model names, inherited entries) are
checked in :mod:`energybench.suite.load`, which also turns errors into file:line:col messages.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer,
    model_validator,
)

SCHEMA_VERSION = 1


def folder_name(value: str | None, what: str) -> str | None:
    """``value`` unless it starts with '.' ('.', '..', '.hidden'): entry and suite names become
    folder names in the run directory, and '.'/'..' would put files outside it."""
    if value is not None and value.startswith("."):
        raise ValueError(
            f"{what} '{value}' starts with '.'; names are used as folder and file names in "
            "the run directory, where '.' and '..' point outside it, so start the name with a "
            "letter, digit, _, + or -"
        )
    return value


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False)


# --------------------------------------------------------------------------- energy and carbon
class CooldownSettings(Strict):
    enabled: bool = False
    max_s: float = Field(60.0, ge=0, description="give up waiting after this many seconds")
    tolerance_c: float = Field(3.0, gt=0, description="back within this many °C of idle")


class EnergySettings(Strict):
    """How energy is measured: which meters, how often, and the measurement protocol."""

    meters: list[Literal["auto", "nvml", "rapl", "estimate"]] = Field(
        default_factory=lambda: ["auto"],
        min_length=1,
        description="'auto' uses NVML for GPUs in use, RAPL for the CPU, and an estimate "
        "only where neither works",
    )
    sample_period_s: float = Field(0.05, gt=0.001, le=10, description="power sampling period")
    idle_baseline_s: float = Field(2.0, ge=0, description="idle power measured before the run")
    idle_after: bool = Field(False, description="measure idle power after the run too")
    cross_check_threshold: float = Field(
        0.10, gt=0, description="flag a window whose two NVML channels disagree by more"
    )
    min_window_s: float = Field(5.0, ge=0, description="serving windows are repeated to this")
    min_window_iters: int = Field(32, ge=1, description="... and to at least this many iterations")
    trials: int = Field(3, ge=1, description="trials per serving scenario at least (for CIs)")
    target_ci: float = Field(
        0.05,
        gt=0,
        le=1,
        description="more trials until the 95 % CI half-width of J/item is at most this "
        "fraction of the mean (trial-to-trial spread; 1 stops at 'trials')",
    )
    max_trials: int = Field(10, ge=1, description="... or until this many trials")
    cooldown: CooldownSettings = Field(default_factory=CooldownSettings)
    allow_estimates_in_ranking: bool = Field(
        False,
        description="rank on measured + estimated energy (any estimated joule makes the figure "
        "an estimate); false: rank on measured devices only, the estimate shown beside",
    )
    allow_shared_devices: bool = Field(
        False,
        description="rank figures from a GPU in MIG mode or shared with another process",
    )

    @model_validator(mode="after")
    def _trial_bounds(self) -> EnergySettings:
        if self.max_trials < self.trials:
            raise ValueError(f"max_trials ({self.max_trials}) must be >= trials ({self.trials})")
        return self


class CarbonSettings(Strict):
    """Carbon as a derived layer: kgCO2e = kWh x PUE x grid intensity."""

    grid_intensity_g_per_kwh: float | None = Field(None, ge=0)
    country: str | None = Field(None, min_length=3, max_length=3, description="ISO 3166 alpha-3")
    pue: float = Field(1.0, ge=1.0)


class UsageIntensity(Strict):
    mui: float = Field(gt=0, description="inferences (items) over the model's life")
    weight: float = Field(1.0, ge=0)


class MetricSettings(Strict):
    """The full-cycle metric G(MUI) = Q^tau / (TEC + MUI * IEC)."""

    tau: float = Field(1.0, ge=0)
    quality: str = Field(
        "ssim",
        description="which quality figure is Q (SR: ssim, psnr_db, psnr_gain_db; "
        "classification: top1, top5)",
    )
    iec_scenario: str | None = Field(
        None,
        description="serving scenario (by name) whose J/item is IEC; every ranked entry's IEC "
        "comes from a scenario of the same kind and batch size (default: the first scenario "
        "of the first entry that serves)",
    )
    iec_batch_size: int | None = Field(
        None, ge=1, description="batch size of the IEC scenario (default: its first)"
    )
    usage_intensities: list[UsageIntensity] = Field(
        default_factory=lambda: [UsageIntensity(mui=m) for m in (1e3, 1e5, 1e7)], min_length=1
    )
    pairs: list[tuple[str, str]] = Field(
        default_factory=list, description="extra (a, b) entry pairs for break-even analysis"
    )


# --------------------------------------------------------------------------- entry parts
class ModelSpec(Strict):
    name: str
    params: dict[str, Any] = Field(default_factory=dict)


class DatasetSpec(Strict):
    name: str
    params: dict[str, Any] = Field(default_factory=dict)


class DistributedSettings(Strict):
    """A train phase run by ``nproc_per_node`` DDP ranks under torch's elastic launcher."""

    nproc_per_node: int = Field(2, ge=1, le=64, description="ranks (one GPU each on GPUs)")
    nnodes: int = Field(1, ge=1, le=1, description="nodes (only 1 is supported for now)")
    backend: Literal["auto", "gloo", "nccl"] = Field(
        "auto", description="auto: nccl on GPUs, gloo on the CPU"
    )


def _drop_unset(handler: SerializerFunctionWrapHandler, obj: BaseModel, *keys: str) -> Any:
    """Serialise ``obj`` without the optional ``keys`` that are None (older hashes unchanged)."""
    data = handler(obj)
    for k in keys:
        if isinstance(data, dict) and data.get(k, 0) is None:
            del data[k]
    return data


class TrainSettings(Strict):
    steps: int | None = Field(None, ge=0)
    epochs: int | None = Field(None, ge=0)
    optimizer: Literal["adam", "adamw", "sgd"] = "adam"
    batch_size: int = Field(16, ge=1)
    lr: float = Field(1e-3, gt=0)
    lr_schedule: Literal["constant", "cosine"] = "cosine"
    weight_decay: float = Field(0.0, ge=0)
    seed: int = 0
    log_every: int = Field(50, ge=1)
    distributed: DistributedSettings | None = Field(
        None, description="train with several DDP ranks (energybench.lifecycle.distributed)"
    )

    @model_validator(mode="after")
    def _steps_or_epochs(self) -> TrainSettings:
        if self.steps is not None and self.epochs is not None:
            raise ValueError("give either 'steps' or 'epochs', not both")
        d = self.distributed
        if d is not None and self.batch_size % (d.nproc_per_node * d.nnodes):
            raise ValueError(
                f"batch_size ({self.batch_size}) must be a multiple of the ranks "
                f"({d.nproc_per_node * d.nnodes}): each rank takes an equal share of every batch"
            )
        return self

    @model_serializer(mode="wrap")
    def _dump(self, handler: SerializerFunctionWrapHandler) -> Any:
        return _drop_unset(handler, self, "distributed")


class FinetuneSettings(Strict):
    steps: int = Field(0, ge=0)
    lr: float = Field(1e-4, gt=0)
    batch_size: int | None = Field(None, ge=1)


class _CompressBase(Strict):
    finetune: FinetuneSettings | None = None


class Reparameterize(_CompressBase):
    method: Literal["reparameterize"]


class Prune(_CompressBase):
    method: Literal["prune"]
    kind: Literal["structured", "unstructured"] = "structured"
    amount: float = Field(0.3, gt=0, lt=1)
    criterion: Literal["l1", "l2", "magnitude"] = "l1"
    scope: Literal["layer", "global"] = Field(
        "layer", description="unstructured only: rank weights per layer or across all layers"
    )


class Quantize(_CompressBase):
    method: Literal["quantize"]
    dtype: Literal["int8", "fp16", "bf16"] = "int8"
    mode: Literal["static", "dynamic", "cast"] = "static"
    calibration_batches: int = Field(8, ge=1)


class Distill(_CompressBase):
    method: Literal["distill"]
    student: ModelSpec
    steps: int = Field(200, ge=1)
    lr: float = Field(1e-3, gt=0)
    batch_size: int = Field(16, ge=1)
    alpha: float = Field(0.5, ge=0, le=1, description="weight of the teacher term in the loss")


CompressStep = Annotated[Reparameterize | Prune | Quantize | Distill, Field(discriminator="method")]


class _ScenarioBase(Strict):
    name: str | None = None
    warmup: int = Field(5, ge=0, description="iterations run before measuring (excluded)")
    iterations: int = Field(32, ge=1, description="measured iterations per trial (at least)")
    compile: Literal["none", "default", "reduce-overhead", "max-autotune"] = Field(
        "none",
        description="serve through torch.compile with this mode ('reduce-overhead' uses CUDA "
        "graphs on GPUs); compilation happens in warm-up, outside the measured windows",
    )

    @field_validator("name")
    @classmethod
    def _name(cls, v: str | None) -> str | None:
        return folder_name(v, "scenario name")


class Throughput(_ScenarioBase):
    scenario: Literal["throughput"]
    batch_sizes: list[int] = Field(default_factory=lambda: [1], min_length=1)


class Stream(_ScenarioBase):
    scenario: Literal["stream"]
    fps: float = Field(25.0, gt=0)
    frames: int = Field(64, ge=1)


class Load(_ScenarioBase):
    scenario: Literal["load"]
    rate_per_s: float = Field(50.0, gt=0)
    deadline_ms: float = Field(100.0, gt=0)
    max_batch: int = Field(8, ge=1)
    requests: int = Field(200, ge=1)
    p99_target_ms: float | None = Field(None, gt=0)


class ContentionStep(Strict):
    """From ``at_s`` seconds into the stream on, ``threads`` busy workers compete for the device
    (CPU: matrix-multiply threads; GPU: CUDA kernel loops); 0 stops them."""

    at_s: float = Field(ge=0)
    threads: int = Field(ge=0, le=64)


class Adaptive(_ScenarioBase):
    """A stream at ``fps`` under a declared contention schedule, served by a policy that
    switches between already-loaded variants (entries of the suite, best quality first)."""

    scenario: Literal["adaptive"]
    fps: float = Field(10.0, gt=0)
    duration_s: float = Field(20.0, gt=0, le=3600, description="length of the stream")
    variants: list[str] = Field(
        min_length=1, description="entries whose final models are switched between, best first"
    )
    policy: str = Field(
        "deadline",
        description="'static' (first variant only), 'deadline', or a policy registered from "
        "Python in energybench.lifecycle.adaptive.POLICIES",
    )
    baseline: bool = Field(
        True, description="also run the 'static' policy under the same schedule, for comparison"
    )
    contention: list[ContentionStep] = Field(default_factory=list)
    contention_device: Literal["auto", "cpu", "cuda"] = "auto"
    miss_window: int = Field(10, ge=1, description="deadline policy: frames in the miss window")
    down_after_misses: int = Field(2, ge=1, description="... switch down after k misses in it")
    up_after_on_time: int = Field(20, ge=1, description="... up after m on-time frames in a row")
    headroom: float = Field(
        0.6, gt=0, le=1, description="... each of which finished within this fraction of 1/fps"
    )

    @model_validator(mode="after")
    def _schedule_order(self) -> Adaptive:
        times = [c.at_s for c in self.contention]
        if times != sorted(times):
            raise ValueError("contention steps must be in increasing 'at_s' order")
        return self


ServeScenario = Annotated[Throughput | Stream | Load | Adaptive, Field(discriminator="scenario")]


class EvaluateSettings(Strict):
    """Quality on a held-out split (BasicSR conventions: uint8-rounded, Y or RGB, crop)."""

    split: Literal["test", "val"] = "test"
    max_items: int | None = Field(None, ge=1, description="evaluate at most this many clips")
    crop_border: int = Field(0, ge=0)
    y_channel: bool = Field(True, description="PSNR/SSIM on BT.601 Y (Vid4) or on RGB (REDS)")


class Entry(Strict):
    """One model's life: train -> compress -> serve -> evaluate."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.+\-]+$", min_length=1, max_length=80)
    description: str = ""
    model: ModelSpec
    dataset: DatasetSpec | None = None
    device: str = "auto"
    inherit: str | None = Field(
        None,
        description="reuse this entry's trained model instead of training (its training "
        "energy is counted here too)",
    )
    uses: list[str] = Field(
        default_factory=list,
        description="upstream entries whose energy this entry depends on "
        "(e.g. a teacher); counted in this entry's TEC",
    )
    train: TrainSettings | None = None
    compress: list[CompressStep] = Field(default_factory=list)
    serve: list[ServeScenario] = Field(default_factory=list)
    evaluate: EvaluateSettings = Field(default_factory=EvaluateSettings)
    rank: bool = Field(True, description="show in the leaderboard ranking")

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return folder_name(v, "entry name") or v

    def scenario_names(self) -> list[str]:
        return [s.name or s.scenario for s in self.serve]

    def variants(self) -> list[str]:
        """Entries whose models an ``adaptive`` scenario of this entry switches between."""
        out: list[str] = []
        for s in self.serve:
            for v in getattr(s, "variants", []):
                if v not in out:
                    out.append(v)
        return out


class ExecutorSettings(Strict):
    """Where ``energybench run --executor slurm|local`` runs each entry's job (submitit)."""

    partition: str | None = None
    account: str | None = None
    gpus_per_job: int = Field(0, ge=0, description="GPUs per job (the node is exclusive)")
    cpus_per_job: int | None = Field(None, ge=1)
    time_min: int = Field(
        60,
        ge=1,
        validation_alias=AliasChoices("time_min", "time"),
        description="wall-clock limit of one job in minutes (also accepted as 'time')",
    )
    mem_gb: float | None = Field(None, gt=0)
    retries: int = Field(1, ge=0, description="local: re-runs of a job that died")
    requeues: int = Field(3, ge=0, description="slurm: requeues of a preempted or timed-out job")
    exclusive: bool = Field(True, description="whole nodes per job, so energy is attributable")
    setup: list[str] = Field(
        default_factory=list, description="shell lines run before each job (module load ...)"
    )


class Suite(Strict):
    schema_version: int = SCHEMA_VERSION
    name: str = Field(pattern=r"^[A-Za-z0-9_.\-]+$", min_length=1, max_length=80)
    description: str = ""
    defaults: dict[str, Any] = Field(
        default_factory=dict, description="merged into every entry (the entry's values win)"
    )
    energy: EnergySettings = Field(default_factory=EnergySettings)
    carbon: CarbonSettings = Field(default_factory=CarbonSettings)
    metric: MetricSettings = Field(default_factory=MetricSettings)
    executor: ExecutorSettings | None = None
    entries: list[Entry] = Field(min_length=1)

    @model_serializer(mode="wrap")
    def _dump(self, handler: SerializerFunctionWrapHandler) -> Any:
        return _drop_unset(handler, self, "executor")

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return folder_name(v, "suite name") or v

    def entry(self, name: str) -> Entry:
        for e in self.entries:
            if e.name == name:
                return e
        raise KeyError(name)
