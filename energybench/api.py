"""The Python API: measure your own code, and keep what it measured in a run folder.

``measure`` is a context manager and a decorator (as codecarbon's ``EmissionsTracker``)::

    run = energybench.Run("results/my-study", suite="my-study", entry="resnet18-ft")
    with energybench.measure("finetune", phase="train", run=run) as m:
        train(model)                      # m.measurement: energy by device and source
    with energybench.measure("serve", run=run) as m:
        for batch in loader:
            model(batch)
            m.tick(len(batch))            # items served (and their latencies)

It opens windows on the same meters a suite uses (NVML, RAPL, the labelled codecarbon estimate),
with the same synchronisation, uncertainty, flags and estimate labels; :class:`Run` writes the
same typed phase records the runner writes, so ``energybench report``, ``export`` and ``plan``
read a script's run like a suite's. Windows nest and may be opened from several threads; one
GPU is read by one monitor at a time (a second monitor naming it is an error, within a process
and across processes on one machine). This module must not measure anything itself: energy comes
only from :class:`~energybench.meters.base.EnergyMonitor` windows.
"""

from __future__ import annotations

import atexit
import fcntl
import hashlib
import itertools
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ContextDecorator, contextmanager
from pathlib import Path
from typing import Any

from energybench.errors import UserError
from energybench.meters.base import EnergyMonitor
from energybench.records.phases import PHASES
from energybench.records.seal import write_seal
from energybench.records.window import Window
from energybench.suite.schema import EnergySettings, Suite

#: Window names that are not phase names but record as one (``measure("finetune", run=...)``).
PHASE_ALIASES = {"finetune": "train", "fine-tune": "train", "fit": "train", "inference": "serve"}

Devices = str | int | Sequence[int] | None


class MonitorConflictError(UserError, RuntimeError):
    """Two monitors would read one GPU at the same time (its energy would be counted twice)."""


class _Monitor:
    """One process-wide monitor for one set of GPUs and meter settings, opened lazily."""

    def __init__(self, gpus: tuple[int, ...], energy: EnergySettings, simulate: str | None) -> None:
        from energybench.meters.factory import build_monitor

        self.gpus = gpus
        self.monitor: EnergyMonitor = build_monitor(
            energy, list(gpus) or None, None, simulate=simulate
        )
        self.monitor.start()
        self.open_windows = 0
        self._gpu_locks: list[int] = []

    def gpu_ids(self) -> list[str]:
        """Stable names of the GPUs this monitor reads (NVML UUIDs where known)."""
        ids = []
        for d in self.monitor.describe():
            if isinstance(d, dict) and d.get("kind") == "gpu":
                ids.append(str(d.get("uuid") or d.get("device")))
        return ids or [f"cuda-{i}" for i in self.gpus]

    def lock_gpus(self) -> None:
        """Hold a machine-wide lock on each GPU while a window is open (one reader per GPU)."""
        for gid in self.gpu_ids() if self.gpus else []:
            safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in gid)
            path = Path(tempfile.gettempdir()) / f"energybench-gpu-{safe}.lock"
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                self.unlock_gpus()
                raise MonitorConflictError(
                    f"GPU {gid} is being measured by another process (lock {path}); two "
                    "monitors reading one GPU would count its energy twice: measure it from one "
                    "process, or give each process its own GPUs"
                ) from None
            self._gpu_locks.append(fd)

    def unlock_gpus(self) -> None:
        while self._gpu_locks:
            os.close(self._gpu_locks.pop())


_registry_lock = threading.RLock()
_monitors: dict[tuple[Any, ...], _Monitor] = {}
_window_ids = itertools.count()


