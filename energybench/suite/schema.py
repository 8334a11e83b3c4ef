"""The suite schema: typed pydantic models of a YAML suite.

Only structure and value ranges live here; cross-references (model names, inherited entries) are
checked in :mod:`energybench.suite.load`, which also turns errors into file:line:col messages.

Every bound is declared once, in :mod:`energybench.suite.base` (re-exported here); compress
steps are the methods registered in :mod:`energybench.suite.methods`. Floats are finite
everywhere (``.inf``/``.nan`` are refused by :class:`Strict`); counts (steps, batch sizes,
frames, trials, ...) have upper bounds far above real use but below what would overflow or
exhaust memory hours into a run (:data:`MAX_STEPS`, :data:`MAX_BATCH`, :data:`MAX_ITEMS`,
:data:`MAX_TRIALS`, ...). Model and dataset parameters are free-form mappings, bounded by
:data:`PARAM_BOUNDS` and checked against the factory's signature by
:mod:`energybench.suite.params`. Suite and entry names are identifiers (:data:`IDENTIFIER`):
they become folder names in the run directory.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    AliasChoices,
    BaseModel,
    Field,
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer,
    model_validator,
)

from energybench.suite.base import (
    DEVICE,
    IDENTIFIER,
    KNOWN_SCHEMA_VERSIONS,
    MAX_BATCH,
    MAX_ENTRIES,
    MAX_EPOCHS,
    MAX_ITEMS,
    MAX_MUI,
    MAX_NAME,
    MAX_PIXELS,
    MAX_RATE,
    MAX_SECONDS,
    MAX_SEED,
    MAX_STEPS,
    MAX_TEXT,
    MAX_TRIALS,
    PARAM_BOUNDS,
    PARAM_LIMIT,
    SCHEMA_VERSION,
    SIZE_PARAMS,
    DatasetSpec,
    FinetuneSettings,
    ModelSpec,
    Strict,
    folder_name,
    identifier,
)
from energybench.suite.energy import (
    CarbonSettings,
    CooldownSettings,
    EnergySettings,
)
from energybench.suite.methods import (
    COMPRESS_METHODS,
    CompressSettings,
    CompressStep,
    Distill,
    Prune,
    Quantize,
    Reparameterize,
)
from energybench.suite.scenarios import (
    SERVE_SCENARIOS,
    Adaptive,
    ContentionStep,
    Load,
    ScenarioSettings,
    ServeScenario,
    Stream,
    Throughput,
)

#: Public names, including those defined in suite.base, energy, methods and scenarios.
__all__ = [
    "Adaptive",
    "BackendSpec",
    "COMPRESS_METHODS",
    "CarbonSettings",
    "CompressSettings",
    "CompressStep",
    "ContentionStep",
    "CooldownSettings",
    "DEVICE",
    "DatasetSpec",
    "Distill",
    "DistributedSettings",
    "EnergySettings",
    "Entry",
    "EvaluateSettings",
    "ExecutorSettings",
    "FinetuneSettings",
    "IDENTIFIER",
    "KNOWN_SCHEMA_VERSIONS",
    "Load",
    "MAX_BATCH",
    "MAX_ENTRIES",
    "MAX_EPOCHS",
    "MAX_ITEMS",
    "MAX_MUI",
    "MAX_NAME",
    "MAX_PIXELS",
    "MAX_RATE",
    "MAX_SECONDS",
    "MAX_SEED",
    "MAX_STEPS",
    "MAX_TEXT",
    "MAX_TRIALS",
    "MetricSettings",
    "ModelSpec",
    "PARAM_BOUNDS",
    "PARAM_LIMIT",
    "Prune",
    "QualityFigure",
    "Quantize",
    "Reparameterize",
    "SCHEMA_VERSION",
    "SERVE_SCENARIOS",
    "SIZE_PARAMS",
    "ScenarioSettings",
    "ServeScenario",
    "Stream",
    "Strict",
    "Suite",
    "Throughput",
    "TrainSettings",
    "UsageIntensity",
    "folder_name",
    "identifier",
]


class UsageIntensity(Strict):
    mui: float = Field(gt=0, le=MAX_MUI, description="inferences (items) over the model's life")
    weight: float = Field(1.0, ge=0, le=1e6)


QualityFigure = str
"""A quality figure some registered task produces (``metric.quality`` names one; checked against
:data:`energybench.tasks.registry.TASKS`)."""


class MetricSettings(Strict):
    """The full-cycle metric G(MUI) = Q^tau / (TEC + MUI * IEC)."""

    tau: float = Field(1.0, ge=0, le=100)
    quality: QualityFigure = Field(
        "ssim",
        max_length=MAX_NAME,
        description="which quality figure is Q (SR: psnr_db, ssim, psnr_gain_db, "
        "bicubic_psnr_db; classification: top1, top5; or a registered task's figure)",
    )
    iec_scenario: str | None = Field(
        None,
        description="serving scenario (by name) whose J/item is IEC; every ranked entry's IEC "
        "comes from a scenario of the same kind and batch size (default: the first scenario "
        "of the first entry that serves)",
    )
    iec_batch_size: int | None = Field(
        None, ge=1, le=MAX_BATCH, description="batch size of the IEC scenario (default: its first)"
    )
    usage_intensities: list[UsageIntensity] = Field(
        default_factory=lambda: [UsageIntensity(mui=m) for m in (1e3, 1e5, 1e7)],
        min_length=1,
        max_length=100,
    )
    pairs: list[tuple[str, str]] = Field(
        default_factory=list,
        max_length=1000,
        description="extra (a, b) entry pairs for break-even analysis",
    )

    @field_validator("quality")
    @classmethod
    def _quality(cls, v: str) -> str:
        from energybench.tasks.registry import TASKS  # a leaf table: imports no runtime

        return TASKS.check_quality(v)

    @model_validator(mode="after")
    def _some_weight(self) -> MetricSettings:
        if not any(u.weight > 0 for u in self.usage_intensities):
            raise ValueError(
                "every usage intensity has weight 0; give at least one a positive weight"
            )
        return self


# --------------------------------------------------------------------------- entry parts
#: Seconds a collective may wait (``timeout_s`` unset): torch's default for NCCL process groups.
DEFAULT_DIST_TIMEOUT_S = 600.0


class DistributedSettings(Strict):
    """A train phase run by ``nproc_per_node`` DDP ranks under torch's elastic launcher."""

    nproc_per_node: int = Field(2, ge=1, le=64, description="ranks (one GPU each on GPUs)")
    nnodes: int = Field(1, ge=1, le=1024, description="nodes (only 1 is supported)")
    backend: Literal["auto", "gloo", "nccl"] = Field(
        "auto", description="auto: nccl on GPUs, gloo on the CPU"
    )
    timeout_s: float | None = Field(
        None,
        gt=0,
        le=86400,
        description="seconds a collective (NCCL/gloo) may wait before the ranks fail; default "
        f"{DEFAULT_DIST_TIMEOUT_S:g} s (torch's NCCL default): a hung rank fails the phase "
        "instead of holding the GPUs",
    )

    @field_validator("nnodes")
    @classmethod
    def _one_node(cls, v: int) -> int:
        if v > 1:  # refused before any work: every rank would silently run on this node
            raise ValueError(
                f"nnodes {v}: multi-node training is not supported (every rank would run on "
                "this node); use nnodes: 1 and up to one rank per GPU of the node "
                "(nproc_per_node)"
            )
        return v

    @model_serializer(mode="wrap")
    def _dump(self, handler: SerializerFunctionWrapHandler) -> Any:
        return _drop_unset(handler, self, "timeout_s")


