"""The suite schema's building blocks: bounds, names, the strict base model, and the specs that
other schema modules share (a model reference, a dataset, fine-tuning settings).

Every bound is declared here, once (see :mod:`energybench.suite.schema`).
"""

from __future__ import annotations

import math
import re
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    model_serializer,
    model_validator,
)

SCHEMA_VERSION = 1
KNOWN_SCHEMA_VERSIONS = (1,)

IDENTIFIER = r"^[A-Za-z0-9_+\-][A-Za-z0-9_.+\-]{0,63}$"
"""Suite and entry names: 1-64 of letters, digits, ``_ + - .``, not starting with ``.`` (no
path separator, never ``.``/``..``); entry names are also unique ignoring case."""
MAX_NAME = 128  # scenario names (never used in paths), model/dataset names, references
MAX_TEXT = 10_000  # descriptions

MAX_ENTRIES = 256
MAX_STEPS = 10_000_000  # training/fine-tuning/distillation steps
MAX_EPOCHS = 100_000
MAX_BATCH = 65_536  # any batch size
MAX_ITEMS = 10_000_000  # frames, requests, iterations, evaluated items
MAX_TRIALS = 1_000
MAX_SECONDS = 86_400.0  # any duration or wait, in seconds (one day)
MAX_RATE = 1_000_000.0  # frames or requests per second
MAX_SEED = 2**32 - 1
MAX_MUI = 1e18  # items served over a model's life

#: Bounds of model and dataset parameters, by parameter name, or ``"<registry name>.<param>"``
#: for one model or dataset (which wins). Every number in ``params`` must also be finite and
#: at most ``PARAM_LIMIT`` in size; image sizes (``"WxH"``, N or [W, H]) at most ``MAX_PIXELS``.
PARAM_BOUNDS: dict[str, tuple[float, float]] = {
    "channels": (1, 4096),
    "layers": (1, 256),
    "espcn.layers": (2, 256),
    "blocks": (1, 256),
    "first_kernel": (1, 31),
    "graft_kernel": (1, 31),
    "scale": (1, 16),
    "patch_size": (1, 8192),
    "seq_frames": (1, 100_000),
    "max_frames": (1, 100_000),
    "eval_frames": (1, 100_000),
    "train_items": (1, MAX_ITEMS),
    "image_size": (8, 8192),
    "pad_crop_px": (0, 1024),
    "seed": (0, MAX_SEED),
    "val_fraction": (0, 0.99),
    "test_fraction": (0, 0.99),
    "num_classes": (1, 1_000_000),
    "in_chans": (1, 64),
    "main_init_scale": (0, 100),
}
PARAM_LIMIT = 2.0**53
SIZE_PARAMS = ("test_crop", "serve_lr", "seq_size", "hr_size")
MAX_PIXELS = 8192
DEVICE = r"^(auto|cpu|cuda(:[0-9]{1,2})?)$"
"""Entry devices: ``auto`` (the first GPU if any, else the CPU), ``cpu``, ``cuda``, ``cuda:N``."""


def identifier(value: str, what: str) -> str:
    """``value`` if it is an :data:`IDENTIFIER`, else a ValueError that says why."""
    if value.startswith("."):
        raise ValueError(
            f"{what} '{value}' starts with '.'; names are used as folder and file names in "
            "the run directory, where '.' and '..' point outside it, so start the name with a "
            "letter, digit, _, + or -"
        )
    if not re.fullmatch(IDENTIFIER, value):
        raise ValueError(
            f"{what} {value[:80]!r} is not a name: use 1-64 letters, digits, '_', '+', '-' "
            "or '.' (no '/', spaces or other characters; names become folder names)"
        )
    return value


def folder_name(value: str | None, what: str) -> str | None:
    """``value`` unless it starts with '.' ('.', '..', '.hidden'), which names outside a run
    folder; for names that are not identifiers (scenario names)."""
    if value is not None and value.startswith("."):
        identifier(value, what)
    return value


class Strict(BaseModel):
    """Unknown keys are errors; floats are finite (``.inf`` and ``.nan`` are refused)."""

    model_config = ConfigDict(extra="forbid", frozen=False, allow_inf_nan=False)


SHA256 = r"^[0-9a-f]{64}$"


class WeightsSpec(Strict):
    """Pretrained weights a model starts from: a local file, a file of the local Hugging Face
    cache, or a torchvision weight set in torch's cache; always pinned by sha256 (see
    :mod:`energybench.models.weights`). ``upstream_energy_j``: the declared energy that
    produced them (counted in TEC as a declared, not measured, cost), or "unknown"."""

    path: str | None = Field(None, max_length=4096, description="a local file (suite-relative)")
    hf: str | None = Field(
        None, max_length=MAX_NAME, pattern=r"^[\w.-]+/[\w.-]+$", description="org/repo"
    )
    revision: str | None = Field(
        None, pattern=r"^[0-9a-f]{40}$", description="the repo's commit (40 hex), with hf"
    )
    file: str | None = Field(None, max_length=1024, description="the file in the repo, with hf")
    torchvision: str | None = Field(
        None, max_length=MAX_NAME, description="a torchvision weight set, e.g. IMAGENET1K_V1"
    )
    sha256: str = Field(pattern=SHA256, description="sha256 of the file (64 lower-case hex)")
    strict: bool = Field(True, description="every parameter of the model must be in the file")
    upstream_energy_j: float | Literal["unknown"] = Field(
        "unknown", description="energy that produced these weights (J), or 'unknown'"
    )
    upstream_source: str = Field(
        "", max_length=MAX_TEXT, description="where the upstream figure comes from"
    )

    @model_validator(mode="after")
    def _one_source(self) -> WeightsSpec:
        given = [k for k in ("path", "hf", "torchvision") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                "weights need exactly one of path, hf (with revision and file) or torchvision; "
                f"found {', '.join(given) or 'none'}"
            )
        if self.hf is not None and (self.revision is None or self.file is None):
            raise ValueError("weights from hf need revision (a 40-hex commit) and file")
        up = self.upstream_energy_j
        if isinstance(up, float) and not (math.isfinite(up) and up >= 0):
            raise ValueError("upstream_energy_j must be a finite energy >= 0 J or 'unknown'")
        return self


class ModelSpec(Strict):
    """A registered model and its constructor parameters (checked at validate, see
    :data:`PARAM_BOUNDS`), and the pretrained weights it starts from (if any)."""

    name: str = Field(max_length=MAX_NAME)
    params: dict[str, Any] = Field(default_factory=dict)
    weights: WeightsSpec | None = None

    @model_serializer(mode="wrap")
    def _dump(self, handler: SerializerFunctionWrapHandler) -> Any:
        data = handler(self)
        if isinstance(data, dict) and data.get("weights", 0) is None:
            del data["weights"]  # suites without weights keep their config hashes
        return data


class DatasetSpec(Strict):
    """A registered dataset and its parameters (checked at validate, see :data:`PARAM_BOUNDS`)."""

    name: str = Field(max_length=MAX_NAME)
    params: dict[str, Any] = Field(default_factory=dict)


class FinetuneSettings(Strict):
    steps: int = Field(0, ge=0, le=MAX_STEPS)
    lr: float = Field(1e-4, gt=0, le=100)
    batch_size: int | None = Field(None, ge=1, le=MAX_BATCH)
