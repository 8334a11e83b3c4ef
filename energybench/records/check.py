"""What a readable run-folder file looks like: every JSON file of a run is checked as it is read.

A run folder travels between machines and labs; a file in it can be truncated (a full disk, a
copy cut short), edited by hand, or replaced. Readers never trust it: :func:`read_record` returns
the parsed object only when it has the shape the reports, exports and ``--resume`` rely on, and
otherwise raises :class:`RunFileError` whose message is ``<file>: <what is wrong>`` (a user error,
exit 2). The checks cover structure (objects, lists, strings where readers navigate), phase
statuses, the store version, the metric settings (within the suite schema's bounds), energies
and every other figure in joules (``*_j``: finite, >= 0 and small enough that any sum of them stays
finite), powers (``*_w``), durations and timestamps (``*_s``, ``*_unix_s``), qualities, latencies,
rates, fractions, counts, sizes and FLOP counts by key wherever they appear, and the manifest's
measured GEMM peaks, machine and meters; they never look at values a reader does not use.
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
#: an energy above this (about 280 GWh) is not a measurement of one benchmark phase; the cap also
#: keeps every sum a report takes over a run's energies finite
MAX_ENERGY_J = 1e15
#: 2 (energybench 0.2.0); a manifest without one was written by 0.1.0 (version 1)
STORE_VERSION = 2
#: the quality figures a task's evaluation writes (``metric.quality`` names one)
QUALITY_KEYS = frozenset({"psnr_db", "ssim", "psnr_gain_db", "bicubic_psnr_db", "top1", "top5"})
#: counts: whole numbers >= 0 wherever they appear in a record
COUNT_KEYS = frozenset(
    {
        "items",
        "iterations",
        "requests",
        "frames",
        "dropped",
        "trials_total",
        "trials_without_energy",
        "requests_per_trial",
        "frames_per_trial",
        "deadline_misses",
        "samples",
        "steps",
        "max_batch",
        "params",
    }
)
#: fractions in [0, 1] that are not named ``*_rate``
FRACTION_KEYS = frozenset({"sparsity"})
#: a power above this (1 GW) is not one device's; the cap keeps every energy it yields finite
MAX_POWER_W = 1e9
#: 9999-12-31: a later timestamp is not a date a report can show
MAX_UNIX_S = 253402300799.0
#: a measured matrix-multiply rate above this (1 ZFLOP/s) is not one device's
MAX_FLOPS = 1e21
#: rates (per second) that are not named ``*_per_s``
RATE_KEYS = frozenset({"fps", "target_fps", "fps_achieved", "items_per_s"})
#: statistics of a latency or a rate that cannot be negative (confidence bounds can)
_SUMMARY_KEYS = ("mean", "min", "max", "p50", "p90", "p99")
#: the suite schema's bounds on metric settings (``suite.schema.MetricSettings``; a test keeps
#: them equal): tau in [0, 100]; MUI in (0, 1e18]; weight in [0, 1e6]; 1 to 100 intensities
TAU_MAX, MUI_MAX, WEIGHT_MAX, INTENSITIES_MAX = 100.0, 1e18, 1e6, 100


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
    if value > MAX_ENERGY_J:
        raise _Bad(
            where, f"is {value:g} J, more than any benchmark phase uses ({MAX_ENERGY_J:g} J)"
        )


def _finite(value: Any, where: str, what: str, lo: float = 0.0, hi: float = math.inf) -> None:
    """``value`` is null or a finite number in [lo, hi] (``what``: e.g. "a latency in ms")."""
    if value is None:
        return
    if not _is_number(value):
        raise _Bad(where, f"must be {what} (a number), found {_kind(value)}")
    if not math.isfinite(value):
        raise _Bad(where, f"is {json.dumps(value)}; {what} must be a finite number")
    if not lo <= value <= hi:
        bound = f">= {lo:g}" if hi == math.inf else f"between {lo:g} and {hi:g}"
        raise _Bad(where, f"is {value:g}; {what} must be {bound}")


def _figure(value: Any, where: str, what: str, hi: float = math.inf) -> None:
    """A latency, rate or fraction: a number, a list of them, or a summary of them."""
    if isinstance(value, dict):
        for k in _SUMMARY_KEYS:
            if k in value:
                _finite(value[k], f"{where}.{k}", what, hi=hi)
        if "n" in value:
            _count(value["n"], f"{where}.n")
    elif isinstance(value, list):
        for i, v in enumerate(value[:100_000]):
            _finite(v, f"{where}[{i}]", what, hi=hi)
    else:
        _finite(value, where, what, hi=hi)


def _quality(key: str, value: Any, where: str) -> None:
    """A quality figure (or a list of them, one per frame): finite numbers or null (the metric
    needs a finite Q)."""
    if isinstance(value, list):
        for i, v in enumerate(value[:100_000]):
            _finite(v, f"{where}[{i}]", "a quality figure", lo=-math.inf)
        return
    _finite(value, where, "a quality figure", lo=-math.inf)


def _count(value: Any, where: str) -> None:
    if value is None:
        return
    if not (_is_number(value) and math.isfinite(value) and value >= 0 and value == int(value)):
        raise _Bad(where, f"must be a count (a whole number >= 0), found {json.dumps(value)[:40]}")


def _power(value: Any, where: str) -> None:
    """A power in W (or a map of them, per device): finite, >= 0, at most :data:`MAX_POWER_W`."""
    if isinstance(value, dict):
        for k, v in value.items():
            _power(v, f"{where}.{k}")
    elif not isinstance(value, list):
        _finite(value, where, "a power in W", hi=MAX_POWER_W)


def _check_key(key: str, value: Any, where: str) -> bool:
    """Check ``value`` if ``key`` names a figure this module knows; True when it did."""
    if key in ENERGY_KEYS or key.endswith("_j"):  # uncertainty_j, static_j, sigma_per_item_j
        _energy(value, where)
    elif key.endswith("_unix_s"):
        _figure(value, where, "a time (seconds since 1970)", hi=MAX_UNIX_S)
    elif key.endswith("_ms"):
        _figure(value, where, "a latency in ms")
    elif key.endswith("_per_s") or key in RATE_KEYS:
        _figure(value, where, "a rate per second")
    elif key.endswith("_s"):  # durations and offsets: duration_s, t_s, waited_s, ...
        _figure(value, where, "a time in seconds")
    elif key.endswith("_w"):
        _power(value, where)
    elif key == "flops_per_item":
        _finite(value, where, "a FLOP count", hi=MAX_FLOPS)
    elif key in FRACTION_KEYS:
        _figure(value, where, "a fraction", hi=1.0)
    elif key.endswith("_rate") and not isinstance(value, dict):
        _figure(value, where, "a fraction", hi=1.0)
    elif key in COUNT_KEYS or key.endswith("_bytes"):
        if isinstance(value, list):
            return False
        _count(value, where)
    elif key in QUALITY_KEYS:
        _quality(key, value, where)
    else:
        return False
    return isinstance(value, int | float | str | type(None)) or key in ENERGY_KEYS


def _walk_energies(value: Any, where: str = "", depth: int = 0) -> None:
    """Every figure key at any depth (energy, latency, rate, fraction, count, quality) holds a
    plausible value: finite, in its range (or null)."""
    if depth > 64:
        raise _Bad(where, "nests deeper than a record ever does")
    if isinstance(value, dict):
        for k, v in value.items():
            here = f"{where}.{k}" if where else str(k)
            if not _check_key(str(k), v, here):
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
    quality = data.get("quality") or {}
    for key in sorted(QUALITY_KEYS & quality.keys()):  # the figure the metric reads: one number
        _finite(quality[key], f"quality.{key}", "a quality figure", lo=-math.inf)
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
    check_store_version(data.get("store_version", 1))
    if suite.get("metric") is not None:
        _metric(suite["metric"])
    names = {e["name"] for e in entries}
    for i, e in enumerate(entries):
        _entry(e, f"suite.entries[{i}]", names)
    energy = suite.get("energy") or {}
    for key, value in energy.items():
        if str(key).startswith("allow_") or key in ("idle_after",):
            _want(value, (bool,), f"suite.energy.{key}", "true or false")
    for key in ("placements", "failed"):
        for k, v in (data.get(key) or {}).items():
            _want(v, (str,), f"{key}.{k}", "a string")
    if suite.get("carbon") is not None:
        _want(suite["carbon"], (dict,), "suite.carbon", "an object")
    for key in ("environment", "cooldowns", "peaks"):
        if data.get(key) is not None:
            _want(data[key], (dict,), key, "an object")
    if data.get("meters") is not None:
        for i, m in enumerate(_want(data["meters"], (list,), "meters", "a list")):
            _want(m, (dict,), f"meters[{i}]", "an object (a meter's description)")
    _peaks(data.get("peaks") or {})
    _walk_energies({k: v for k, v in data.items() if k != "suite"})  # timestamps, cool-downs


def _peaks(peaks: dict[str, Any]) -> None:
    """``peaks``: device label -> dtype -> the GEMM rate the run measured (FLOP/s > 0)."""
    for label, by_dtype in peaks.items():
        for dtype, flops in _want(by_dtype, (dict,), f"peaks.{label}", "an object").items():
            where = f"peaks.{label}.{dtype}"
            _finite(flops, where, "a matrix-multiply rate in FLOP/s", lo=1.0, hi=MAX_FLOPS)
            if flops is None:
                raise _Bad(where, "must be a rate in FLOP/s, found null")


def _entry(e: dict[str, Any], where: str, names: set[str]) -> None:
    """The fields of a suite entry that reports read."""
    for key in ("inherit", "description", "device"):
        if e.get(key) is not None:
            _want(e[key], (str,), f"{where}.{key}", "a string")
    if e.get("inherit") is not None and e["inherit"] not in names:
        raise _Bad(f"{where}.inherit", f"names '{e['inherit'][:60]}', not an entry of this run")
    if "rank" in e:
        _want(e["rank"], (bool,), f"{where}.rank", "true or false")
    for u in _want(e.get("uses", []), (list,), f"{where}.uses", "a list of entry names"):
        _want(u, (str,), f"{where}.uses", "a list of entry names (strings)")
    for key in ("model", "dataset", "train", "evaluate", "backend"):
        if e.get(key) is not None:
            _want(e[key], (dict,), f"{where}.{key}", "an object")
    for i, c in enumerate(_want(e.get("compress", []), (list,), f"{where}.compress", "a list")):
        _want(c, (dict,), f"{where}.compress[{i}]", "an object (a compress method)")
    for i, sc in enumerate(_want(e.get("serve", []), (list,), f"{where}.serve", "a list")):
        here = f"{where}.serve[{i}]"
        _want(sc, (dict,), here, "an object (a serving scenario)")
        _want(sc.get("scenario"), (str,), f"{here}.scenario", "a string (the scenario kind)")
        if sc.get("name") is not None:
            _want(sc["name"], (str,), f"{here}.name", "a string")
        if sc.get("batch_sizes") is not None:
            sizes = _want(sc["batch_sizes"], (list,), f"{here}.batch_sizes", "a list")
            for j, b in enumerate(sizes):
                _count(b, f"{here}.batch_sizes[{j}]")


def check_store_version(version: Any) -> int:
    """The manifest's ``store_version``: a whole number this energybench can read."""
    if not (_is_number(version) and math.isfinite(version) and version == int(version)):
        raise _Bad("store_version", f"must be a whole number, found {json.dumps(version)[:40]}")
    if version < 1:
        raise _Bad("store_version", f"is {version}; store versions start at 1")
    if version > STORE_VERSION:
        raise _Bad(
            "store_version",
            f"is {int(version)}: written by a newer energybench; this one reads store versions up "
            f"to {STORE_VERSION} and changes nothing in the run (upgrade energybench to use it)",
        )
    return int(version)


