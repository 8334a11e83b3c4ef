"""Cluster fan-out: ``energybench run SUITE --executor local|slurm`` runs one submitit job per
entry, all writing into one run directory (on a file system every node shares).

Each job (:class:`EntryJob`) runs the ordinary runner for its entry only, on a node it has to
itself, so the node's meters see that entry's work alone: its own idle baseline
(``jobs/<entry>/idle.json``), its own meters and environment (``jobs/<entry>/node.json``), and its
phase records written atomically into the shared store as in-process. Entries an entry depends on
(``inherit``, ``uses``, adaptive variants) must have finished: a job never runs another entry's
phases, it only loads their checkpoints.

- ``slurm``: every job is submitted at once with ``--exclusive``, ``--gpus-per-node``,
  ``--dependency=afterok:<ids>`` from the dependency edges and ``--kill-on-invalid-dep=yes``; a
  preempted or timed-out job is requeued by submitit (the job is
  :class:`submitit.helpers.Checkpointable`) up to ``executor.requeues`` times and resumes from
  its finished phases.
- ``local``: the same job objects through submitit's ``LocalExecutor``, one at a time in
  dependency order (jobs sharing one machine would share its meters); a job that dies is run
  again up to ``executor.retries`` times, resuming from its finished phases.

The parent writes the run's manifest (with every job's node, meters and placements), waits for
the jobs, and the CLI then renders the leaderboard and report from the store as usual. Options
come from the suite's ``executor:`` section (``--set executor.partition=gpu`` works too).
"""

from __future__ import annotations

import json
import os
import shlex
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import submitit
from rich.console import Console

from energybench.errors import SetupError
from energybench.plugins.entrypoints import load_plugins
from energybench.records import safefs
from energybench.records.check import RunFileError
from energybench.records.store import PHASES, RunStore, atomic_write_json, read_json
from energybench.run.preflight import check_datasets, check_devices, needed_entries
from energybench.run.resume import (
    ResumeError,
    check_resume,
    phase_hashes,
    require_resumable,
)
from energybench.run.runner import Runner, RunOutcome
from energybench.suite.load import LoadedSuite
from energybench.suite.schema import Entry, ExecutorSettings, Suite

EXECUTORS = ("local", "slurm")


class EntryFailedError(RuntimeError):
    """The entry of a job failed (its failed phase record says why)."""


def dependencies(e: Entry) -> list[str]:
    """Entries whose finished models ``e`` needs: ``inherit``, ``uses``, adaptive variants."""
    return list(dict.fromkeys(([e.inherit] if e.inherit else []) + e.uses + e.variants()))


def job_dir(store: RunStore, entry: str) -> Path:
    return store.root / "jobs" / store.entry_dir(entry).name


# ------------------------------------------------------------------------- inside a job
class JobRunner(Runner):
    """The runner of one job: runs ``entry`` only, keeps its node's idle baseline and environment
    in ``jobs/<entry>/`` and leaves the run's manifest to the parent."""

    def __init__(self, loaded: LoadedSuite, store: RunStore, console: Console, entry: str,
                 simulate: str | None = None) -> None:  # fmt: skip
        super().__init__(loaded, store, console, simulate=simulate)
        self.entry = entry
        self.idle_path = job_dir(store, entry) / "idle.json"

    def run_entry(self, e: Entry, remaining: list[Entry] | None = None) -> None:
        if e.name != self.entry:  # a dependency: reuse it, never run it in this job
            if not all(self.store.phase_done(e.name, p, self.hashes[e.name][p]) for p in PHASES):
                raise EntryFailedError(
                    f"entry '{self.entry}' needs '{e.name}', which has not finished"
                )
            self.outcome.reused.extend(f"{e.name}/{p}" for p in PHASES)
            return
        super().run_entry(e, remaining)

    def _write_manifest(self, finished: bool = False) -> None:
        from energybench.run.environment import snapshot

        atomic_write_json(
            job_dir(self.store, self.entry) / "node.json",
            {
                "entry": self.entry,
                "node": socket.gethostname(),
                "job_id": _job_id(),
                "environment": snapshot(),
                "meters": self.monitor.describe() if self.monitor else [],
                "placement": self.placements[self.entry].label,
                "phase_hashes": self.hashes[self.entry],
                "cooldowns": self.cooldowns,
                "failed": self.outcome.failed.get(self.entry),
                "finished": finished,
                "updated_unix_s": time.time(),
            },
        )


