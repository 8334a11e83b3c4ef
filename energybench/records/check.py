"""What a readable run-folder file looks like: every JSON file of a run is checked as it is read.

A run folder travels between machines and labs; a file in it can be truncated (a full disk, a
copy cut short), edited by hand, or replaced. Readers never trust it: :func:`read_record` returns
the parsed object only when it has the shape the reports, exports and ``--resume`` rely on, and
otherwise raises :class:`RunFileError` whose message is ``<file>: <what is wrong>`` (a user error,
exit 2). The checks cover structure (objects, lists, strings where readers navigate), phase
statuses, and energies (finite and >= 0); they never look at values a reader does not use.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from energybench.errors import UserError

#: a run-folder JSON file larger than this is refused (records are kilobytes; traces are CSV)
MAX_RECORD_BYTES = 64 * 1024 * 1024
STATUSES = ("done", "skipped", "failed")
#: keys whose numbers are energies (J): finite and >= 0 wherever they appear in a record
ENERGY_KEYS = frozenset(
    {
        "energy_j",
        "measured_energy_j",
        "estimated_energy_j",
        "energy_per_item_j",
        "measured_energy_per_item_j",
        "estimated_energy_per_item_j",
    }
)
_STAT_KEYS = ("mean", "min", "max", "p50")  # a statistic of an energy: these are energies too


class RunFileError(UserError, ValueError):
    """A run-folder file that is missing, unreadable or malformed (user error, exit 2)."""

    def __init__(self, path: Path | str, problem: str) -> None:
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}")


class _Bad(ValueError):
    """A problem at a location inside a JSON document (``where`` like ``scenarios.x[0]``)."""

    def __init__(self, where: str, problem: str) -> None:
        super().__init__(f"{where}: {problem}" if where else problem)


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "true/false"}.get(
        type(value), "null" if value is None else "a number"
    )


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _want(value: Any, types: tuple[type, ...], where: str, what: str) -> Any:
    if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
        raise _Bad(where, f"must be {what}, found {_kind(value)}")
    return value


def _energy(value: Any, where: str) -> None:
    if value is None:
        return
    if isinstance(value, dict):  # a statistic (mean, min, max, ...) of an energy
        for k in _STAT_KEYS:
            if k in value:
                _energy(value[k], f"{where}.{k}")
        return
    if not _is_number(value):
        raise _Bad(where, f"must be an energy in joules (a number), found {_kind(value)}")
    if not math.isfinite(value):
        raise _Bad(where, f"is {json.dumps(value)}; an energy must be a finite number of joules")
    if value < 0:
        raise _Bad(where, f"is {value} J; an energy cannot be negative")


def _walk_energies(value: Any, where: str = "", depth: int = 0) -> None:
    """Every energy key at any depth is a finite number >= 0 (or null)."""
    if depth > 64:
        raise _Bad(where, "nests deeper than a record ever does")
    if isinstance(value, dict):
        for k, v in value.items():
            here = f"{where}.{k}" if where else str(k)
            if k in ENERGY_KEYS:
                _energy(v, here)
            else:
                _walk_energies(v, here, depth + 1)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _walk_energies(v, f"{where}[{i}]", depth + 1)


def _measurement(value: Any, where: str) -> None:
    if value is None:
        return
    _want(value, (dict,), where, "an object (a measurement) or null")
    devices = value.get("devices")
    devices = [] if devices is None else _want(devices, (list,), f"{where}.devices", "a list")
    for i, dev in enumerate(devices):
        _want(dev, (dict,), f"{where}.devices[{i}]", "an object (a device's energy)")
        for key in ("device", "kind", "source"):
            if key in dev:
                _want(dev[key], (str,), f"{where}.devices[{i}].{key}", "a string")
    for key in ("sources", "flags", "measured_kinds", "estimated_kinds"):
        if value.get(key) is not None:
            _want(value[key], (list,), f"{where}.{key}", "a list")


def _scenario(sc: Any, where: str) -> None:
    _want(sc, (dict,), where, "an object (a serving scenario)")
    by_batch = sc.get("by_batch")
    if by_batch is None:
        return
    for b, res in _want(by_batch, (dict,), f"{where}.by_batch", "an object").items():
        _want(res, (dict,), f"{where}.by_batch.{b}", "an object")
        trials = res.get("trials")
        if trials is not None:
            for i, t in enumerate(_want(trials, (list,), f"{where}.by_batch.{b}.trials", "a list")):
                _want(t, (dict,), f"{where}.by_batch.{b}.trials[{i}]", "an object")


def check_phase(data: Any) -> None:
    """A phase record (``entries/<entry>/<phase>.json``)."""
    _want(data, (dict,), "", "a JSON object (a phase record)")
    status = data.get("status")
    if status not in STATUSES:
        raise _Bad("status", f"is {json.dumps(status)[:60]}, expected one of {', '.join(STATUSES)}")
    for key in ("entry", "phase", "config_hash", "error", "reason", "inherited_from"):
        if data.get(key) is not None:
            _want(data[key], (str,), key, "a string")
    for key in ("model", "train", "quality", "checkpoint"):
        if data.get(key) is not None:
            _want(data[key], (dict,), key, "an object")
    ckpt = data.get("checkpoint")
    if ckpt is not None:
        for key in ("file", "sha256"):
            _want(ckpt.get(key), (str,), f"checkpoint.{key}", "a string")
    _measurement(data.get("measurement"), "measurement")
    methods = data.get("methods")
    if methods is not None:
        for i, m in enumerate(_want(methods, (list,), "methods", "a list")):
            _want(m, (dict,), f"methods[{i}]", "an object (a compress step)")
            _measurement(m.get("measurement"), f"methods[{i}].measurement")
    scenarios = data.get("scenarios")
    if scenarios is not None:
        for name, sc in _want(scenarios, (dict,), "scenarios", "an object").items():
            _scenario(sc, f"scenarios.{name}")
    for key in ("duration_s", "started_unix_s"):
        v = data.get(key)
        if v is not None and not (_is_number(v) and math.isfinite(v) and v >= 0):
            raise _Bad(key, f"must be a finite number >= 0, found {json.dumps(v)[:40]}")
    _walk_energies(data)


def check_manifest(data: Any) -> None:
    """A run's ``manifest.json``: the suite as it ran, with its entries."""
    _want(data, (dict,), "", "a JSON object (a run manifest)")
    suite = _want(data.get("suite"), (dict,), "suite", "an object (the suite as it ran)")
    _want(suite.get("name"), (str,), "suite.name", "a string")
    entries = _want(suite.get("entries"), (list,), "suite.entries", "a list")
    seen: set[str] = set()
    for i, e in enumerate(entries):
        _want(e, (dict,), f"suite.entries[{i}]", "an object (an entry)")
        name = _want(e.get("name"), (str,), f"suite.entries[{i}].name", "a string")
        if name in seen:
            raise _Bad(f"suite.entries[{i}].name", f"'{name}' appears twice")
        seen.add(name)
    for key in ("energy", "metric", "defaults", "phase_hashes", "placements", "failed"):
        container = suite if key in ("energy", "metric", "defaults") else data
        if container.get(key) is not None:
            _want(container[key], (dict,), key, "an object")