def _drop_unset(handler: SerializerFunctionWrapHandler, obj: BaseModel, *keys: str) -> Any:
    """Serialise ``obj`` without the optional ``keys`` that are None or empty (older hashes
    unchanged)."""
    data = handler(obj)
    for k in keys:
        if isinstance(data, dict) and k in data and data[k] in (None, []):
            del data[k]
    return data


class TrainSettings(Strict):
    steps: int | None = Field(None, ge=0, le=MAX_STEPS)
    epochs: int | None = Field(None, ge=0, le=MAX_EPOCHS)
    optimizer: Literal["adam", "adamw", "sgd"] = "adam"
    batch_size: Annotated[int, Field(ge=1, le=MAX_BATCH)] | Literal["auto"] = Field(
        16,
        description="items per optimiser step, or auto: on a GPU the largest power of two "
        "whose measured training-step memory fits 60 % of the device (energybench.train.sizing)"
        "; on the CPU 16",
    )
    max_batch_size: int | None = Field(
        None,
        ge=1,
        le=MAX_BATCH,
        description="with batch_size: auto, the largest batch it may pick (default 1024): "
        "keeps the time of a fixed number of steps bounded on a large GPU",
    )
    lr: float = Field(1e-3, gt=0, le=100)
    lr_schedule: Literal["constant", "cosine"] = "cosine"
    weight_decay: float = Field(0.0, ge=0, le=100)
    seed: int = Field(0, ge=0, le=MAX_SEED)
    log_every: int = Field(50, ge=1, le=MAX_STEPS)
    distributed: DistributedSettings | None = Field(
        None, description="train with several DDP ranks (energybench.train.distributed)"
    )

    @model_validator(mode="after")
    def _steps_or_epochs(self) -> TrainSettings:
        if self.steps is not None and self.epochs is not None:
            raise ValueError("give either 'steps' or 'epochs', not both")
        d = self.distributed
        if self.max_batch_size is not None and self.batch_size != "auto":
            raise ValueError("max_batch_size applies to batch_size: auto only")
        if d is not None and self.batch_size == "auto":
            raise ValueError(
                "batch_size: auto is sized on one device; give a number with distributed training"
            )
        if d is not None and self.batch_size % (d.nproc_per_node * d.nnodes):
            raise ValueError(
                f"batch_size ({self.batch_size}) must be a multiple of the ranks "
                f"({d.nproc_per_node * d.nnodes}): each rank takes an equal share of every batch"
            )
        return self

    @model_serializer(mode="wrap")
    def _dump(self, handler: SerializerFunctionWrapHandler) -> Any:
        return _drop_unset(handler, self, "distributed")