def _job_id() -> str | None:
    for key in ("SLURM_JOB_ID", "SUBMITIT_LOCAL_JOB_ID"):
        if os.environ.get(key):
            return os.environ[key]
    return None


@dataclass
class EntryJob(submitit.helpers.Checkpointable):
    """One entry of a run, as a submitit job (requeued as is after preemption: it resumes)."""

    run_dir: str
    entry: str
    simulate: str | None = None

    def __call__(self) -> dict[str, Any]:
        store = RunStore(Path(self.run_dir))
        jd = job_dir(store, self.entry)
        safefs.safe_mkdirs(jd)  # inside the run folder: no link followed
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND
        attempts = safefs.open_nofollow(jd / "attempts.jsonl", flags)
        with os.fdopen(attempts, "a") as fh:  # provenance; fault tests read the pid
            attempt = {"pid": os.getpid(), "node": socket.gethostname(), "job_id": _job_id()}
            fh.write(json.dumps({**attempt, "started_unix_s": time.time()}) + "\n")
        manifest = store.read_manifest()
        load_plugins(
            manifest["suite"].get("plugins") or []
        )  # declared plug-ins, as load_suite does
        suite = Suite.model_validate(manifest["suite"])
        loaded = LoadedSuite(suite=suite, path=Path(manifest["suite_file"]), data=manifest["suite"])
        e = suite.entry(self.entry)
        runner = JobRunner(loaded, store, Console(), self.entry, simulate=self.simulate)
        problems = [p for p in check_resume(store, suite, runner.hashes) if f"'{e.name}'" in p]
        if problems:
            raise ResumeError("; ".join(problems))
        outcome = runner.run(only=[self.entry])
        if not outcome.ok:
            raise EntryFailedError(outcome.failed.get(self.entry) or str(outcome.failed))
        return {"ran": outcome.ran, "reused": [r for r in outcome.reused if r.startswith(
            f"{self.entry}/")]}  # fmt: skip


# ------------------------------------------------------------------------- the parent
def _pythonpath() -> str:
    return os.pathsep.join(dict.fromkeys(p or os.getcwd() for p in sys.path))


def make_executor(kind: str, folder: Path, settings: ExecutorSettings) -> submitit.Executor:
    """The submitit executor of ``kind`` with the suite's options (per-job options are set at
    submission: dependencies)."""
    setup = [f"export PYTHONPATH={shlex.quote(_pythonpath())}", *settings.setup]
    if kind == "local":
        ex: submitit.Executor = submitit.LocalExecutor(
            folder=folder, max_num_timeout=settings.requeues
        )
        gpus = settings.gpus_per_job
        if not gpus:
            import torch

            gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
        ex.update_parameters(timeout_min=settings.time_min, gpus_per_node=gpus, setup=setup)
        return ex
    if kind != "slurm":
        raise SetupError(f"unknown executor '{kind}' (known: {', '.join(EXECUTORS)})")
    ex = submitit.SlurmExecutor(folder=folder, max_num_timeout=settings.requeues)
    params: dict[str, Any] = {
        "time": settings.time_min,
        "nodes": 1,
        "ntasks_per_node": 1,
        "setup": setup,
        "additional_parameters": {"kill-on-invalid-dep": "yes"},
    }
    if settings.exclusive:
        params["exclusive"] = True
    if settings.gpus_per_job:
        params["gpus_per_node"] = settings.gpus_per_job
    for key, value in (
        ("partition", settings.partition),
        ("account", settings.account),
        ("cpus_per_task", settings.cpus_per_job),
        ("mem", f"{settings.mem_gb:g}GB" if settings.mem_gb else None),
    ):
        if value is not None:
            params[key] = value
    ex.update_parameters(**params)
    return ex


@dataclass
class Submission:
    """The jobs of a run: entry -> submitit job, and the entries that had nothing left to do."""

    jobs: dict[str, submitit.Job[Any]] = field(default_factory=dict)
    finished: list[str] = field(default_factory=list)


def _unfinished(store: RunStore, e: Entry) -> bool:
    return not all(store.phase_done(e.name, p) for p in PHASES)


def submit_slurm(
    executor: submitit.Executor, store: RunStore, entries: list[Entry], simulate: str | None
) -> Submission:
    """Submit one job per unfinished entry, with ``afterok`` on the jobs it depends on."""
    sub = Submission()
    for e in entries:
        if not _unfinished(store, e):
            sub.finished.append(e.name)
            continue
        after = [sub.jobs[d].job_id for d in dependencies(e) if d in sub.jobs]
        executor.update_parameters(
            job_name=f"energybench-{e.name}",
            dependency=f"afterok:{':'.join(after)}" if after else None,
        )
        if not after:  # update_parameters keeps the previous job's value otherwise
            executor.parameters.pop("dependency", None)
        sub.jobs[e.name] = executor.submit(EntryJob(str(store.root), e.name, simulate))
    return sub


