"""Load a YAML suite: safe YAML, defaults, ``--set`` overrides, errors with file:line:col.

Every problem a user can cause is raised as :class:`SuiteError`, whose message names the file,
line and column, the field path, what was expected and what was found, with a did-you-mean hint.
Only ``yaml.safe_load``-equivalent parsing is used: no YAML tag ever executes code.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from energybench.metrics.carbon import known_countries
from energybench.suite.blame import blame_defaults
from energybench.suite.errors import Path_, Problem, SuiteError
from energybench.suite.methods import COMPRESS_METHODS, CompressSettings
from energybench.suite.overrides import apply_override, blame_overrides, deep_merge
from energybench.suite.params import param_problems
from energybench.suite.plugins import SettingsRegistry
from energybench.suite.scenarios import SERVE_SCENARIOS, ScenarioSettings
from energybench.suite.schema import MAX_ENTRIES, Entry, ModelSpec, Suite
from energybench.suite.yamlsafe import MAX_BYTES, YamlLimitError, load_bounded


# --------------------------------------------------------------------------- YAML with marks
class _Marks:
    """Maps a data path (keys and list indices) to the (line, column) of its YAML node."""

    def __init__(self, root: yaml.Node | None) -> None:
        self.value_marks: dict[Path_, tuple[int, int]] = {}
        self.key_marks: dict[Path_, tuple[int, int]] = {}
        if root is not None:
            self._walk(root, ())

    def _walk(self, node: yaml.Node, path: Path_) -> None:
        self.value_marks[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                key = k.value
                self.key_marks[path + (key,)] = (k.start_mark.line + 1, k.start_mark.column + 1)
                self._walk(v, path + (key,))
        elif isinstance(node, yaml.SequenceNode):
            for i, v in enumerate(node.value):
                self._walk(v, path + (i,))

    def locate(self, path: Path_, key: bool = False) -> tuple[int | None, int | None]:
        """Line and column of ``path``, or of its nearest ancestor that has a node."""
        marks = self.key_marks if key else self.value_marks
        p = tuple(path)
        while p:
            if p in marks:
                return marks[p]
            if p in self.value_marks:
                return self.value_marks[p]
            p = p[:-1]
        return self.value_marks.get((), (None, None))


def _parse_yaml(text: str, file: str) -> tuple[Any, _Marks]:
    """Bounded safe YAML (see :mod:`energybench.suite.yamlsafe`); every error is located."""
    try:
        data, root = load_bounded(text)
    except YamlLimitError as exc:
        raise SuiteError([Problem(file, exc.line, exc.column, "", str(exc))]) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (None, None)
        what = exc.problem or "malformed YAML"
        if exc.context:
            what = f"{exc.context}, {what}"
        raise SuiteError(
            [
                Problem(
                    file,
                    line,
                    col,
                    "",
                    f"malformed YAML: {what}; check indentation, colons "
                    "and quotes on this line or the one before",
                )
            ]
        ) from None
    except yaml.reader.ReaderError as exc:  # NUL and other unacceptable characters
        before = text[: exc.position]
        line, col = before.count("\n") + 1, exc.position - (before.rfind("\n") + 1) + 1
        code = exc.character if isinstance(exc.character, int) else ord(str(exc.character)[:1])
        raise SuiteError(
            [
                Problem(
                    file,
                    line,
                    col,
                    "",
                    f"malformed YAML: unacceptable character U+{code:04X} ({exc.reason}); "
                    "a suite is plain text: remove it",
                )
            ]
        ) from None
    except yaml.YAMLError as exc:
        raise SuiteError([Problem(file, None, None, "", f"malformed YAML: {exc}")]) from None
    return data, _Marks(root)


# --------------------------------------------------------------------------- validation
def _field_names(model: type[BaseModel]) -> list[str]:
    return list(model.model_fields)


#: settings base class -> the registry of its plug-ins (a mapping there is one of them)
PLUGIN_BASES: dict[type, SettingsRegistry] = {
    CompressSettings: COMPRESS_METHODS,
    ScenarioSettings: SERVE_SCENARIOS,
}


def _model_at(loc: Path_, data: Any) -> type[BaseModel] | None:
    """The pydantic model that owns the mapping at ``loc`` (for did-you-mean on typos), found by
    walking the schema's annotations (union tags in ``loc`` pick a member; a compress step's
    class comes from the registry by its ``method`` in ``data``)."""
    tp: Any = Suite
    node = data
    for part in loc:
        tp = _unwrap(tp, node)
        if isinstance(tp, list):  # a tagged union: ``part`` is the tag pydantic inserted
            tp = next((m for m in tp if part in _tags(m)), None)
            if tp is None:
                return None
            continue
        if isinstance(part, int) and get_origin(tp) is list:
            tp = get_args(tp)[0]
        elif isinstance(tp, type) and issubclass(tp, BaseModel) and part in tp.model_fields:
            tp = tp.model_fields[part].annotation
        else:
            return None
        node = _child(node, part)
    tp = _unwrap(tp, node)
    return tp if isinstance(tp, type) and issubclass(tp, BaseModel) else None


def _child(node: Any, part: str | int) -> Any:
    """``node[part]`` where ``node`` is a mapping with key ``part`` or a list with index
    ``part``; None otherwise."""
    if isinstance(node, dict):
        return node[part] if part in node else None
    if isinstance(node, list) and isinstance(part, int) and part < len(node):
        return node[part]
    return None


def _unwrap(tp: Any, node: Any) -> Any:
    """``tp`` without Optional/Annotated; a union of models as a list of its members; a compress
    step or a serving scenario as the registered class its tag names."""
    while True:
        origin = get_origin(tp)
        if origin is Annotated:
            tp = get_args(tp)[0]
        elif origin in (Union, UnionType):
            members = [a for a in get_args(tp) if a is not type(None)]
            if len(members) > 1:
                return members
            tp = members[0]
        else:
            break
    registry = PLUGIN_BASES.get(tp) if isinstance(tp, type) else None
    if registry is not None and isinstance(node, dict):
        name = node.get(registry.tag)
        if isinstance(name, str) and name in registry.names():
            return registry.settings(name)
    return tp


def _tags(model: Any) -> tuple[Any, ...]:
    """The ``Literal`` values of a union member's discriminator field (``scenario``/``method``)."""
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        return ()
    for name in ("scenario", "method"):
        if name in model.model_fields:
            return get_args(model.model_fields[name].annotation)
    return ()