class BackendSpec(Strict):
    """How an entry's final model is served (and evaluated): the inference runtime.

    ``eager`` (PyTorch, the default) and ``compile`` (``torch.compile``) run the module itself;
    ``onnxruntime`` and ``openvino`` run a ``torch.onnx`` export of one step (recurrent state as
    explicit inputs/outputs). The export (or compilation) is measured in its own window and
    counted in TEC like a compression step; outputs are checked against eager first.
    """

    name: str = Field(
        "eager", max_length=MAX_NAME, description="eager | compile | onnxruntime | openvino"
    )
    channels_last: bool = Field(False, description="PyTorch backends: NHWC memory format")
    compile_mode: Literal["default", "reduce-overhead", "max-autotune"] = Field(
        "default", description="backend 'compile': the torch.compile mode"
    )
    autocast: Literal["none", "fp16", "bf16"] = Field(
        "none",
        description="eager/compile: run under torch.autocast with this dtype (fp16 for GPUs; "
        "bf16 also on CPUs); outputs differ from fp32, so the difference is recorded, not "
        "checked against parity_tolerance",
    )
    dtype: Literal["fp32", "bf16"] = Field(
        "fp32",
        description="eager/compile: bf16 serves a bf16 copy of the model (weights, activations "
        "and recurrent state in bf16, NHWC: oneDNN's AMX/AVX512-BF16 kernels on CPUs); outputs "
        "are returned in fp32; refused on a CPU without bf16 units; the PSNR drop against fp32 "
        "is recorded at evaluate",
    )
    freeze: bool = Field(
        True,
        description="backend 'compile': inductor freezing (weights as constants: convolutions "
        "pre-packed and fused with their activation or sum; inference only)",
    )
    graph_optimization: Literal["disable", "basic", "extended", "all"] = Field(
        "all", description="onnxruntime: graph optimisation level (ORT_ENABLE_ALL = 'all')"
    )
    intra_op_threads: int | None = Field(
        None,
        ge=1,
        le=4096,
        description="onnxruntime/openvino: threads per operator (None: runtime's)",
    )
    allow_spinning: bool = Field(
        True,
        description="onnxruntime: worker threads spin-wait between operators (ORT's default; "
        "false saves CPU time, and energy, in the idle gaps of a stream)",
    )
    providers: list[str] | None = Field(
        None,
        max_length=16,
        description="onnxruntime execution providers, in order (default: TensorRT/CUDA when the "
        "entry runs on a GPU and they are installed, then CPU)",
    )
    opset: int = Field(17, ge=11, le=21, description="ONNX opset of the export")
    dynamic_batch: bool = Field(True, description="export with a dynamic batch axis")
    quantize: Literal["none", "int8"] = Field(
        "none",
        description="int8, calibrated on the same training batches as the FX int8 compress "
        "method: onnxruntime: static QDQ (quantize_static); eager: FX static int8 on oneDNN "
        "(AMX/VNNI int8 convolutions; CPU only, refused on a CPU without them)",
    )
    calibration_batches: int = Field(
        8, ge=1, le=MAX_ITEMS, description="quantize: int8 calibration batches"
    )
    parity_frames: int = Field(
        4, ge=1, le=MAX_ITEMS, description="frames compared with eager after export"
    )
    parity_tolerance: float | None = Field(
        None,
        gt=0,
        le=1e6,
        description="fp32: largest allowed |backend - eager| (else the phase fails); default "
        "per backend and device (serve/backends/core.py PARITY_TOLERANCE: 1e-4 where the "
        "served path is exact fp32, 5e-3 where it may use TF32 on a GPU: TensorRT, or TF32 on)",
    )

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        return {"name": data} if isinstance(data, str) else data

    def is_default(self) -> bool:
        """True for plain eager PyTorch (today's serving; not part of phase hashes)."""
        return not self.model_dump(exclude_defaults=True)