#: what a job's ``node.json`` must hold for the parent to read it: key -> (types, what)
_NODE_FIELDS: dict[str, tuple[tuple[type, ...], str]] = {
    "phase_hashes": ((dict,), "an object"),
    "placement": ((str,), "a string"),
    "environment": ((dict,), "an object"),
    "meters": ((list,), "a list"),
    "cooldowns": ((dict,), "an object"),
    "failed": ((str, type(None)), "a string or null"),
}


def read_node(path: Path) -> dict[str, Any]:
    """A job's ``node.json`` (written by the job; on ``--resume`` perhaps a hand-edited one of
    an earlier attempt), checked where the parent reads it: :class:`RunFileError` naming the
    file and field, exit 2."""
    try:
        data = read_json(path)
    except (OSError, ValueError) as exc:
        raise RunFileError(path, f"cannot be read as a job's record ({exc})") from None
    if not isinstance(data, dict):
        raise RunFileError(path, "must be a JSON object (a job's record)")
    for key, (types, what) in _NODE_FIELDS.items():
        if key in ("phase_hashes", "placement", "environment") and key not in data:
            raise RunFileError(path, f"{key}: missing (every job writes it)")
        if key in data and not isinstance(data[key], types):
            raise RunFileError(path, f"{key}: must be {what}, found {type(data[key]).__name__}")
    if not all(isinstance(m, dict) for m in data.get("meters", [])):
        raise RunFileError(path, "meters: must be a list of objects")
    return data


def _job_error(store: RunStore, entry: str, exc: BaseException) -> str:
    node = job_dir(store, entry) / "node.json"
    if node.is_file():
        failed = read_node(node).get("failed")
        if failed:
            return str(failed)
    last = [ln for ln in str(exc).strip().splitlines() if ln.strip()]
    return last[-1] if last else type(exc).__name__


def run_local(
    executor: submitit.Executor,
    store: RunStore,
    entries: list[Entry],
    simulate: str | None,
    retries: int,
    console: Console,
) -> dict[str, str]:
    """Run the jobs one after another in dependency order; entry -> error for those that failed
    (a job that died without an entry error is run again up to ``retries`` times)."""
    failed: dict[str, str] = {}
    for e in entries:
        bad = [d for d in dependencies(e) if d in failed]
        if bad:
            failed[e.name] = f"depends on failed entry {', '.join(bad)}"
            continue
        if not _unfinished(store, e):
            continue
        for attempt in range(retries + 1):
            job = executor.submit(EntryJob(str(store.root), e.name, simulate))
            job._results_timeout_s = 2  # a killed job leaves no result: do not wait 15 s
            console.print(f"job {job.job_id}: {e.name} (attempt {attempt + 1})", highlight=False)
            try:
                job.result()
                break
            except submitit.core.utils.FailedJobError as exc:  # the entry itself failed
                failed[e.name] = _job_error(store, e.name, exc)
                break
            except submitit.core.utils.UncompletedJobError as exc:  # killed, lost
                failed[e.name] = f"job {job.job_id} died: {_job_error(store, e.name, exc)}"
                if attempt < retries:
                    console.print(f"[yellow]job of '{e.name}' died; running it again[/yellow]")
                    del failed[e.name]
    return failed


def wait_slurm(sub: Submission, store: RunStore, entries: list[Entry]) -> dict[str, str]:
    """Wait for every job (in dependency order); entry -> error for those that failed, or that
    Slurm cancelled because an upstream job failed."""
    failed: dict[str, str] = {}
    for e in entries:
        job = sub.jobs.get(e.name)
        if job is None:
            continue
        try:
            job.result()
        except submitit.core.utils.UncompletedJobError as exc:
            bad = [d for d in dependencies(e) if d in failed]
            failed[e.name] = (
                f"depends on failed entry {', '.join(bad)}"
                if bad
                else _job_error(store, e.name, exc)
            )
    return failed


