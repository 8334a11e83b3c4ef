"""Plug-ins with settings: a pydantic settings class, a function, one registry line each.

Compression methods (:data:`energybench.suite.methods.COMPRESS_METHODS`, tagged by ``method``)
and serving scenarios (:data:`energybench.suite.scenarios.SERVE_SCENARIOS`, tagged by
``scenario``) share this shape::

    class Toy(CompressSettings):
        method: Literal["toy"]
        scale: float = Field(0.5, gt=0)

    COMPRESS_METHODS.register("toy", toy, settings=Toy)

The suite schema validates a tagged mapping against whatever is registered when the suite is
loaded (:class:`Registered`), so registering a plug-in is the only change the schema needs.
Functions and hooks may be lazy ``"module:attr"`` strings: registering never imports torch.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, get_args

from pydantic import BaseModel, GetCoreSchemaHandler
from pydantic_core import PydanticCustomError, core_schema

from energybench.plugins.registry import Registry, UnknownNameError, resolve

Hook = Callable[..., Any] | str


class SettingsRegistry(Registry[Any]):
    """Plug-in name -> its function (:meth:`get`), settings class and optional named hooks.

    ``tag`` is the settings field that names the plug-in (``method``, ``scenario``); every
    registered class declares it as ``Literal[name]`` and derives from ``base``
    (:attr:`settings_base`; the registry's own ``base`` is ``Callable``: entries are functions).
    """

    def __init__(self, kind: str, tag: str, base: type[BaseModel]) -> None:
        super().__init__(kind, Callable)  # entries: the plug-ins' functions
        self.tag, self.settings_base = tag, base
        self._settings: dict[str, type[BaseModel]] = {}
        self._hooks: dict[tuple[str, str], Hook] = {}

    def register(  # type: ignore[override]
        self,
        name: str,
        target: Hook,
        help: str = "",
        *,
        settings: type[BaseModel],
        **hooks: Hook | None,
    ) -> None:
        """Register plug-in ``name``: its function ``target``, its ``settings`` class (whose tag
        field is ``Literal[name]``) and optional ``hooks`` (e.g. ``recipe=``, ``check=``)."""
        if not issubclass(settings, self.settings_base):
            raise ValueError(f"{settings.__name__} must derive from {self.settings_base.__name__}")
        field = settings.model_fields.get(self.tag)
        if field is None or get_args(field.annotation) != (name,):
            raise ValueError(f"{settings.__name__}.{self.tag} must be Literal['{name}']")
        super().register(name, target, help or (settings.__doc__ or "").split("\n")[0])
        self._settings[name] = settings
        for kind, hook in hooks.items():
            if hook is not None:
                self._hooks[(name, kind)] = hook

    def unregister(self, name: str) -> None:
        """Forget plug-in ``name`` (tests that register a toy plug-in clean up with this)."""
        super().unregister(name)
        self._settings.pop(name, None)
        self._hooks = {k: v for k, v in self._hooks.items() if k[0] != name}

    def settings(self, name: str) -> type[BaseModel]:
        """The settings class of ``name``; :class:`UnknownNameError` with a suggestion."""
        if name not in self._settings:
            raise UnknownNameError(self.kind, name, self.names())
        return self._settings[name]

    def hook(self, name: str, kind: str) -> Callable[..., Any] | None:
        """Plug-in ``name``'s hook ``kind``, None when it has none."""
        hook = self._hooks.get((name, kind))
        return None if hook is None else resolve(hook)

    def validate(self, value: Any) -> BaseModel:
        """``value`` validated by the settings class its tag names (pydantic errors shaped like
        a discriminated union's, so the loader locates and explains them the same way)."""
        if isinstance(value, self.settings_base):
            return value
        known = ", ".join(f"'{n}'" for n in self.names())
        if not isinstance(value, dict):
            raise PydanticCustomError(
                "model_type",
                "a mapping with a '{tag}' ({known})",
                {"tag": self.tag, "known": known},
            )
        if self.tag not in value:
            raise PydanticCustomError(
                "union_tag_not_found",
                "Unable to extract tag using discriminator {discriminator}",
                {"discriminator": f"'{self.tag}'"},
            )
        tag = value[self.tag]
        if not isinstance(tag, str) or tag not in self.names():
            raise PydanticCustomError(
                "union_tag_invalid",
                "Input tag {tag} found using {discriminator} does not match any of the expected "
                "tags: {expected_tags}",
                {"tag": str(tag), "discriminator": f"'{self.tag}'", "expected_tags": known},
            )
        return self.settings(tag).model_validate(value)


class Registered:
    """Pydantic annotation: ``Annotated[Base, Registered(registry)]`` validates by the
    registered plug-in's class and dumps all of that class's fields."""

    def __init__(self, registry: SettingsRegistry) -> None:
        self.registry = registry

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        def dump(value: BaseModel, info: core_schema.SerializationInfo) -> Any:
            return value.model_dump(
                mode=info.mode,
                by_alias=bool(info.by_alias),
                exclude_unset=info.exclude_unset,
                exclude_defaults=info.exclude_defaults,
                exclude_none=info.exclude_none,
            )

        return core_schema.no_info_plain_validator_function(
            self.registry.validate,
            serialization=core_schema.plain_serializer_function_ser_schema(dump, info_arg=True),
        )