def _metric(metric: dict[str, Any]) -> None:
    """``suite.metric``: tau, usage intensities and weights within the suite schema's bounds."""
    w = "suite.metric"
    if "tau" in metric:
        _finite(metric["tau"], f"{w}.tau", "tau", hi=TAU_MAX)
    for key in ("quality", "iec_scenario"):
        if metric.get(key) is not None:
            _want(metric[key], (str,), f"{w}.{key}", "a string")
    if metric.get("iec_batch_size") is not None:
        _count(metric["iec_batch_size"], f"{w}.iec_batch_size")
    if "usage_intensities" not in metric:
        return
    uis = _want(metric["usage_intensities"], (list,), f"{w}.usage_intensities", "a list")
    if not 1 <= len(uis) <= INTENSITIES_MAX:
        raise _Bad(
            f"{w}.usage_intensities",
            f"has {len(uis)} usage intensities; a suite has 1 to {INTENSITIES_MAX}",
        )
    for i, u in enumerate(uis):
        here = f"{w}.usage_intensities[{i}]"
        _want(u, (dict,), here, "an object with mui and weight")
        mui = u.get("mui")
        _finite(mui, f"{here}.mui", "a usage intensity (MUI)", hi=MUI_MAX)
        if mui is None or mui <= 0:
            raise _Bad(f"{here}.mui", f"is {json.dumps(mui)}; MUI must be a number > 0")
        _finite(u.get("weight", 1.0), f"{here}.weight", "a weight", hi=WEIGHT_MAX)
    if not any(_is_number(u.get("weight", 1.0)) and u.get("weight", 1.0) > 0 for u in uis):
        raise _Bad(f"{w}.usage_intensities", "every weight is 0; at least one must be > 0")
    if metric.get("pairs") is not None:
        for i, pair in enumerate(_want(metric["pairs"], (list,), f"{w}.pairs", "a list")):
            if not (isinstance(pair, list) and len(pair) == 2):
                raise _Bad(f"{w}.pairs[{i}]", "must be a pair of entry names")
            for name in pair:
                _want(name, (str,), f"{w}.pairs[{i}]", "a pair of entry names (strings)")


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


def _parse_int(digits: str) -> int | float:
    """A JSON integer; one longer than any record's (a hand-edited 10**400) becomes a float,
    infinite if need be, so the checks refuse it by name instead of overflowing a conversion."""
    return int(digits) if len(digits) <= 24 else float(digits)


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
        data = json.loads(text, parse_int=_parse_int)
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