def _open_store(
    loaded: LoadedSuite, kind: str, out_root: Path, resume: Path | None, only: list[str] | None,
    simulate: str | None,
) -> RunStore:  # fmt: skip
    """The run directory, after the same checks as an in-process run (on this host: all of them
    for ``local``; for ``slurm`` the device checks run in each job, on its node)."""
    check_datasets(loaded.suite, only)
    labels = None
    if kind == "local":
        placed = check_devices(loaded.suite, only, simulate)
        labels = {k: p.label for k, p in placed.items()}
    if resume is None:
        return RunStore.create(out_root, loaded.suite.name, loaded.config_hash)
    store = RunStore(Path(resume))
    if not store.exists():
        raise ResumeError(f"--resume {resume}: not a run directory (no manifest.json)")
    store.check_links()  # a link where the run writes: refused before anything is written
    store.read_manifest()  # damaged or of a later store version: refused, never rewritten
    if labels is not None:
        require_resumable(store, loaded.suite, phase_hashes(loaded.suite, labels), resume)
    return store


def write_manifest(
    store: RunStore,
    loaded: LoadedSuite,
    kind: str,
    simulate: str | None,
    failed: dict[str, str],
    finished: bool,
    jobs: dict[str, str] | None = None,
) -> None:
    """The run's manifest, as an in-process run writes it, with each job's node folded in."""
    from energybench.run.environment import snapshot
    from energybench.run.manifest import build_manifest, previous_manifest

    old = previous_manifest(store)
    nodes = {}
    for e in loaded.suite.entries:
        p = job_dir(store, e.name) / "node.json"
        if p.is_file():
            nodes[e.name] = read_node(p)
    meters: dict[str, dict[str, Any]] = {}
    for n in nodes.values():
        for m in n.get("meters", []):
            meters.setdefault(json.dumps(m, sort_keys=True, default=str), m)
    job_ids = {**old.get("executor", {}).get("job_ids", {}), **(jobs or {})}
    manifest = build_manifest(
        old,
        loaded.suite,
        suite_file=str(loaded.path),
        config_hash=loaded.config_hash,
        phase_hashes={k: n["phase_hashes"] for k, n in nodes.items()},
        environment=snapshot(),
        meters=list(meters.values()),
        finished=finished,
        failed=failed,
        cooldowns={k: c for n in nodes.values() for k, c in n.get("cooldowns", {}).items()},
        simulate=simulate,
        placements={k: n["placement"] for k, n in nodes.items()},
        executor={
            "kind": kind,
            "job_ids": job_ids,
            "nodes": {
                k: {"node": n.get("node"), "job_id": n.get("job_id"), "env": n["environment"]}
                for k, n in nodes.items()
            },
        },
    )
    store.write_manifest(manifest)


def run_with_executor(
    loaded: LoadedSuite,
    kind: str,
    out_root: Path = Path("results"),
    resume: Path | None = None,
    only: list[str] | None = None,
    console: Console | None = None,
    simulate: str | None = None,
    on_run_dir: Callable[[Path], None] | None = None,
) -> RunOutcome:
    """Run (or resume) a suite as one job per entry; returns what an in-process run returns
    (``on_run_dir``: as for :func:`~energybench.run.runner.run_suite`)."""
    if kind not in EXECUTORS:
        raise SetupError(f"unknown executor '{kind}' (known: {', '.join(EXECUTORS)})")
    console = console or Console()
    settings = loaded.suite.executor or ExecutorSettings()
    store = _open_store(loaded, kind, out_root, resume, only, simulate)
    if on_run_dir is not None:
        on_run_dir(store.root)
    entries = needed_entries(loaded.suite, only)
    write_manifest(store, loaded, kind, simulate, {}, finished=False)
    executor = make_executor(kind, store.root / "jobs" / "submitit", settings)
    before = {(e.name, p): store.phase_done(e.name, p) for e in entries for p in PHASES}
    if kind == "local":
        failed = run_local(executor, store, entries, simulate, settings.retries, console)
        ids: dict[str, str] = {}
    else:
        sub = submit_slurm(executor, store, entries, simulate)
        ids = {k: j.job_id for k, j in sub.jobs.items()}
        write_manifest(store, loaded, kind, simulate, {}, finished=False, jobs=ids)
        console.print(
            f"submitted {len(ids)} job(s): " + ", ".join(f"{k}={v}" for k, v in ids.items())
        )
        failed = wait_slurm(sub, store, entries)
    write_manifest(store, loaded, kind, simulate, failed, finished=True, jobs=ids)
    outcome = RunOutcome(run_dir=store.root, failed=failed)
    for (name, phase), was_done in before.items():
        if was_done:
            outcome.reused.append(f"{name}/{phase}")
        elif store.phase_done(name, phase):
            outcome.ran.append(f"{name}/{phase}")
    return outcome
