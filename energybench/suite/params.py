"""Model and dataset parameters checked at ``validate``, before a run folder exists.

``params`` is a free-form mapping passed to a registered factory. Each value is checked against
the factory's signature (its type hints, strictly: ``channels: "abc"`` is not an int) and
against :data:`~energybench.suite.schema.PARAM_BOUNDS`; every number anywhere in ``params`` is
finite and bounded, image sizes are bounded. Nothing is built here (building a model, even on
PyTorch's ``meta`` device, costs seconds): checks only a constructor makes (``espcn`` wants an
odd ``first_kernel``) are reported by the run when it builds the model.
"""

from __future__ import annotations

import inspect
import math
import typing
from functools import lru_cache
from typing import Any

from pydantic import ConfigDict, TypeAdapter, ValidationError

from energybench.plugins.registry import Registry
from energybench.suite.schema import MAX_PIXELS, PARAM_BOUNDS, PARAM_LIMIT, SIZE_PARAMS

Found = tuple[str, str]  # (parameter, sentence)


def _target(factory: Any) -> Any:
    return factory.__init__ if inspect.isclass(factory) else factory


@lru_cache(maxsize=256)
def _adapter(factory: Any, param: str) -> TypeAdapter | None:
    """A strict validator for ``param`` from the factory's type hints (None when unknown)."""
    try:
        hint = typing.get_type_hints(_target(factory)).get(param)
        if hint is None or hint is Any:
            return None
        return TypeAdapter(hint, config=ConfigDict(strict=True, arbitrary_types_allowed=True))
    except Exception:  # noqa: BLE001 - unresolvable hints: the run checks the value
        return None


def _numbers(value: Any) -> list[int | float]:
    if isinstance(value, bool):
        return []
    if isinstance(value, int | float):
        return [value]
    if isinstance(value, list):
        return [n for v in value for n in _numbers(v)]
    if isinstance(value, dict):
        return [n for v in value.values() for n in _numbers(v)]
    return []


def _show(n: float) -> str:
    """``n`` for a message (an integer too large for a float, 10**400, is described, not shown)."""
    try:
        return f"{n:g}"
    except OverflowError:
        return "an integer of hundreds of digits"


def _bounds(name: str, key: str, value: Any) -> str | None:
    for n in _numbers(value):
        if isinstance(n, float) and not math.isfinite(n):
            return f"'{key}' must be a finite number; found {n}"
        if abs(n) > PARAM_LIMIT:
            return f"'{key}' is out of range; found {_show(n)}"
    lo_hi = PARAM_BOUNDS.get(f"{name}.{key}") or PARAM_BOUNDS.get(key)
    if lo_hi is not None:
        lo, hi = lo_hi
        bad = [n for n in _numbers(value) if not lo <= n <= hi]
        if bad:
            return f"'{key}' must be between {lo:g} and {hi:g}; found {_show(bad[0])}"
    if key in SIZE_PARAMS and value is not None:
        from energybench.data.clipset import DatasetConfigError, parse_size

        try:
            w, h = parse_size(value, key)
        except (DatasetConfigError, TypeError, ValueError) as exc:
            return str(exc)
        if max(w, h) > MAX_PIXELS:
            return f"'{key}' must be at most {MAX_PIXELS} pixels a side; found {w}x{h}"
    return None


def param_problems(registry: Registry[Any], name: str, params: dict[str, Any]) -> list[Found]:
    """``(parameter, sentence)`` for each parameter of ``name`` that cannot work (``""`` as the
    parameter for a problem of the whole set). Raises ``UnknownNameError`` for unknown names."""
    found: list[Found] = []
    for msg in registry.check_params(name, params):
        found.append((msg.split("'")[3], msg))
    factory = registry.get(name)
    family = registry._family_member(name) is not None  # noqa: SLF001 - partial of a family
    for key, value in params.items():
        if any(k == key for k, _ in found):
            continue
        why = _bounds(name, str(key), value)
        adapter = None if family else _adapter(factory, str(key))
        if why is None and adapter is not None:
            try:
                adapter.validate_python(value)
            except ValidationError as exc:
                msg = exc.errors()[0]["msg"]
                why = f"'{key}': expected {msg[0].lower()}{msg[1:]}; found {repr(value)[:60]}"
        if why is not None:
            found.append((str(key), f"{registry.kind} '{name}': {why}"))
    return found
