"""Compression methods as plug-ins: a settings class, a function, one registry line each.

A method is a pydantic settings class (a :class:`CompressSettings` whose ``method`` is a
``Literal`` of its name) and a function ``apply(step, model, ctx) -> (model, info)``,
registered in :data:`COMPRESS_METHODS`::

    class Toy(CompressSettings):
        method: Literal["toy"]
        scale: float = Field(0.5, gt=0)

    def toy(step, model, ctx): ...

    COMPRESS_METHODS.register("toy", toy, settings=Toy)

The suite schema validates ``compress`` steps against whatever is registered when a suite is
loaded (:data:`CompressStep`), and the loader, the runner, checkpoints and the report take
everything else from the registry. Optional hooks: ``recipe(step, info, model)`` the structural
change a checkpoint must replay (none: weights only), and ``check(step, model)`` a sentence
when the method cannot work on a built model (checked by ``validate``). Functions may be lazy
``"module:attr"`` strings, so registering never imports torch.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from energybench.suite.base import MAX_BATCH, MAX_STEPS, FinetuneSettings, ModelSpec, Strict
from energybench.suite.plugins import Registered, SettingsRegistry


class CompressSettings(Strict):
    """Settings every compress step has; a method's class adds its own fields."""

    method: str
    finetune: FinetuneSettings | None = None

    def changes_architecture(self) -> bool:
        """True when the step replaces the model's structure (``validate`` checks steps on the
        built model up to the first such step)."""
        return False


class Reparameterize(CompressSettings):
    method: Literal["reparameterize"]

    def changes_architecture(self) -> bool:
        return True


class Prune(CompressSettings):
    method: Literal["prune"]
    kind: Literal["structured", "unstructured"] = "structured"
    amount: float = Field(0.3, gt=0, lt=1)
    criterion: Literal["l1", "l2", "magnitude"] = "l1"
    scope: Literal["layer", "global"] = Field(
        "layer", description="unstructured only: rank weights per layer or across all layers"
    )

    def changes_architecture(self) -> bool:
        return self.kind == "structured"


class Quantize(CompressSettings):
    method: Literal["quantize"]
    dtype: Literal["int8", "fp16", "bf16"] = "int8"
    mode: Literal["static", "dynamic", "cast"] = "static"
    calibration_batches: int = Field(8, ge=1, le=100_000)


class Distill(CompressSettings):
    method: Literal["distill"]
    student: ModelSpec = Field(description="a registered model (checked like an entry's model)")
    steps: int = Field(200, ge=1, le=MAX_STEPS)
    lr: float = Field(1e-3, gt=0, le=100)
    batch_size: int = Field(16, ge=1, le=MAX_BATCH)
    alpha: float = Field(0.5, ge=0, le=1, description="weight of the teacher term in the loss")

    def changes_architecture(self) -> bool:
        return True


COMPRESS_METHODS = SettingsRegistry("compress method", "method", CompressSettings)
COMPRESS_METHODS.register(
    "reparameterize",
    "energybench.compress.methods:reparameterize",
    settings=Reparameterize,
    recipe="energybench.compress.methods:reparameterize_recipe",
    check="energybench.compress.methods:reparameterize_check",
)
COMPRESS_METHODS.register(
    "prune",
    "energybench.compress.prune:prune_model",
    settings=Prune,
    recipe="energybench.compress.prune:prune_recipe",
    check="energybench.compress.prune:prune_check",
)
COMPRESS_METHODS.register(
    "quantize",
    "energybench.compress.methods:quantize",
    settings=Quantize,
    recipe="energybench.compress.methods:quantize_recipe",
)
COMPRESS_METHODS.register(
    "distill",
    "energybench.compress.distill:distill_model",
    settings=Distill,
    recipe="energybench.compress.distill:distill_recipe",
)


CompressStep = Annotated[CompressSettings, Registered(COMPRESS_METHODS)]
"""One ``compress`` step: the settings of a method registered in :data:`COMPRESS_METHODS`."""
