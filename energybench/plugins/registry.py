"""The one registry class every plug-in table is built on: models, datasets, tasks, compression
methods, serving scenarios, backends, policies, meters and scenario result kinds.

A :class:`Registry` has a ``kind`` (named in errors), a ``base`` type its entries must be (a
factory registry's base is ``Callable``), refuses a name registered twice, keeps who registered
each name (built-in or a plug-in, :data:`CURRENT_ORIGIN`) and its registration order, and takes
lazy ``"module:attr"`` entries that are imported only when used, so a table of names (what the
suite schema checks against) never imports the runtime.
"""

from __future__ import annotations

import contextvars
import difflib
import functools
import importlib
import inspect
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

E = TypeVar("E")

#: Who is registering now: "energybench" for built-ins; a plug-in's name while
#: :func:`energybench.plugins.entrypoints.load_plugins` runs its ``register`` function.
CURRENT_ORIGIN: contextvars.ContextVar[str] = contextvars.ContextVar(
    "energybench_origin", default="energybench"
)


class UnknownNameError(KeyError):
    """A name that is not in a registry; ``str()`` is a user-facing sentence.

    ``note`` replaces the did-you-mean hint; ``listed=False`` leaves out the list of known
    names (a model family has hundreds: only the closest matches are shown).
    """

    def __init__(
        self, kind: str, name: str, known: list[str], note: str = "", listed: bool = True
    ) -> None:
        self.kind, self.name, self.known = kind, name, known
        if note:
            hint = f"; {note}"
        else:
            close = difflib.get_close_matches(name, known, n=1 if listed else 3, cutoff=0.6)
            hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        tail = f" (known: {', '.join(sorted(known))})" if listed and known else ""
        super().__init__(f"unknown {kind} '{name}'{hint}{tail}")

    def __str__(self) -> str:
        return str(self.args[0])


@dataclass(frozen=True)
class Family:
    """Names ``<prefix>:<member>`` served by one lazy factory ``factory(member, **params)``.

    ``members`` (lazy ``"module:attr"`` or a callable) returns the member names, for checks and
    did-you-mean; it is only called when a name of the family is looked up.
    """

    prefix: str
    factory: Callable[..., Any] | str
    members: Callable[[], list[str]] | str
    help: str = ""


def resolve(target: Any) -> Any:
    """``target`` itself, or the object a lazy ``"module:attr"`` string names (imported now)."""
    if isinstance(target, str):
        module, _, attr = target.partition(":")
        return getattr(importlib.import_module(module), attr)
    return target


