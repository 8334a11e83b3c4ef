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

from collections.abc import Callable
from typing import Annotated, Any, Literal, get_args

from pydantic import Field, GetCoreSchemaHandler
from pydantic_core import PydanticCustomError, core_schema

from energybench.registry import Registry, UnknownNameError, resolve
from energybench.suite.base import MAX_BATCH, MAX_STEPS, FinetuneSettings, ModelSpec, Strict


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


Hook = Callable[..., Any] | str


class CompressRegistry(Registry[Any]):
    """Method name -> its function (:meth:`get`), settings class, and optional hooks."""

    def __init__(self) -> None:
        super().__init__("compress method")
        self._settings: dict[str, type[CompressSettings]] = {}
        self._hooks: dict[tuple[str, str], Hook] = {}

    def register(  # type: ignore[override]
        self,
        name: str,
        target: Hook,
        help: str = "",
        *,
        settings: type[CompressSettings],
        recipe: Hook | None = None,
        check: Hook | None = None,
    ) -> None:
        """Register method ``name``: its function ``target``, its ``settings`` class (whose
        ``method`` field is ``Literal[name]``), and the optional ``recipe``/``check`` hooks."""
        tag = settings.model_fields["method"].annotation
        if get_args(tag) != (name,):
            raise ValueError(f"{settings.__name__}.method must be Literal['{name}']")
        super().register(name, target, help or (settings.__doc__ or "").split("\n")[0])
        self._settings[name] = settings
        for kind, hook in (("recipe", recipe), ("check", check)):
            if hook is not None:
                self._hooks[(name, kind)] = hook

    def unregister(self, name: str) -> None:
        """Forget method ``name`` (tests that register a toy method clean up with this)."""
        self._entries.pop(name, None)
        self._help.pop(name, None)
        self._settings.pop(name, None)
        self._hooks = {k: v for k, v in self._hooks.items() if k[0] != name}

    def settings(self, name: str) -> type[CompressSettings]:
        """The settings class of ``name``; :class:`UnknownNameError` with a suggestion."""
        if name not in self._settings:
            raise UnknownNameError(self.kind, name, self.names())
        return self._settings[name]

    def hook(self, name: str, kind: Literal["recipe", "check"]) -> Callable[..., Any] | None:
        """Method ``name``'s ``recipe`` or ``check`` hook, None when it has none."""
        hook = self._hooks.get((name, kind))
        return None if hook is None else resolve(hook)


COMPRESS_METHODS = CompressRegistry()
COMPRESS_METHODS.register(
    "reparameterize",
    "energybench.lifecycle.compress:reparameterize",
    settings=Reparameterize,
    recipe="energybench.lifecycle.compress:reparameterize_recipe",
    check="energybench.lifecycle.compress:reparameterize_check",
)
COMPRESS_METHODS.register(
    "prune",
    "energybench.lifecycle.prune:prune_model",
    settings=Prune,
    recipe="energybench.lifecycle.prune:prune_recipe",
    check="energybench.lifecycle.prune:prune_check",
)
COMPRESS_METHODS.register(
    "quantize",
    "energybench.lifecycle.compress:quantize",
    settings=Quantize,
    recipe="energybench.lifecycle.compress:quantize_recipe",
)
COMPRESS_METHODS.register(
    "distill",
    "energybench.lifecycle.distill:distill_model",
    settings=Distill,
    recipe="energybench.lifecycle.distill:distill_recipe",
)


def _validate_step(value: Any) -> CompressSettings:
    """A compress step validated by the settings class its ``method`` names in the registry."""
    if isinstance(value, CompressSettings):
        return value
    known = ", ".join(f"'{n}'" for n in COMPRESS_METHODS.names())
    if not isinstance(value, dict):
        raise PydanticCustomError(
            "model_type", "a mapping with a 'method' ({known})", {"known": known}
        )
    if "method" not in value:
        raise PydanticCustomError(
            "union_tag_not_found",
            "Unable to extract tag using discriminator 'method'",
            {"discriminator": "'method'"},
        )
    tag = value["method"]
    if not isinstance(tag, str) or tag not in COMPRESS_METHODS.names():
        raise PydanticCustomError(
            "union_tag_invalid",
            "Input tag {tag} found using {discriminator} does not match any of the expected "
            "tags: {expected_tags}",
            {"tag": str(tag), "discriminator": "'method'", "expected_tags": known},
        )
    return COMPRESS_METHODS.settings(tag).model_validate(value)


class _Registered:
    """Pydantic annotation: validate by the registered method's class, dump all its fields."""

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        def dump(step: CompressSettings, info: core_schema.SerializationInfo) -> Any:
            return step.model_dump(
                mode=info.mode,
                by_alias=bool(info.by_alias),
                exclude_unset=info.exclude_unset,
                exclude_defaults=info.exclude_defaults,
                exclude_none=info.exclude_none,
            )

        return core_schema.no_info_plain_validator_function(
            _validate_step,
            serialization=core_schema.plain_serializer_function_ser_schema(dump, info_arg=True),
        )


CompressStep = Annotated[CompressSettings, _Registered()]
"""One ``compress`` step: the settings of a method registered in :data:`COMPRESS_METHODS`."""