def _resolve_devices(devices: Devices) -> tuple[int, ...]:
    """Torch CUDA positions named by ``devices``: "auto" (every visible GPU, none without CUDA),
    "cpu", "cuda", "cuda:N", an index or a list of indices."""
    if devices is None or devices == "cpu":
        return ()
    if isinstance(devices, int):
        return (devices,)
    if isinstance(devices, str):
        if devices in ("auto", "cuda"):
            import torch

            if not torch.cuda.is_available():
                if devices == "cuda":
                    raise UserError("measure(devices='cuda'): no CUDA GPU is visible here")
                return ()
            return tuple(range(torch.cuda.device_count()))
        if devices.startswith("cuda:") and devices[5:].isdigit():
            return (int(devices[5:]),)
        raise UserError(
            f"measure(devices={devices!r}): expected 'auto', 'cpu', 'cuda', 'cuda:N', an index "
            "or a list of indices"
        )
    return tuple(sorted({int(d) for d in devices}))


def _monitor_for(gpus: tuple[int, ...], energy: EnergySettings, simulate: str | None) -> _Monitor:
    key = (gpus, energy.model_dump_json(), simulate)
    with _registry_lock:
        mon = _monitors.get(key)
        if mon is None:
            mon = _monitors[key] = _Monitor(gpus, energy, simulate)
        return mon


def _claim(mon: _Monitor) -> None:
    """Count one more open window on ``mon``; refuse a GPU another open monitor reads."""
    with _registry_lock:
        if mon.open_windows == 0:
            for other in _monitors.values():
                shared = set(other.gpus) & set(mon.gpus)
                if other is not mon and other.open_windows and shared:
                    raise MonitorConflictError(
                        f"GPU {sorted(shared)} is already measured by another open window with "
                        "other settings; two monitors reading one GPU would count its energy "
                        "twice: nest windows with the same devices and settings instead"
                    )
            mon.lock_gpus()
        mon.open_windows += 1


def _release(mon: _Monitor) -> None:
    with _registry_lock:
        mon.open_windows -= 1
        if mon.open_windows == 0:
            mon.unlock_gpus()


@atexit.register
def close_monitors() -> None:
    """Stop every monitor's sampling threads (called at exit; safe to call any time no window
    is open)."""
    with _registry_lock:
        for mon in _monitors.values():
            if mon.open_windows == 0:
                mon.monitor.close()
        _monitors.clear()


