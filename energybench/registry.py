"""A small typed registry: name -> factory, with lazy ``"module:attr"`` entries and did-you-mean.

It only maps names to callables; it never imports heavy modules until an entry is used.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class UnknownNameError(KeyError):
    """A name that is not in a registry; ``str()`` is a user-facing sentence."""

    def __init__(self, kind: str, name: str, known: list[str]) -> None:
        self.kind, self.name, self.known = kind, name, known
        close = difflib.get_close_matches(name, known, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        super().__init__(f"unknown {kind} '{name}'{hint} (known: {', '.join(sorted(known))})")

    def __str__(self) -> str:
        return str(self.args[0])


class Registry(Generic[T]):
    """Maps names to factories: callables or lazy ``"package.module:attr"`` strings."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Callable[..., T] | str] = {}
        self._help: dict[str, str] = {}

    def register(self, name: str, target: Callable[..., T] | str, help: str = "") -> None:
        """Register ``target`` (a factory, or a lazy ``"module:attr"`` path) under ``name``."""
        if name in self._entries:
            raise ValueError(f"{self.kind} '{name}' is registered twice")
        self._entries[name] = target
        self._help[name] = help

    def __call__(self, name: str, help: str = "") -> Callable[[Callable[..., T]], Callable[..., T]]:
        """Decorator form of :meth:`register`."""

        def deco(fn: Callable[..., T]) -> Callable[..., T]:
            self.register(name, fn, help or (inspect.getdoc(fn) or "").split("\n")[0])
            return fn

        return deco

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._entries))

    def names(self) -> list[str]:
        return sorted(self._entries)

    def help(self, name: str) -> str:
        self.get(name)
        if not self._help.get(name):
            self._help[name] = (inspect.getdoc(self.get(name)) or "").split("\n")[0]
        return self._help[name]

    def get(self, name: str) -> Callable[..., T]:
        """The factory for ``name``; raises :class:`UnknownNameError` with a suggestion."""
        try:
            target = self._entries[name]
        except KeyError:
            raise UnknownNameError(self.kind, name, list(self._entries)) from None
        if isinstance(target, str):
            module, _, attr = target.partition(":")
            target = getattr(importlib.import_module(module), attr)
            self._entries[name] = target
        return target

    def create(self, name: str, **params: Any) -> T:
        return self.get(name)(**params)

    def check_params(self, name: str, params: dict[str, Any]) -> list[str]:
        """Sentences describing parameters the factory does not accept (empty when all fit)."""
        sig = inspect.signature(self.get(name))
        if any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values()):
            return []
        accepted = [p for p in sig.parameters if p != "self"]
        problems = []
        for key in params:
            if key not in accepted:
                close = difflib.get_close_matches(key, accepted, n=1)
                hint = f"; did you mean '{close[0]}'?" if close else ""
                problems.append(
                    f"{self.kind} '{name}' has no parameter '{key}'{hint} "
                    f"(accepted: {', '.join(accepted) or 'none'})"
                )
        return problems
