"""Bounded safe YAML: the only YAML reader of suites and ``--set`` values.

A small file must not turn into unbounded work. Before anything is built, one streaming pass
over the parser's events (libyaml when present) enforces, with the offending line and column:

- :data:`MAX_BYTES` of text (checked by the caller before reading);
- :data:`MAX_DEPTH` levels of nesting (a 100k-deep list would otherwise end in a
  ``RecursionError`` or overflow the C stack);
- :data:`MAX_NODES` values after alias expansion (``*name`` counts the whole subtree of
  ``&name`` again, so a "billion laughs" alias bomb stops at the limit, not at ``MemoryError``);
  an alias inside its own anchor (a recursive structure) is refused;
- no duplicate key in a mapping (YAML's "last one silently wins" hides typos).

Only then is the document composed and constructed with ``SafeLoader`` semantics (no tag ever
executes code). :class:`YamlLimitError` carries the 1-based line and column.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

MAX_BYTES = 1_000_000
"""Largest suite file (and ``--set`` value) read, in bytes (1 MB)."""
MAX_DEPTH = 32
"""Deepest nesting of mappings and lists (a real suite needs fewer than 10 levels)."""
MAX_NODES = 50_000
"""Most values (scalars, mappings, lists) in a document, counted after alias expansion."""

_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_RESOLVER = yaml.resolver.Resolver()
_CONSTRUCTOR = yaml.constructor.SafeConstructor()


def _key_value(ev: yaml.ScalarEvent) -> Any:
    """The key as the mapping will hold it (``true``/``True`` and ``1``/``0x1`` are one key)."""
    tag = ev.tag if ev.tag not in (None, "!") else None
    tag = tag or _RESOLVER.resolve(yaml.ScalarNode, ev.value, ev.implicit)
    if tag == "tag:yaml.org,2002:str":
        return ev.value
    try:
        return ("", _CONSTRUCTOR.construct_object(yaml.ScalarNode(tag, ev.value)))
    except Exception:  # noqa: BLE001 - an unknown tag: reported when the document is built
        return (tag, ev.value)


class YamlLimitError(Exception):
    """A document over a limit or with a duplicate key; ``str()`` is a user-facing sentence."""

    def __init__(self, message: str, mark: yaml.Mark | None) -> None:
        super().__init__(message)
        self.line = mark.line + 1 if mark is not None else None
        self.column = mark.column + 1 if mark is not None else None


@dataclass
class _Frame:
    mapping: bool
    anchor: str | None
    start: int  # node count before this collection
    expect_key: bool = True
    keys: dict[Any, int] = field(default_factory=dict)  # key -> line


#: the longest integer a suite may write (no setting comes near; Python refuses past 4300)
MAX_INT_CHARS = 100
_INT_TAG = "tag:yaml.org,2002:int"


def _check_int_length(ev: yaml.ScalarEvent) -> None:
    """An integer scalar longer than :data:`MAX_INT_CHARS` is refused where it stands (its
    conversion would overflow, or fail, far from the line that holds it)."""
    if len(ev.value) <= MAX_INT_CHARS:
        return
    tag = ev.tag if ev.tag not in (None, "!") else None
    if (tag or _RESOLVER.resolve(yaml.ScalarNode, ev.value, ev.implicit)) == _INT_TAG:
        raise YamlLimitError(
            f"an integer of {len(ev.value)} characters; no suite value needs more than "
            f"{MAX_INT_CHARS}",
            ev.start_mark,
        )


class _Budget:
    """The streaming checks: one instance per document."""

    def __init__(self) -> None:
        self.count = 0
        self.stack: list[_Frame] = []
        self.sizes: dict[str, int | None] = {}  # anchor -> expanded size; None while open

    def _add(self, n: int, mark: yaml.Mark, alias: str | None = None) -> None:
        self.count += n
        if self.count > MAX_NODES:
            via = f" (alias '*{alias}' alone expands to {n} values)" if alias else ""
            raise YamlLimitError(
                f"document too large: more than {MAX_NODES} values after alias expansion{via}; "
                "anchors and aliases may not multiply a suite beyond this limit",
                mark,
            )

    def _key(self, ev: yaml.Event) -> None:
        """Check a mapping key for duplicates, then flip key/value in the parent mapping."""
        if not self.stack or not self.stack[-1].mapping:
            return
        top = self.stack[-1]
        if top.expect_key and isinstance(ev, yaml.ScalarEvent):
            key = _key_value(ev)
            if key in top.keys:
                raise YamlLimitError(
                    f"duplicate key '{ev.value}' (first given on line {top.keys[key]}); "
                    "each key may appear once in a mapping",
                    ev.start_mark,
                )
            top.keys[key] = ev.start_mark.line + 1

    def _done(self) -> None:
        if self.stack and self.stack[-1].mapping:
            self.stack[-1].expect_key = not self.stack[-1].expect_key

    def feed(self, ev: yaml.Event) -> None:
        if isinstance(ev, yaml.ScalarEvent):
            _check_int_length(ev)
            self._key(ev)
            self._add(1, ev.start_mark)
            if ev.anchor:
                self.sizes[ev.anchor] = 1
            self._done()
        elif isinstance(ev, yaml.AliasEvent):
            size = self.sizes.get(ev.anchor, 1)
            if size is None:
                raise YamlLimitError(
                    f"alias '*{ev.anchor}' is inside its own anchor '&{ev.anchor}' "
                    "(a recursive structure); suites must be finite trees",
                    ev.start_mark,
                )
            self._add(size, ev.start_mark, ev.anchor)
            self._done()
        elif isinstance(ev, yaml.CollectionStartEvent):
            self._key(ev)
            if len(self.stack) >= MAX_DEPTH:
                raise YamlLimitError(
                    f"nesting deeper than {MAX_DEPTH} levels of mappings and lists",
                    ev.start_mark,
                )
            self.stack.append(_Frame(isinstance(ev, yaml.MappingStartEvent), ev.anchor, self.count))
            self._add(1, ev.start_mark)
            if ev.anchor:
                self.sizes[ev.anchor] = None
        elif isinstance(ev, yaml.CollectionEndEvent):
            frame = self.stack.pop()
            if frame.anchor:
                self.sizes[frame.anchor] = self.count - frame.start
            self._done()


def check_events(text: str) -> None:
    """Raise :class:`YamlLimitError` (or a ``yaml.YAMLError``) if ``text`` breaks a limit."""
    budget = _Budget()
    try:
        for ev in yaml.parse(text, Loader=_Loader):
            if isinstance(ev, yaml.DocumentStartEvent):
                budget = _Budget()
            budget.feed(ev)
    except yaml.MarkedYAMLError as exc:
        # PyYAML >= 6.0.3's scanner has its own nesting limit and may meet it while looking
        # ahead, before the parser hands us the collection that breaks ours: same limit, ours.
        if "maximum nesting depth" not in str(exc.problem) or exc.problem_mark is None:
            raise
        raise YamlLimitError(
            f"nesting deeper than {MAX_DEPTH} levels of mappings and lists", exc.problem_mark
        ) from None


def load_bounded(text: str) -> tuple[Any, yaml.Node | None]:
    """The data and the root node (for line marks) of a single YAML document, within limits."""
    check_events(text)
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    finally:
        loader.dispose()
    return data, node