class measure(ContextDecorator):  # noqa: N801 - used like a function, as codecarbon's decorator
    """Measure a block or a function: ``with measure("train") as m: ...`` or ``@measure(...)``.

    ``name`` labels the window; ``phase`` (train, compress, serve, evaluate) is where a ``run``
    records it (default: ``name`` itself, or its alias: finetune → train, inference → serve).
    ``devices``: "auto" (every visible CUDA GPU, else none), "cpu", "cuda:N" or indices; the
    host (CPU and memory) is always measured (RAPL, else a labelled estimate). ``items``: how
    many items the window serves (or count them with :meth:`tick`). ``energy``: the suite's
    ``energy`` settings (meters, sampling period, ...). ``simulate``: a ``--simulate`` profile.
    After the block, :attr:`measurement` is the typed
    :class:`~energybench.records.window.Window` (energy by device and source, uncertainty,
    ``is_estimate``, flags); a ``run`` has recorded it.
    """

    def __init__(
        self,
        name: str = "measure",
        *,
        phase: str | None = None,
        devices: Devices = "auto",
        run: Run | None = None,
        items: int | None = None,
        energy: EnergySettings | dict[str, Any] | None = None,
        simulate: str | None = None,
    ) -> None:
        self.name = name
        self.phase = phase or PHASE_ALIASES.get(name, name)
        if run is not None and self.phase not in PHASES:
            raise UserError(
                f"measure({name!r}, run=...): a run records phases {', '.join(PHASES)}; "
                f"pass phase= (e.g. phase='train')"
            )
        self.devices = devices
        self.run = run
        self.items = items
        self.energy = EnergySettings.model_validate(energy or {})
        self.simulate = simulate
        self.measurement: Window | None = None
        #: what a run records beside the window (train: steps, samples, final_loss, ...)
        self.stats: dict[str, Any] = {}
        self._ticks: list[float] = []
        self._counted = 0
        self._t0 = 0.0
        # windows this object has open, per thread (``with m:`` nests within one thread)
        self._local = threading.local()
        self._lock = threading.Lock()
        #: the decorator's template, which each call's own window reports back to
        self._template: measure | None = None

    @property
    def _stack(self) -> list[tuple[_Monitor, str, float]]:
        stack: list[tuple[_Monitor, str, float]] | None = getattr(self._local, "stack", None)
        if stack is None:
            stack = self._local.stack = []
        return stack

    # -- counting -----------------------------------------------------------------------------
    def tick(self, n: int = 1) -> None:
        """Count ``n`` items served since the previous tick (their latency is the interval)."""
        with self._lock:
            self._counted += n
            self._ticks.append(time.perf_counter())

    @property
    def items_served(self) -> int:
        """Items of the window: ``items`` if given, else what :meth:`tick` counted."""
        return self.items if self.items is not None else self._counted

    def latencies_s(self) -> list[float]:
        """Seconds between consecutive ticks (the first from the window's start)."""
        if not self._stack and not self._ticks:
            return []
        start = self._t0
        out, prev = [], start
        for t in self._ticks:
            out.append(t - prev)
            prev = t
        return out

    # -- the window ---------------------------------------------------------------------------
    def __enter__(self) -> measure:
        mon = _monitor_for(_resolve_devices(self.devices), self.energy, self.simulate)
        _claim(mon)
        key = f"{self.name}#{next(_window_ids)}"
        try:
            mon.monitor.begin_window(key)
        except BaseException:
            _release(mon)
            raise
        self._ticks, self._counted = [], 0
        self._t0 = time.perf_counter()
        self._stack.append((mon, key, time.time()))
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object
    ) -> None:
        mon, key, started = self._stack.pop()
        try:
            meas = mon.monitor.end_window(key)  # the window closes whatever the block did
        finally:
            _release(mon)
        self.measurement = meas
        if self._template is not None:
            self._template.measurement = meas
        if self.run is None:
            return
        if exc_type is None:
            self.run.record(self.phase, meas, started, self)
        elif self.phase != "serve":  # a serve window that raised is no trial (items unknown)
            self.run.record_failure(self.phase, meas, started, exc)

    def _recreate_cm(self) -> measure:
        """A fresh window per decorated call (calls from a thread pool overlap)."""
        fresh = measure(
            self.name,
            phase=self.phase,
            devices=self.devices,
            run=self.run,
            items=self.items,
            energy=self.energy,
            simulate=self.simulate,
        )
        fresh._template = self
        return fresh

    def __call__(self, func: Callable[..., Any]) -> Callable[..., Any]:  # type: ignore[override]
        """As a decorator: each call of ``func`` is its own window (and one record in ``run``);
        :attr:`measurement` is then the latest finished call's."""
        return super().__call__(func)