class EvaluateSettings(Strict):
    """Quality on a held-out split (BasicSR conventions: uint8-rounded, Y or RGB, crop)."""

    split: Literal["test", "val"] = "test"
    max_items: int | None = Field(
        None, ge=1, le=MAX_ITEMS, description="evaluate at most this many clips"
    )
    crop_border: int = Field(0, ge=0, le=MAX_PIXELS)
    y_channel: bool = Field(True, description="PSNR/SSIM on BT.601 Y (Vid4) or on RGB (REDS)")


class Entry(Strict):
    """One model's life: train -> compress -> serve -> evaluate."""

    name: str = Field(description=f"an identifier: {IDENTIFIER}")
    description: str = Field("", max_length=MAX_TEXT)
    model: ModelSpec
    dataset: DatasetSpec | None = None
    device: str = Field("auto", description=f"where it runs: {DEVICE}")
    inherit: str | None = Field(
        None,
        max_length=MAX_NAME,
        description="reuse this entry's trained model instead of training (its training "
        "energy is counted here too)",
    )
    uses: list[str] = Field(
        default_factory=list,
        max_length=MAX_ENTRIES,
        description="upstream entries whose energy this entry depends on "
        "(e.g. a teacher); counted in this entry's TEC",
    )
    train: TrainSettings | None = None
    compress: list[CompressStep] = Field(default_factory=list, max_length=64)
    serve: list[ServeScenario] = Field(default_factory=list, max_length=64)
    backend: BackendSpec = Field(
        default_factory=BackendSpec,
        description="inference runtime the final model is served and evaluated on",
    )
    evaluate: EvaluateSettings = Field(default_factory=EvaluateSettings)
    rank: bool = Field(True, description="show in the leaderboard ranking")

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return identifier(v, "entry name")

    @field_validator("device")
    @classmethod
    def _device(cls, v: str) -> str:
        if not re.fullmatch(DEVICE, v):
            raise ValueError(
                f"device {v[:40]!r} is not one of auto, cpu, cuda, cuda:N (N the GPU's index)"
            )
        return v

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


