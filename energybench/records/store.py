"""The run store: the single source of truth for results. Layout, atomic writes, loading.

::

    <out>/<suite>/<run-id>/
        manifest.json               schema version, resolved suite, config hash, environment
        suite.resolved.yaml         the suite as it ran (defaults merged, overrides applied)
        idle.json                   idle power per device (the static-energy baseline)
        entries/<entry>/<phase>.json    one record per entry-phase (train ... evaluate)
        entries/<entry>/checkpoints/    trained and compressed models: <name>.pt (tensors
                                    only) + <name>.recipe.json (how to rebuild the module)
        traces/                     power traces (CSV, streamed while running)

Every write is write-then-rename, so a crash never leaves a half-written record; a full disk
raises :class:`DiskFullError` naming the file. Every file read is checked
(:mod:`energybench.records.check`): a damaged one raises ``RunFileError`` naming it; a finished
phase's checkpoint is checked against the sha256 in its record. Every path is
checked to stay inside the run directory (and a new run inside ``--out``): names come from
suites and manifests, which users and strangers write. Reports and exports only read from here;
nothing in this module measures anything.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from energybench.errors import UserError
from energybench.records import safefs
from energybench.records.check import STORE_VERSION, RunFileError, read_record
from energybench.records.manifest import RunInfo, parse_run_info
from energybench.records.phases import (
    PHASES,
    EntryPhases,
    IdleRecord,
    PhaseRecord,
    ServeRecord,
    parse_idle,
    parse_phase,
)
from energybench.records.types import RecordShapeError, ScenarioResult, parse_scenarios, problems
from energybench.suite.schema import Suite

#: STORE_VERSION 2 (energybench 0.2.0): serve records without duplicate keys, scenarios read as
#: typed records; 1 (0.1.0): read through :func:`upgrade_phase`. Defined in ``records.check``,
#: which refuses a manifest of a later version.
__all__ = ["PHASES", "STORE_VERSION"]
#: keys a store-version-1 ``load`` scenario wrote beside the ones it keeps (same figures)
_V1_LOAD_DUPLICATES = ("p50_ms", "p90_ms", "p99_ms", "energy_per_request_j", "requests_per_s")


#: errno -> what ran out, for :class:`DiskFullError`
_RAN_OUT = {
    errno.ENOSPC: "no space left on device",
    errno.EDQUOT: "the disk quota is used up",
    errno.EFBIG: "the file size limit (ulimit -f) or the file system's largest file was reached",
}


class DiskFullError(OSError):
    """A write into the run folder failed because space ran out: the disk is full, the quota is
    used up or the file size limit was reached (the run stops, exit 1)."""

    def __init__(self, path: Path, code: int = errno.ENOSPC) -> None:
        super().__init__(code, _RAN_OUT.get(code, _RAN_OUT[errno.ENOSPC]), str(path))
        self.path = path

    def __str__(self) -> str:
        return (
            f"{self.path}: {self.strerror}, so it was not written (earlier records are "
            "intact); make room, then continue with --resume"
        )


def _sync(fh: Any, path: Path) -> None:
    """Flush ``fh`` (being written for ``path``) to the disk: where a full disk shows up, and
    where the tests inject ``ENOSPC``."""
    fh.flush()
    os.fsync(fh.fileno())


def _atomic_write(path: Path, write: Callable[[Any], None], mode: str = "w") -> None:
    """Write-then-rename; inside a run folder no link is followed (:mod:`records.safefs`): each
    folder below the run root is real, the file is a regular one, the temporary file is new."""
    tmp: str | None = None
    try:
        safefs.safe_mkdirs(path.parent)
        safefs.check_write_path(path)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, mode) as fh:
            write(fh)
            _sync(fh, path)
        os.replace(tmp, path)
    except BaseException as exc:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.errno in _RAN_OUT:
            raise DiskFullError(path, exc.errno) from None
        raise


def atomic_write_json(path: Path, obj: Any) -> None:
    """Write ``obj`` as JSON to ``path`` atomically (write-then-rename)."""
    _atomic_write(path, lambda fh: json.dump(obj, fh, indent=2, sort_keys=False, default=str))


def atomic_write_text(path: Path, text: str) -> None:
    _atomic_write(path, lambda fh: fh.write(text))


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (checkpoints: see ``lifecycle/checkpoint.py``)."""
    _atomic_write(path, lambda fh: fh.write(data), mode="wb")


def read_json(path: Path) -> Any:
    """Unchecked JSON (for files energybench itself just wrote; run records: ``read_record``)."""
    return json.loads(Path(path).read_text(encoding="utf-8"))