class Run:
    """A run folder that a script's windows are recorded into, readable by ``energybench
    report``, ``export`` and ``plan``.

    ``path`` is the run folder (created with a manifest if absent; reopened otherwise, by this
    or another process: writes take the run folder's lock). ``suite`` names the study and
    ``entry`` the model whose phases are recorded; several entries (one ``Run`` each) may share
    one folder. ``model`` is a label for the report (energybench does not build it). ``metric``
    and ``energy`` are the suite's ``metric`` and ``energy`` settings (defaults as in a suite).
    """

    def __init__(
        self,
        path: str | Path,
        suite: str = "custom",
        entry: str = "main",
        *,
        model: str = "external",
        description: str = "",
        metric: dict[str, Any] | None = None,
        energy: dict[str, Any] | None = None,
        rank: bool = True,
    ) -> None:
        from energybench.records.store import RunStore

        self.store = RunStore(Path(path))
        self.entry = entry
        self._latencies_s: dict[int, list[float]] = {}
        # the entry's serve windows are the trials of one throughput scenario named "serve"
        # (batch 1, one item per tick), which the metric's IEC is read from
        self._entry_spec = {
            "name": entry,
            "description": description,
            "model": {"name": model},
            "rank": rank,
            "serve": [{"scenario": "throughput", "name": "serve", "batch_sizes": [1]}],
        }
        self._suite_spec: dict[str, Any] = {"name": suite, "entries": [self._entry_spec]}
        if metric is not None:
            self._suite_spec["metric"] = metric
        if energy is not None:
            self._suite_spec["energy"] = energy
        self.suite = _validated_suite(self._suite_spec)
        with self._locked():
            self._write_manifest()

    @contextmanager
    def _locked(self) -> Iterator[None]:
        from energybench.run.lock import RunLock, RunLockedError

        self.store.root.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + 60.0
        while True:
            try:
                lock = RunLock(self.store.root).acquire()
                break
            except RunLockedError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        try:
            yield
        finally:
            lock.release()

    def _write_manifest(self) -> None:
        from energybench.records.store import STORE_VERSION
        from energybench.run.environment import snapshot
        from energybench.run.manifest import build_manifest

        old = self.store.read_manifest() if self.store.exists() else {}
        if old and old.get("store_version") != STORE_VERSION:
            raise UserError(
                f"{self.store.manifest_path}: written with store version "
                f"{old.get('store_version')!r}; this energybench appends to version "
                f"{STORE_VERSION} only"
            )
        suite = dict(old.get("suite") or self._suite_spec)
        if suite.get("name") != self.suite.name:
            raise UserError(
                f"{self.store.manifest_path}: holds suite {suite.get('name')!r}, not "
                f"{self.suite.name!r}; use another folder for another study"
            )
        entries = [e for e in suite.get("entries", []) if e.get("name") != self.entry]
        suite["entries"] = [*entries, self._entry_spec]
        typed = _validated_suite(suite)
        manifest = build_manifest(
            old,
            typed,
            suite_file=None,
            config_hash=_hash(typed.model_dump_json()),
            phase_hashes={
                e.name: {p: _hash(f"{e.name}/{p}") for p in PHASES} for e in typed.entries
            },
            environment=old.get("environment") or snapshot(),
            meters=old.get("meters", []),
            finished=True,
            failed={},
            cooldowns={},
            simulate=None,
            placements={e.name: "api" for e in typed.entries},
            resumes=0,
            source="python-api",
        )
        self.store.write_manifest(manifest)

    def record(
        self, phase: str, meas: Window, started_unix_s: float, window: measure | None = None
    ) -> None:
        """Record one window as ``phase`` of this run's entry (serve windows add a trial)."""
        with self._locked():
            if phase == "serve":
                rec = self._serve_record(meas, started_unix_s, window)
            else:
                self._refuse_second(phase)
                rec = self._base(phase, meas, started_unix_s)
                if phase == "train":
                    stats = dict(window.stats) if window is not None else {}
                    rec["train"] = {"seconds": meas.duration_s, **stats}
                elif phase == "compress":
                    rec["methods"] = [
                        {
                            "method": window.name if window else "custom",
                            "measurement": meas.to_json(),
                            "started_unix_s": started_unix_s,
                            "duration_s": meas.duration_s,
                        }
                    ]
            self.store.write_phase(self.entry, phase, rec)
            self._no_compress_window()
            write_seal(self.store.root)

    def record_failure(
        self, phase: str, meas: Window, started_unix_s: float, exc: BaseException | None
    ) -> None:
        """Record ``phase`` as failed (its window's energy kept, never counted as the phase's
        cost); a later window of the phase replaces it."""
        with self._locked():
            self._refuse_second(phase)
            error = f"{type(exc).__name__}: {exc}" if exc is not None else "failed"
            rec = {**self._base(phase, meas, started_unix_s), "status": "failed", "error": error}
            self.store.write_phase(self.entry, phase, rec)
            write_seal(self.store.root)

    def _refuse_second(self, phase: str) -> None:
        """A phase is measured once per entry; a failed or skipped record may be replaced."""
        old = self.store.read_phase(self.entry, phase)
        if old is not None and old.get("status") == "done":
            raise UserError(
                f"{self.store.phase_path(self.entry, phase)}: phase '{phase}' of entry "
                f"'{self.entry}' is already recorded; measure it in one window, or "
                "record it under another entry"
            )

    def _no_compress_window(self) -> None:
        """A script without a compress window has no compression cost: the phase is recorded
        as skipped (as a suite entry without compress steps), so TEC is the train window (and
        what else was measured), not unknown. A later compress window replaces it."""
        if self.store.read_phase(self.entry, "compress") is None:
            skipped = {
                **self._common("compress"),
                "status": "skipped",
                "reason": "no compress window in this script",
                "methods": [],
            }
            self.store.write_phase(self.entry, "compress", skipped)

    def record_quality(self, split: str = "test", **scores: float) -> None:
        """Record the entry's quality (e.g. ``psnr_db=31.2``, ``ssim=0.91``, ``top1=0.76``)."""
        with self._locked():
            old = self.store.read_phase(self.entry, "evaluate") or {}
            quality: dict[str, float] = dict(old.get("quality") or {})
            quality.update({k: float(v) for k, v in scores.items()})
            rec: dict[str, Any] = {
                **self._common("evaluate"),
                **{k: old[k] for k in ("started_unix_s", "duration_s", "measurement") if k in old},
                "split": split,
                "quality": quality,
            }
            self.store.write_phase(self.entry, "evaluate", rec)
            write_seal(self.store.root)

    def _common(self, phase: str) -> dict[str, Any]:
        from energybench.records.store import STORE_VERSION

        return {
            "schema_version": STORE_VERSION,
            "entry": self.entry,
            "phase": phase,
            "status": "done",
            "config_hash": _hash(f"{self.entry}/{phase}"),
        }

    def _base(self, phase: str, meas: Window, started_unix_s: float) -> dict[str, Any]:
        return {
            **self._common(phase),
            "started_unix_s": started_unix_s,
            "duration_s": meas.duration_s,
            "measurement": meas.to_json(),
        }

    def _serve_record(
        self, meas: Window, started_unix_s: float, window: measure | None
    ) -> dict[str, Any]:
        from energybench.records.types import ThroughputResult, Trial
        from energybench.serve.trials import SUMMARY_KEYS, aggregate_trials, trial_summary

        items = window.items_served if window is not None else 0
        if items <= 0:
            raise UserError(
                f"measure({window.name if window else 'serve'!r}) in phase 'serve' served no "
                "items: pass items= or call tick() per item, so that J/item can be computed"
            )
        latencies = window.latencies_s() if window is not None else []
        trial = trial_summary(meas, items, latencies or [meas.duration_s / items])
        old = self.store.read_phase(self.entry, "serve") or {}
        before = (old.get("scenarios") or {}).get("serve", {}).get("by_batch", {}).get("1", {})
        trials = [*(Trial.model_validate(t) for t in before.get("trials", [])), trial]
        # latencies: ticks of the windows this process measured; a trial recorded by another
        # process contributes its mean latency per item
        self._latencies_s[len(trials) - 1] = latencies or [meas.duration_s / items]
        lat = [
            x
            for k, t in enumerate(trials)
            for x in self._latencies_s.get(k, [t.duration_s / max(t.items, 1)])
        ]
        group = aggregate_trials(trials, lat, 1, "item", self.suite.energy)
        given = group.given()
        scenario = ThroughputResult(
            scenario="throughput",
            name="serve",
            batch_sizes=[1],
            by_batch={"1": group},
            **{k: given[k] for k in SUMMARY_KEYS if k in given},
        )
        return {
            **self._common("serve"),
            "started_unix_s": old.get("started_unix_s", started_unix_s),
            "duration_s": sum(t.duration_s for t in trials),
            "scenarios": {"serve": scenario},
        }


def _validated_suite(spec: dict[str, Any]) -> Suite:
    try:
        return Suite.model_validate(spec)
    except Exception as exc:  # pydantic's ValidationError: the user's own arguments
        raise UserError(f"energybench.Run: {exc}") from None


def _hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]