def check_idle(data: Any) -> None:
    """``idle.json``: idle power per device (cold ``before``, ``active``, ``after``) and
    ``split_basis``, the baseline the static/dynamic split used."""
    _want(data, (dict,), "", "a JSON object (idle baselines)")
    basis = data.get("split_basis")
    if basis is not None and basis not in ("before", "active"):
        raise _Bad("split_basis", f"must be 'before' or 'active', found {basis!r}")
    for when, base in data.items():
        if base is None or when == "split_basis":
            continue
        _want(base, (dict,), when, "an object")
        power = base.get("power_w") or {}
        for dev, w in _want(power, (dict,), f"{when}.power_w", "an object").items():
            if not (_is_number(w) and math.isfinite(w) and w >= 0):
                raise _Bad(f"{when}.power_w.{dev}", f"must be a power in W >= 0, found {w!r}")


CHECKS: dict[str, Callable[[Any], None]] = {
    "phase": check_phase,
    "manifest": check_manifest,
    "idle": check_idle,
}


def parse_record(raw: bytes, kind: str, path: Path | str) -> dict[str, Any]:
    """The checked JSON object in ``raw`` (the bytes of ``path``), or :class:`RunFileError`."""
    if len(raw) > MAX_RECORD_BYTES:
        raise RunFileError(path, f"is {len(raw)} bytes, more than a run record can be")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise RunFileError(path, "is not UTF-8 text, so not a JSON record (damaged?)") from None
    if not text.strip():
        raise RunFileError(path, "is empty (truncated: was the disk full or the copy cut short?)")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise RunFileError(
            path,
            f"is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno}); "
            "it is truncated or damaged",
        ) from None
    except RecursionError:
        raise RunFileError(path, "nests too deeply to be a run record") from None
    try:
        CHECKS[kind](data)
    except _Bad as exc:
        raise RunFileError(path, f"not a valid {kind} record: {exc}") from None
    return data


def read_record(path: Path, kind: str) -> dict[str, Any]:
    """Read and check the ``kind`` record at ``path`` (``phase``, ``manifest`` or ``idle``)."""
    path = Path(path)
    if path.is_dir():
        raise RunFileError(path, "is a directory where a JSON record belongs")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise RunFileError(path, f"cannot be read ({exc.strerror or exc})") from None
    return parse_record(raw, kind, path)
