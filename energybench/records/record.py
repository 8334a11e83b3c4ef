"""The base of every stored record: declared fields typed, anything else a writer added kept,
and the keys written back in the order they were given (a file read and written again keeps
its layout). A leaf: it imports only pydantic."""

from __future__ import annotations

from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    ModelWrapValidatorHandler,
    PrivateAttr,
    SerializerFunctionWrapHandler,
    model_serializer,
    model_validator,
)


class Record(BaseModel):
    """A stored record: the fields readers use are declared (and required where always
    written); anything else a writer adds is kept as is."""

    model_config = ConfigDict(extra="allow", frozen=False, ser_json_inf_nan="constants")
    _order: tuple[str, ...] = PrivateAttr(default=())  # the keys in the order they were given

    @model_validator(mode="wrap")
    @classmethod
    def _keep_order(cls, data: Any, handler: ModelWrapValidatorHandler[Any]) -> Any:
        rec = handler(data)
        if isinstance(data, dict) and isinstance(rec, Record):
            # written straight into the private dict: no __setattr__ bookkeeping per record
            rec.__pydantic_private__["_order"] = tuple(data)  # type: ignore[index]
        return rec

    @model_serializer(mode="wrap")
    def _in_order(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """Keys in the order the record was given them (a writer's order, a file's order), so
        a record read and written again keeps its layout; the rest in declaration order."""
        out = handler(self)
        if not self._order or not isinstance(out, dict):
            return out
        return {**{k: out[k] for k in self._order if k in out}, **out}

    def __setattr__(self, name: str, value: Any) -> None:
        super().__setattr__(name, value)
        private = getattr(self, "__pydantic_private__", None) or {}  # None while validating
        order = private.get("_order")
        if not name.startswith("_") and order and name not in order:
            self._order = (*order, name)  # a field set later is written after the rest

    def given(self) -> dict[str, Any]:
        """The fields this record was given (built with or set), by name, in that order, as
        typed: to build a record of another kind from it."""
        return {k: getattr(self, k) for k in self._order}

    def to_json(self) -> dict[str, Any]:
        """The record as the JSON object it is stored as: the fields it was given, an explicit
        None included (a field left at its default is not written), NaN and infinities as
        JSON's ``NaN``/``Infinity``, a value of no JSON type as its ``str``."""
        return self.model_dump(mode="json", exclude_unset=True, fallback=str)