def file_sha256(path: Path) -> str:
    """The sha256 of the file at ``path`` (read in chunks)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def new_run_id(config_hash: str) -> str:
    return time.strftime("%Y%m%d-%H%M%S") + f"-{config_hash[:8]}"


class UnsafePathError(UserError, ValueError):
    """A name that would put a file outside the run directory or ``--out`` (user error, exit 2)."""


def _component(name: str, what: str) -> str:
    """``name`` if it is one ordinary path component (no separators, not '', '.', '..', '.x')."""
    if (
        not name
        or name.startswith(".")
        or "/" in name
        or "\\" in name
        or "\0" in name
        or Path(name).name != name
    ):
        raise UnsafePathError(
            f"{what} '{name}' cannot be used as a folder name: it is empty, starts with '.' or "
            "contains a path separator, so files would land outside the run directory; "
            "rename it (letters, digits, _ + - and inner dots)"
        )
    return name


def _inside(path: Path, base: Path, what: str) -> Path:
    """``path`` if it resolves strictly inside ``base`` (the run root, or ``--out`` for a new
    run), and no folder or file on the way below ``base`` is a link; else refuse."""
    safefs.check_write_path(path)  # a link on the way is named as such
    resolved, root = path.resolve(), base.resolve()
    if resolved == root or not resolved.is_relative_to(root):
        raise UnsafePathError(
            f"{what} {path} resolves to {resolved}, outside {root}; refusing to read or write "
            "there (check the names in the suite or manifest, and symlinks in the folder)"
        )
    return path


@dataclass
class RunStore:
    """One run directory. Every path it hands out stays inside ``root``."""

    root: Path
    _hashes: dict[Path, tuple[int, int, str]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        safefs.register_root(self.root)  # every later write under it follows no link

    @classmethod
    def create(cls, out_root: Path, suite_name: str, config_hash: str) -> RunStore:
        """A new, empty run directory ``<out_root>/<suite_name>/<run-id>`` (never outside it)."""
        base = Path(out_root) / _component(suite_name, "suite name")
        run_id = new_run_id(config_hash)
        root = base / run_id
        n = 1
        while root.exists():
            n += 1
            root = base / f"{run_id}-{n}"
        _inside(root, Path(out_root), "run directory")
        root.mkdir(parents=True)
        return cls(root)

    def check_links(self) -> None:
        """Refuse a run folder holding a link (or FIFO, device) anywhere: nothing is read or
        written in it (:class:`safefs.LinkInRunError`, exit 2)."""
        safefs.check_run_folder(self.root)

    @property
    def manifest_path(self) -> Path:
        return self.root / "manifest.json"

    @property
    def trace_dir(self) -> Path:
        d = self.root / "traces"
        safefs.safe_mkdirs(d)
        return d

    def exists(self) -> bool:
        """A manifest is there (it may still be damaged: :meth:`read_manifest` checks it)."""
        return self.manifest_path.exists() or self.manifest_path.is_symlink()

    def read_manifest(self) -> dict[str, Any]:
        """The checked manifest (:class:`RunFileError` if it is damaged)."""
        return read_record(self.manifest_path, "manifest")

    def write_manifest(self, manifest: dict[str, Any]) -> None:
        atomic_write_json(self.manifest_path, manifest)

    def entry_dir(self, entry: str) -> Path:
        """``entries/<entry>``; refuses a name that would leave ``entries/``."""
        entries = self.root / "entries"
        return _inside(entries / _component(entry, "entry name"), self.root, "entry folder")

    def phase_path(self, entry: str, phase: str) -> Path:
        d = self.entry_dir(entry)
        return _inside(d / f"{_component(phase, 'phase')}.json", self.root, "phase record")

    def checkpoint_path(self, entry: str, name: str) -> Path:
        d = self.entry_dir(entry) / "checkpoints"
        return _inside(d / f"{_component(name, 'checkpoint')}.pt", self.root, "checkpoint")

    def read_phase(self, entry: str, phase: str) -> dict[str, Any] | None:
        """The checked phase record; None if there is none (:class:`RunFileError` if damaged)."""
        p = self.phase_path(entry, phase)
        if not (p.exists() or p.is_symlink()):
            return None
        return read_record(p, "phase")

    def write_phase(self, entry: str, phase: str, record: PhaseRecord | dict[str, Any]) -> None:
        """Write the typed ``record`` of ``entry``'s ``phase`` (validated when it was built),
        serialised once. A plain dict (what :mod:`energybench.api` and tests hand in) is typed
        here first, so a writer's missing or wrong field fails as a :class:`RecordShapeError`,
        not when a report reads the run."""
        path = self.phase_path(entry, phase)  # an unsafe name is refused first
        if isinstance(record, dict):  # the thin untyped path: typed (and checked) once, here
            record = parse_phase(phase, record)
        elif record.phase != phase:
            raise RecordShapeError(f"a {record.phase} record written as the {phase} phase")
        if isinstance(record, ServeRecord):  # typed results pass; a dict is typed by its kind
            parse_scenarios(record.scenarios)
        atomic_write_json(path, record.to_json())  # serialised once

    def phase_state(self, entry: str, phase: str, config_hash: str | None = None) -> str | None:
        """None when the phase finished (with this config hash, if given) and its checkpoint is
        intact; otherwise why it must run: ``""`` (not run or not finished) or what is damaged.
        """
        try:
            rec = self.read_phase(entry, phase)
        except RunFileError as exc:
            return f"damaged: {exc}"
        if rec is None or rec.get("status") not in ("done", "skipped"):
            return ""
        if config_hash is not None and rec.get("config_hash") != config_hash:
            return ""
        return self.checkpoint_problem(entry, phase, rec)

    def checkpoint_problem(self, entry: str, phase: str, rec: dict[str, Any]) -> str | None:
        """What is wrong with the checkpoint a finished phase wrote (None: intact or none)."""
        if phase not in ("train", "compress"):
            return None
        path = self.checkpoint_path(entry, phase)
        ckpt = rec.get("checkpoint")
        if ckpt is None:  # records written before checkpoints were hashed: existence only
            if rec.get("status") == "done" and not path.is_file():
                return f"damaged: its checkpoint {path} is missing"
            return None
        if not path.is_file():
            return f"damaged: its checkpoint {path} is missing"
        try:
            digest = self._sha256(path)
        except OSError as exc:
            return f"damaged: its checkpoint {path} cannot be read ({exc.strerror or exc})"
        if digest != ckpt["sha256"]:
            return (
                f"damaged: its checkpoint {path} does not match the sha256 recorded in "
                f"{self.phase_path(entry, phase)} (truncated, replaced or altered)"
            )
        return None

    def _sha256(self, path: Path) -> str:
        """:func:`file_sha256`, computed once per file version (checkpoints can be large)."""
        st = path.stat()
        known = self._hashes.get(path)
        if known is None or known[:2] != (st.st_mtime_ns, st.st_size):
            known = (st.st_mtime_ns, st.st_size, file_sha256(path))
            self._hashes[path] = known
        return known[2]

    def phase_done(self, entry: str, phase: str, config_hash: str | None = None) -> bool:
        """True when the phase finished (and, if given, with this config hash) intact."""
        return self.phase_state(entry, phase, config_hash) is None


@dataclass
class RunData:
    """A run as loaded for reports and exports: every record typed (:mod:`records.phases`), the
    suite as the typed :class:`Suite` it was written from (``manifest`` keeps the file's JSON)."""

    root: Path
    manifest: dict[str, Any]
    phases: dict[str, EntryPhases] = field(default_factory=dict)  # entries with a record
    idle: IdleRecord = field(default_factory=IdleRecord)
    _results: dict[str, dict[str, ScenarioResult]] = field(default_factory=dict, repr=False)
    _suite: Suite | None = field(default=None, repr=False)
    _info: RunInfo | None = field(default=None, repr=False)

    @classmethod
    def from_records(
        cls,
        root: Path,
        manifest: dict[str, Any],
        phases: dict[str, dict[str, dict[str, Any]]],
        idle: dict[str, Any] | None = None,
    ) -> RunData:
        """A run from records in memory (entry -> phase -> JSON object), each typed as
        :func:`load_run` types the files (:class:`RecordShapeError` if one lacks a field)."""
        run = cls(root=Path(root), manifest=manifest, idle=parse_idle(idle or {}))
        for entry, recs in phases.items():
            for phase, rec in recs.items():
                run.phases.setdefault(entry, EntryPhases()).set(parse_phase(phase, rec))
        return run

    def entry(self, entry: str) -> EntryPhases:
        """``entry``'s typed phase records (all None: nothing recorded)."""
        return self.phases.get(entry) or EntryPhases()

    def results(self, entry: str) -> dict[str, ScenarioResult]:
        """Typed results of ``entry``'s serving scenarios, by name (empty: none recorded);
        :class:`RunFileError` names the serve record when one does not have its kind's shape."""
        if entry not in self._results:
            path = self.root / "entries" / entry / "serve.json"
            self._results[entry] = _typed_scenarios(self.entry(entry).serve, path)
        return self._results[entry]

    @property
    def store_version(self) -> int:
        return self.info.store_version  # checked when read

    @property
    def suite(self) -> Suite:
        """The suite as it ran, typed (its defaults are the schema's); :class:`RunFileError`
        naming the manifest when the stored suite is not a valid one."""
        if self._suite is None:
            self._suite = parse_suite(self.manifest.get("suite"), self.root / "manifest.json")
        return self._suite

    @property
    def info(self) -> RunInfo:
        """The manifest's account of the run (machine, meters, placements), typed;
        :class:`RunFileError` naming the manifest when a field has the wrong shape."""
        if self._info is None:
            self._info = _typed_info(self.root / "manifest.json", self.manifest)
        return self._info

    def result(self, entry: str, scenario: str) -> ScenarioResult | None:
        """The typed result of ``entry``'s scenario ``scenario`` (None: not recorded)."""
        return self.results(entry).get(scenario)

    @property
    def entries(self) -> list[str]:
        return [e.name for e in self.suite.entries]


def parse_suite(data: Any, path: Path) -> Suite:
    """The typed suite stored in a manifest at ``path`` (:class:`RunFileError` naming it)."""
    try:
        return Suite.model_validate(data)
    except ValidationError as exc:
        raise RunFileError(path, f"suite: not a valid suite: {problems(exc)}") from None


class NotARunError(UserError, ValueError):
    """A path that is not a run directory (user error, exit 2)."""


def load_run(run_dir: str | Path) -> RunData:
    """Load a run directory (manifest and every phase record), each file checked as it is read.

    Raises :class:`NotARunError` for a folder without a manifest and :class:`RunFileError`
    (``<file>: <what is wrong>``) for a damaged file: a report never silently skips a record.
    """
    root = Path(run_dir)
    store = RunStore(root)
    if not (store.manifest_path.exists() or store.manifest_path.is_symlink()):
        raise NotARunError(
            f"{root}: not an energybench run directory (no manifest.json); "
            "pass a folder like results/<suite>/<run-id>"
        )
    store.check_links()
    manifest = store.read_manifest()  # a later store version: refused
    run = RunData(root=root, manifest=manifest, _info=_typed_info(store.manifest_path, manifest))
    version = run.store_version
    idle = root / "idle.json"
    if idle.exists() or idle.is_symlink():
        run.idle = _typed_idle(idle, read_record(idle, "idle"))
    for name in run.entries:
        for phase in PHASES:
            try:
                rec = store.read_phase(name, phase)
            except UnsafePathError as exc:
                raise NotARunError(f"{root}/manifest.json names an unsafe entry: {exc}") from None
            if rec is not None:
                rec = upgrade_phase(rec, version)
                typed = _typed_phase(store.phase_path(name, phase), phase, rec)
                run.phases.setdefault(name, EntryPhases()).set(typed)
        run.results(name)  # a record without its kind's shape fails here, naming its file
    return run


def upgrade_phase(rec: dict[str, Any], version: int) -> dict[str, Any]:
    """A phase record written with store ``version`` in the current shape (in place)."""
    if version < 2 and rec.get("phase") == "serve":
        for sc in (rec.get("scenarios") or {}).values():
            if isinstance(sc, dict) and sc.get("scenario") == "load":
                for key in _V1_LOAD_DUPLICATES:
                    sc.pop(key, None)
                points = (sc.get("sweep") or {}).get("points") or []
                for t in [*(sc.get("trials") or []), *points]:
                    if isinstance(t, dict):
                        t.pop("energy_per_request_j", None)
    return rec


def _typed_phase(path: Path, phase: str, rec: dict[str, Any]) -> PhaseRecord:
    """The typed ``phase`` record read from ``path`` (:class:`RunFileError` naming the file
    when it lacks a field its type requires)."""
    try:
        return parse_phase(phase, rec)
    except RecordShapeError as exc:
        raise RunFileError(path, f"not a valid phase record: {exc}") from None


def _typed_info(path: Path, manifest: dict[str, Any]) -> RunInfo:
    try:
        return parse_run_info(manifest)
    except RecordShapeError as exc:
        raise RunFileError(path, str(exc)) from None


def _typed_idle(path: Path, rec: dict[str, Any]) -> IdleRecord:
    try:
        return parse_idle(rec)
    except RecordShapeError as exc:
        raise RunFileError(path, f"not a valid idle record: {exc}") from None


def _typed_scenarios(serve: ServeRecord | None, path: Path) -> dict[str, ScenarioResult]:
    try:
        return parse_scenarios(serve.scenarios if serve is not None else {})
    except RecordShapeError as exc:
        raise RunFileError(path, str(exc)) from None