def _data_path(loc: Path_, data: Any) -> Path_:
    """Drop discriminator tags that pydantic inserts into error locations (not in the YAML)."""
    out: list[str | int] = []
    node = data
    for i, part in enumerate(loc):
        if isinstance(node, dict):
            if part in node:
                out.append(part)
                node = node[part]
            elif i == len(loc) - 1:
                out.append(part)  # a missing key
            continue  # a union tag such as 'stream'
        if isinstance(node, list) and isinstance(part, int) and part < len(node):
            out.append(part)
            node = node[part]
            continue
        out.append(part)
        node = None
    return tuple(out)


def _describe(value: Any) -> str:
    text = json.dumps(value, default=str) if not isinstance(value, str) else repr(value)
    return text if len(text) < 60 else text[:57] + "..."


def _problem_from_error(err: ErrorDetails, data: Any, marks: _Marks, file: str) -> Problem:
    loc: Path_ = tuple(err["loc"])
    path = _data_path(loc, data)
    kind = err["type"]
    pretty = ".".join(str(p) for p in path)
    if kind == "extra_forbidden":
        key = str(path[-1])
        owner = _model_at(loc[:-1], data)
        close = difflib.get_close_matches(key, _field_names(owner), n=1) if owner else []
        hint = f"; did you mean '{close[0]}'?" if close else ""
        allowed = f" (allowed: {', '.join(_field_names(owner))})" if owner else ""
        line, col = marks.locate(path, key=True)
        return Problem(file, line, col, pretty, f"unknown field '{key}'{hint}{allowed}", loc=path)
    if kind == "missing":
        line, col = marks.locate(path[:-1])
        return Problem(file, line, col, pretty, f"missing required field '{path[-1]}'", loc=path)
    if kind == "union_tag_invalid":
        ctx = err.get("ctx", {})
        tag, expected = ctx.get("tag"), ctx.get("expected_tags", "")
        options = [t.strip(" '") for t in str(expected).split(",")]
        close = difflib.get_close_matches(str(tag), options, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        line, col = marks.locate(path + (ctx.get("discriminator", "").strip("'"),))
        return Problem(
            file,
            line,
            col,
            pretty,
            f"unknown kind {tag!r}{hint} (expected one of {expected})",
            loc=path,
        )
    line, col = marks.locate(path)
    found = f"; found {_describe(err['input'])}" if "input" in err and kind != "missing" else ""
    if kind == "literal_error":
        options = re.findall(r"'([^']*)'", str(err.get("ctx", {}).get("expected", "")))
        close = difflib.get_close_matches(str(err.get("input")), options, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        expected = ", ".join(f"'{o}'" for o in options)
        return Problem(
            file, line, col, pretty, f"expected one of {expected}{found}{hint}", loc=path
        )
    msg = err["msg"]
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    return Problem(
        file,
        line,
        col,
        pretty,
        f"expected {msg[0].lower() + msg[1:]}{found}" if kind != "value_error" else f"{msg}{found}",
        loc=path,
    )


def _load_declared_plugins(data: dict[str, Any], marks: _Marks, file: str) -> list[Problem]:
    """Load the plug-ins the suite declares (``plugins:``) before its names are checked; each
    problem located at its list item. Nothing the suite does not declare is imported."""
    from energybench.plugins.entrypoints import PluginError, load_plugins

    declared = data.get("plugins")
    if not isinstance(declared, list):
        return []  # absent, or the schema reports its type
    problems = []
    for i, name in enumerate(declared):
        if not isinstance(name, str):
            continue  # the schema reports it
        try:
            load_plugins([name])
        except PluginError as exc:
            line, col = marks.locate(("plugins", i))
            problems.append(Problem(file, line, col, f"plugins.{i}", str(exc), loc=("plugins", i)))
    return problems


def _undeclared_hint(declared: Any) -> str:
    """'; installed plug-ins this suite does not declare: ...' (nothing is loaded to say so)."""
    from energybench.plugins.entrypoints import undeclared

    names = undeclared(
        [p for p in declared if isinstance(p, str)] if isinstance(declared, list) else []
    )
    if not names:
        return ""
    return (
        f"; installed plug-ins this suite does not declare: {', '.join(names)} (a suite uses a "
        f"plug-in's names only when it declares it, e.g. `plugins: [{names[0]}]`)"
    )


def _check_origin(reg: Any, name: str, suite: Suite, at: Path_, add: Callable[..., None]) -> None:
    """A name registered by a plug-in may be used only by a suite that declares the plug-in."""
    origin = reg.origin(name) if name in reg else "energybench"
    plugin = origin.removeprefix("plug-in ")
    if origin != "energybench" and plugin not in suite.plugins:
        add(
            at,
            f"{reg.kind} '{name}' comes from plug-in '{plugin}', which this suite does not "
            f"declare; add `plugins: [{plugin}]` at the top level",
        )


def _raw_reference_problems(data: dict[str, Any], marks: _Marks, file: str) -> list[Problem]:
    """Registry names and entry references checked on the raw mapping, for a suite the schema
    refused (so ``validate`` reports every problem in one pass, not stage by stage)."""
    from energybench.data import DATASETS
    from energybench.models import MODELS
    from energybench.plugins.registry import UnknownNameError

    entries = data.get("entries")
    if not isinstance(entries, list):
        return []
    names = [e["name"] for e in entries if isinstance(e, dict) and isinstance(e.get("name"), str)]
    problems: list[Problem] = []

    def add(path: Path_, msg: str) -> None:
        line, col = marks.locate(path)
        problems.append(Problem(file, line, col, ".".join(map(str, path)), msg, loc=path))

    for i, e in enumerate(entries):
        if not isinstance(e, dict):
            continue
        for key, reg in (("model", MODELS), ("dataset", DATASETS)):
            spec = e.get(key)
            name = spec.get("name") if isinstance(spec, dict) else None
            if isinstance(name, str):
                try:
                    reg.get(name)
                except UnknownNameError as exc:
                    add(("entries", i, key, "name"), str(exc))
        uses = e.get("uses")
        refs = [(("inherit",), e.get("inherit"))] + [
            (("uses", k), u) for k, u in enumerate(uses if isinstance(uses, list) else [])
        ]
        for at, target in refs:
            if isinstance(target, str) and target not in names:
                add(("entries", i, *at), _no_entry(target, names))
    return problems


Add = Callable[..., None]  # add(path, message, key=False): one located problem


def _no_entry(target: str, names: list[str]) -> str:
    close = difflib.get_close_matches(target, names, n=1)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    return f"no entry named '{target}'{hint}"


def _registry_problems(e: Entry, base: Path_, suite: Suite, add: Add) -> None:
    """Model and dataset names (and their params) of the entry and its compress steps, and
    names that come from plug-ins the suite does not declare."""
    from energybench.data import DATASETS
    from energybench.models import MODELS
    from energybench.plugins.registry import UnknownNameError

    specs: list[tuple[Any, Any, Path_]] = [
        (MODELS, e.model, base + ("model",)),
        (DATASETS, e.dataset, base + ("dataset",)),
    ] + [
        (MODELS, spec, base + ("compress", j, field))
        for j, step in enumerate(e.compress)
        for field, spec in step
        if isinstance(spec, ModelSpec)
    ]
    for reg, spec, at in specs:
        if spec is None:
            continue
        try:
            for param, msg in param_problems(reg, spec.name, spec.params):
                where = at + ("params", param) if param else at + ("params",)
                add(where, msg, key=bool(param))
        except UnknownNameError as exc:
            add(at + ("name",), str(exc) + _undeclared_hint(suite.plugins))
            continue
        _check_origin(reg, spec.name, suite, at + ("name",), add)
    for j, step in enumerate(e.compress):
        _check_origin(COMPRESS_METHODS, step.method, suite, base + ("compress", j), add)
    for j, sc in enumerate(e.serve):
        _check_origin(SERVE_SCENARIOS, sc.scenario, suite, base + ("serve", j), add)


def _dependency_problems(e: Entry, base: Path_, names: list[str], add: Add) -> None:
    """``inherit`` and ``uses`` targets: existing entries other than ``e``."""
    refs = ([("inherit", e.inherit)] if e.inherit else []) + [
        (("uses", k), u) for k, u in enumerate(e.uses)
    ]
    for ref, target in refs:
        path = base + ((ref,) if isinstance(ref, str) else ref)
        if target == e.name:
            add(path, f"entry '{e.name}' cannot depend on itself")
        elif target not in names:
            add(path, _no_entry(target, names))


def _scenario_problems(e: Entry, base: Path_, suite: Suite, add: Add) -> None:
    """Adaptive variants (other entries, placed compatibly), policy names, and scenario names
    used twice."""
    from energybench.suite.devices import variant_problem
    from energybench.suite.policies import POLICIES

    names = [x.name for x in suite.entries]
    for k, sc in enumerate(e.serve):
        for m, v in enumerate(getattr(sc, "variants", [])):
            path = base + ("serve", k, "variants", m)
            if v not in names:
                add(path, f"adaptive variant: {_no_entry(v, names)}")
            elif v == e.name:
                add(path, f"entry '{e.name}' cannot switch to itself; name other entries")
            elif refused := variant_problem(e, suite.entry(v)):
                add(path, refused)
        policy = getattr(sc, "policy", None)
        if policy is not None and policy not in POLICIES:
            add(
                base + ("serve", k, "policy"),
                f"unknown policy '{policy}' (known: {', '.join(POLICIES)}); user "
                "policies are registered from Python (see README, adaptive serving)",
            )
    scen = e.scenario_names()
    for dup in {s for s in scen if scen.count(s) > 1}:
        add(
            base + ("serve",),
            f"serving scenario name '{dup}' is used twice; give each a distinct 'name'",
        )


def _runtime_problems(e: Entry, base: Path_, add: Add) -> None:
    """What the entry's device and serving backend refuse of it."""
    from energybench.suite.backends import backend_problems
    from energybench.suite.devices import device_problem

    refused = device_problem(e)
    if refused:
        add(base + ("device",), refused)
    for sub, msg in backend_problems(e):
        add(base + tuple(int(x) if x.isdigit() else x for x in sub), msg)


def _shape_problems(e: Entry, base: Path_, raw: Any, add: Add) -> None:
    """A dataset to evaluate on, and no training of an inherited model (``raw``: the entry's
    mapping as written, before defaults)."""
    if e.inherit is None and e.dataset is None:
        add(base, "entry has no 'dataset' (set one here or in 'defaults')")
    if e.inherit and e.train is not None and "train" in (raw or {}):
        add(
            base + ("train",),
            "an entry that inherits a trained model cannot also train; remove 'train' or 'inherit'",
            key=True,
        )


def _suite_problems(suite: Suite, add: Add, clean: bool) -> None:
    """Suite-level references: the dependency order (only when ``clean``: no problem so far),
    the IEC scenario, the compared pairs, the carbon country."""
    names = [e.name for e in suite.entries]
    if clean:
        try:
            dependency_order(suite)
        except ValueError as exc:
            add(("entries",), str(exc))
    iec = suite.metric.iec_scenario
    if iec and not any(iec in e.scenario_names() for e in suite.entries):
        add(("metric", "iec_scenario"), f"no entry has a serving scenario named '{iec}'")
    for k, pair in enumerate(suite.metric.pairs):
        for name in pair:
            if name not in names:
                add(("metric", "pairs", k), f"no entry named '{name}'")
    country = suite.carbon.country
    known = known_countries() if country else None
    if country and known is not None and country.upper() not in known:
        close = difflib.get_close_matches(country.upper(), known, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        add(
            ("carbon", "country"),
            f"no grid-intensity data for country '{country}'{hint} (expected an ISO 3166 "
            "alpha-3 code in codecarbon's offline data, such as DEU, FRA or USA)",
        )


def _check_references(suite: Suite, data: Any, marks: _Marks, file: str) -> list[Problem]:
    """Cross-field checks: registry names, model params, inherit/uses targets, unique names."""
    problems: list[Problem] = []

    def add(path: Path_, msg: str, key: bool = False) -> None:
        line, col = marks.locate(path, key=key)
        problems.append(Problem(file, line, col, ".".join(map(str, path)), msg, loc=path))

    seen: dict[str, str] = {}
    for i, e in enumerate(suite.entries):
        if e.name.lower() in seen:
            same = "" if seen[e.name.lower()] == e.name else f" (as '{seen[e.name.lower()]}')"
            add(
                ("entries", i, "name"),
                f"entry name '{e.name}' is used twice{same}; names are folder names, unique "
                "ignoring case",
            )
        seen.setdefault(e.name.lower(), e.name)
        base: Path_ = ("entries", i)
        n_before = len(problems)
        _registry_problems(e, base, suite, add)
        _dependency_problems(e, base, [x.name for x in suite.entries], add)
        _runtime_problems(e, base, add)
        if len(problems) == n_before:  # builds the model: only with params that passed
            for j, msg in _compress_problems(e):
                add(base + ("compress", j, "method"), msg)
        _shape_problems(e, base, data["entries"][i], add)
        _scenario_problems(e, base, suite, add)
    _suite_problems(suite, add, clean=not problems)
    return problems


def _compress_problems(e: Entry) -> list[tuple[int, str]]:
    """Compress steps that cannot work on the entry's model, found by building the model once.

    Each step's registered ``check`` hook (see :mod:`energybench.suite.methods`) runs on the
    entry's model, up to the first step that changes the architecture (whose output the model
    no longer describes). Models built from other entries (``upstream``) or that fail to build
    here are left to the run.
    """
    import inspect

    from energybench.models import MODELS

    checks = []
    for j, step in enumerate(e.compress):
        check = COMPRESS_METHODS.hook(step.method, "check")
        if check is not None:
            checks.append((j, step, check))
        if step.changes_architecture():
            break
    if not checks:
        return []
    try:
        factory = MODELS.get(e.model.name)
        if "upstream" in inspect.signature(factory).parameters:
            return []
        model = factory(**e.model.params)
    except Exception:  # noqa: BLE001 - building problems are reported by the run
        return []
    out = []
    for j, step, check in checks:
        msg = check(step, model, e.model.name)
        if msg:
            out.append((j, msg))
    return out


def dependency_order(suite: Suite) -> list[Entry]:
    """Entries ordered so that every ``inherit``/``uses`` target runs first (stable otherwise)."""
    by_name = {e.name: e for e in suite.entries}
    order: list[Entry] = []
    state: dict[str, int] = {}

    def visit(name: str, chain: list[str]) -> None:
        if state.get(name) == 2:
            return
        if state.get(name) == 1:
            raise ValueError(
                "entries depend on each other in a cycle: " + " -> ".join(chain + [name])
            )
        state[name] = 1
        e = by_name[name]
        for dep in ([e.inherit] if e.inherit else []) + list(e.uses) + e.variants():
            visit(dep, chain + [name])
        state[name] = 2
        order.append(e)

    for e in suite.entries:
        visit(e.name, [])
    return order


@dataclass
class LoadedSuite:
    suite: Suite
    path: Path
    data: dict[str, Any]  # resolved data (defaults merged, overrides applied)

    @property
    def config_hash(self) -> str:
        return config_hash(self.suite.model_dump(mode="json"))


def config_hash(obj: Any) -> str:
    """A stable short hash of a JSON-able object."""
    blob = json.dumps(obj, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


MAX_MERGED = 200_000
"""Most values after ``defaults`` is merged into every entry (values of defaults x entries)."""


def _count(obj: Any) -> int:
    if isinstance(obj, dict):
        return 1 + sum(_count(v) for v in obj.values())
    if isinstance(obj, list):
        return 1 + sum(_count(v) for v in obj)
    return 1


def _check_merge_size(
    defaults: dict[str, Any], entries: list[Any], marks: _Marks, file: str
) -> None:
    """Refuse before merging when ``defaults`` copied into every entry would be too large."""
    if len(entries) > MAX_ENTRIES:
        line, col = marks.locate(("entries",))
        raise SuiteError(
            [
                Problem(
                    file,
                    line,
                    col,
                    "entries",
                    f"{len(entries)} entries; at most {MAX_ENTRIES} per suite",
                    loc=("entries",),
                )
            ]
        )
    total = _count(defaults) * len(entries)
    if total > MAX_MERGED:
        line, col = marks.locate(("defaults",))
        raise SuiteError(
            [
                Problem(
                    file,
                    line,
                    col,
                    "defaults",
                    f"'defaults' merged into {len(entries)} entries makes {total} values; at most "
                    f"{MAX_MERGED}",
                    loc=("defaults",),
                )
            ]
        )


def _read_suite_text(p: Path, file: str) -> str:
    """The suite file's text: a regular file of at most :data:`MAX_BYTES`, in UTF-8."""
    if not p.is_file():
        what = "no such suite file"
        if p.is_dir():
            what = "is a folder, not a suite file"
        elif p.exists():  # a FIFO, a device, a socket: reading it could block or never end
            what = "not a regular file (a FIFO, device or socket); give a suite YAML file"
        raise SuiteError([Problem(file, None, None, "", what)])
    try:
        size = p.stat().st_size
        if size > MAX_BYTES:
            what = f"suite file is {size} bytes; at most {MAX_BYTES} bytes (1 MB) are read"
            raise SuiteError([Problem(file, None, None, "", what)])
        with p.open("rb") as fh:
            blob = fh.read(MAX_BYTES + 1)  # never more, even if the file grows meanwhile
        if len(blob) > MAX_BYTES:
            raise SuiteError([Problem(file, None, None, "", f"suite file over {MAX_BYTES} bytes")])
        return blob.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SuiteError([Problem(file, None, None, "", f"cannot read: {exc}")]) from None


def _merge_defaults(data: dict[str, Any], marks: _Marks, file: str) -> None:
    """Each entry mapping laid over ``defaults`` (an entry that inherits takes no default
    ``train``), in place."""
    defaults = data.get("defaults") or {}
    entries = data.get("entries")
    if not (isinstance(defaults, dict) and isinstance(entries, list)):
        return
    _check_merge_size(defaults, entries, marks, file)
    data["entries"] = [
        deep_merge(
            {
                k: v
                for k, v in defaults.items()
                if not (k == "train" and isinstance(e, dict) and e.get("inherit"))
            },
            e,
        )
        if isinstance(e, dict)
        else e
        for e in entries
    ]


def _schema_problems(
    exc: ValidationError, data: dict[str, Any], marks: _Marks, file: str
) -> list[Problem]:
    """The schema's errors, located, plus the names it could not reach checked on the raw
    mapping (one pass reports every problem)."""
    problems = [_problem_from_error(err, data, marks, file) for err in exc.errors()]
    hint = _undeclared_hint(data.get("plugins"))
    for prob in problems:
        if hint and prob.message.startswith("unknown kind"):
            prob.message += hint
    seen = {prob.path for prob in problems}
    return problems + [q for q in _raw_reference_problems(data, marks, file) if q.path not in seen]


def load_suite(path: str | Path, overrides: list[str] | None = None) -> LoadedSuite:
    """Read, merge defaults, apply ``key.path=value`` overrides, and validate a suite file."""
    p = Path(path)
    file = str(path)
    data, marks = _parse_yaml(_read_suite_text(p, file), file)
    if not isinstance(data, dict):
        found = type(data).__name__ if data is not None else "an empty file"
        what = f"expected a mapping at the top level; found {found}"
        raise SuiteError([Problem(file, 1, 1, "", what)])
    overridden = {apply_override(data, a): a for a in overrides or []}
    raw_defaults, raw_entries = data.get("defaults") or {}, data.get("entries")
    own = raw_entries if isinstance(raw_entries, list) else []
    defaults = raw_defaults if isinstance(raw_defaults, dict) else {}
    _merge_defaults(data, marks, file)

    def blame(problems: list[Problem]) -> list[Problem]:
        return blame_overrides(blame_defaults(problems, own, defaults, marks, file), overridden)

    plugin_problems = _load_declared_plugins(data, marks, file)
    try:
        suite = Suite.model_validate(data)
    except ValidationError as exc:
        problems = _schema_problems(exc, data, marks, file)
        raise SuiteError(plugin_problems + blame(problems)) from None
    if plugin_problems:
        raise SuiteError(plugin_problems)
    problems = blame(_check_references(suite, data, marks, file))
    if problems:
        raise SuiteError(problems)
    return LoadedSuite(suite=suite, path=p, data=data)