class Registry(Generic[E]):
    """Maps names to entries of type ``base`` (objects, classes, or factories when ``base`` is
    ``Callable``) or to lazy ``"package.module:attr"`` strings naming one; plus families of
    names (``tv:resnet18``) resolved by one factory (:meth:`register_family`).

    A registered object that has a ``name`` attribute registers under it
    (``BACKENDS.register(Backend("eager", ...))``); :meth:`values` lists entries in
    registration order (the order ``auto`` tries meters), :meth:`names` sorted.
    """

    def __init__(self, kind: str, base: Any = object) -> None:  # a type, or Callable
        self.kind, self.base = kind, base
        self._entries: dict[str, E | str] = {}
        self._help: dict[str, str] = {}
        self._families: dict[str, Family] = {}
        self._origins: dict[str, str] = {}

    def register_family(
        self,
        prefix: str,
        factory: Callable[..., Any] | str,
        members: Callable[[], list[str]] | str,
        help: str = "",
    ) -> None:
        """Serve every ``prefix:member`` name with ``factory(member, **params)``."""
        if prefix in self._families:
            raise ValueError(f"{self.kind} family '{prefix}:' is registered twice")
        self._families[prefix] = Family(prefix, factory, members, help)
        self._origins[f"{prefix}:"] = CURRENT_ORIGIN.get()

    def families(self) -> list[Family]:
        return [self._families[k] for k in sorted(self._families)]

    def _family_member(self, name: str) -> tuple[Family, str] | None:
        prefix, sep, member = name.partition(":")
        if sep and prefix in self._families:
            return self._families[prefix], member
        return None

    def _family_hint(self, name: str) -> str:
        """ "'tv:resnet18' or 'timm:resnet18'" for a bare name that families know."""
        hits = []
        for fam in self.families():
            try:
                if name in resolve(fam.members)():
                    hits.append(f"'{fam.prefix}:{name}'")
            except ImportError:
                continue
        return " or ".join(hits)

    def _checked(self, name: str, entry: Any) -> Any:
        """``entry`` when it is a ``base`` (an instance, or a subclass of it); else TypeError."""
        ok = isinstance(entry, self.base) or (
            isinstance(entry, type) and issubclass(entry, self.base)
        )
        if not ok:
            raise TypeError(
                f"{self.kind} '{name}' must be a {self.base.__name__}, not {type(entry).__name__}"
            )
        return entry

    def register(self, name: str | E, target: E | str | None = None, help: str = "") -> None:
        """Register ``target`` (an entry, or a lazy ``"module:attr"`` path) under ``name``; or
        a named entry under its own ``name`` (``register(Backend("eager", ...))``).

        A name registered twice is a ValueError naming who registered it first."""
        if not isinstance(name, str):
            target, name = name, str(getattr(name, "name"))  # noqa: B009 - any named entry
            help = help or str(getattr(target, "help", "") or getattr(target, "description", ""))
        if target is None:
            raise TypeError(f"{self.kind} '{name}': nothing to register")
        if name in self._entries:
            raise ValueError(
                f"{self.kind} '{name}' is registered twice (first by {self.origin(name)}, "
                f"then by {CURRENT_ORIGIN.get()})"
            )
        if not isinstance(target, str):
            self._checked(name, target)
        self._entries[name] = target
        self._help[name] = help
        self._origins[name] = CURRENT_ORIGIN.get()

    def unregister(self, name: str) -> None:
        """Forget ``name`` (tests that register a toy plug-in clean up with this)."""
        self._entries.pop(name, None)
        self._help.pop(name, None)
        self._origins.pop(name, None)

    def origin(self, name: str) -> str:
        """Who registered ``name``: "energybench", or the plug-in that did (``prefix:`` names a
        family)."""
        fam = self._family_member(name)
        key = f"{fam[0].prefix}:" if fam is not None and name not in self._entries else name
        return self._origins.get(key, "energybench")

    def __call__(self, name: str, help: str = "") -> Callable[[Any], Any]:
        """Decorator form of :meth:`register`."""

        def deco(fn: Any) -> Any:
            self.register(name, fn, help or (inspect.getdoc(fn) or "").split("\n")[0])
            return fn

        return deco

    def __contains__(self, name: object) -> bool:
        if name in self._entries:
            return True
        if isinstance(name, str) and self._family_member(name):
            try:
                self.get(name)
            except UnknownNameError:
                return False
            return True
        return False

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._entries))

    def names(self) -> list[str]:
        """Registered names, sorted (families not included)."""
        return sorted(self._entries)

    def ordered(self) -> list[str]:
        """Registered names in registration order."""
        return list(self._entries)

    def values(self) -> list[E]:
        """Every entry in registration order (lazy ones imported now)."""
        return [self.get(n) for n in self._entries]

    def help(self, name: str) -> str:
        fam = self._family_member(name)
        if fam is not None:
            self.get(name)
            return fam[0].help
        self.get(name)
        if not self._help.get(name):
            self._help[name] = (inspect.getdoc(self.get(name)) or "").split("\n")[0]
        return self._help[name]

    def get(self, name: str) -> E:
        """The entry for ``name``; raises :class:`UnknownNameError` with a suggestion."""
        fam = self._family_member(name)
        if fam is not None and name not in self._entries:
            family, member = fam
            try:
                members = resolve(family.members)()
            except ImportError as exc:
                raise UnknownNameError(
                    self.kind, name, [], f"'{family.prefix}:' models need {exc.name}: {exc}"
                ) from None
            if member not in members:
                raise UnknownNameError(
                    self.kind, name, [f"{family.prefix}:{m}" for m in members], listed=False
                )
            part: Any = functools.partial(resolve(family.factory), member)
            return part
        try:
            target = self._entries[name]
        except KeyError:
            known = list(self._entries) + [f"{f.prefix}:<name>" for f in self.families()]
            alt = self._family_hint(name) if self._families else ""
            raise UnknownNameError(
                self.kind, name, known, f"did you mean {alt}?" if alt else ""
            ) from None
        if isinstance(target, str):
            module, _, attr = target.partition(":")
            target = self._checked(name, getattr(importlib.import_module(module), attr))
            self._entries[name] = target
        entry: E = target  # resolved above
        return entry

    def create(self, name: str, **params: Any) -> Any:
        """What the factory registered as ``name`` makes from ``params``."""
        factory: Any = self.get(name)
        return factory(**params)

    def check_params(self, name: str, params: dict[str, Any]) -> list[str]:
        """Sentences describing parameters the factory does not accept (empty when all fit)."""
        factory: Any = self.get(name)
        sig = inspect.signature(factory)
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