class NumericsSettings(Strict):
    """GPU numerics, set explicitly before any work and recorded in the run's environment.

    The default is exact fp32 (no TF32, ``highest`` matmul precision) and no cuDNN autotuning,
    so fp32 backends agree with eager within 1e-4 and a measured window never contains an
    autotuning pass. ``tf32: true`` (cuDNN convolutions, and ONNX Runtime's CUDA ``use_tf32``)
    and ``matmul_precision: high`` trade ~1e-3 relative error for tensor-core speed;
    ``cudnn_benchmark: true`` autotunes convolutions per input shape (ONNX Runtime:
    ``cudnn_conv_algo_search: EXHAUSTIVE``; else ``HEURISTIC``)."""

    tf32: bool = Field(
        False,
        description="TF32 in cuDNN convolutions (torch.backends.cudnn.allow_tf32) and ONNX "
        "Runtime CUDA (use_tf32)",
    )
    matmul_precision: Literal["highest", "high", "medium"] = Field(
        "highest",
        description="torch.set_float32_matmul_precision (high/medium: TF32/bf16 matmuls)",
    )
    cudnn_benchmark: bool = Field(
        False, description="torch.backends.cudnn.benchmark (autotune convolutions per shape)"
    )

    def uses_tf32(self) -> bool:
        """True when fp32 work may run in reduced precision (TF32 convs or matmuls)."""
        return self.tf32 or self.matmul_precision != "highest"


class ExecutorSettings(Strict):
    """Where ``energybench run --executor slurm|local`` runs each entry's job (submitit)."""

    partition: str | None = Field(None, max_length=MAX_NAME)
    account: str | None = Field(None, max_length=MAX_NAME)
    gpus_per_job: int = Field(0, ge=0, le=1024, description="GPUs per job (the node is exclusive)")
    cpus_per_job: int | None = Field(None, ge=1, le=100_000)
    time_min: int = Field(
        60,
        ge=1,
        le=525_600,
        validation_alias=AliasChoices("time_min", "time"),
        description="wall-clock limit of one job in minutes (also accepted as 'time')",
    )
    mem_gb: float | None = Field(None, gt=0, le=1e6)
    retries: int = Field(1, ge=0, le=100, description="local: re-runs of a job that died")
    requeues: int = Field(
        3, ge=0, le=100, description="slurm: requeues of a preempted or timed-out job"
    )
    exclusive: bool = Field(True, description="whole nodes per job, so energy is attributable")
    setup: list[str] = Field(
        default_factory=list,
        max_length=100,
        description="shell lines run before each job (module load ...)",
    )


class Suite(Strict):
    schema_version: int = Field(
        SCHEMA_VERSION, description=f"one of {KNOWN_SCHEMA_VERSIONS} (this energybench's)"
    )
    name: str = Field(description=f"an identifier: {IDENTIFIER}")
    description: str = Field("", max_length=MAX_TEXT)
    defaults: dict[str, Any] = Field(
        default_factory=dict, description="merged into every entry (the entry's values win)"
    )
    energy: EnergySettings = Field(default_factory=EnergySettings)
    carbon: CarbonSettings = Field(default_factory=CarbonSettings)
    metric: MetricSettings = Field(default_factory=MetricSettings)
    executor: ExecutorSettings | None = None
    plugins: list[str] = Field(
        default_factory=list,
        max_length=64,
        description="installed plug-ins (entry points of group 'energybench.plugins') whose "
        "models, datasets, methods, scenarios, backends or meters this suite names",
    )
    numerics: NumericsSettings | None = Field(
        None, description="GPU numerics (TF32, matmul precision, cudnn.benchmark); default: exact"
    )
    entries: list[Entry] = Field(min_length=1, max_length=MAX_ENTRIES)

    @field_validator("schema_version")
    @classmethod
    def _version(cls, v: int) -> int:
        if v not in KNOWN_SCHEMA_VERSIONS:
            known = ", ".join(map(str, KNOWN_SCHEMA_VERSIONS))
            raise ValueError(
                f"schema_version {v} is not known to this energybench (known: {known}); "
                "upgrade energybench or write the suite for a known version"
            )
        return v

    @model_serializer(mode="wrap")
    def _dump(self, handler: SerializerFunctionWrapHandler) -> Any:
        return _drop_unset(handler, self, "executor", "plugins", "numerics")

    @field_validator("plugins")
    @classmethod
    def _plugins(cls, v: list[str]) -> list[str]:
        return [identifier(p, "plug-in name") for p in v]

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return identifier(v, "suite name")

    def entry(self, name: str) -> Entry:
        for e in self.entries:
            if e.name == name:
                return e
        raise KeyError(name)
