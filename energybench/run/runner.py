"""The lifecycle runner: for each entry, train -> compress -> serve -> evaluate, each phase in a
measurement window, every finished phase written to the run store at once (so runs resume).
Where entries run: :mod:`~energybench.run.placement`; the checks before a run folder
exists: :mod:`~energybench.run.preflight`; what ``--resume`` may reuse:
:mod:`~energybench.run.resume`.

It orchestrates; measuring is the monitor's job, the numbers' meaning is the metric's.
"""

from __future__ import annotations

import math
import os
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from pydantic import ValidationError
from rich.console import Console
from torch import nn

from energybench.compress.common import CompressContext, describe_model
from energybench.compress.methods import apply_method
from energybench.errors import SetupError
from energybench.meters.base import EnergyMonitor
from energybench.meters.factory import build_monitor
from energybench.records.check import RunFileError, read_record
from energybench.records.phases import BatchSizing, PhaseRecord, parse_phase
from energybench.records.safefs import LinkInRunError
from energybench.records.seal import write_seal
from energybench.records.store import (
    PHASES,
    STORE_VERSION,
    DiskFullError,
    RunStore,
    atomic_write_json,
)
from energybench.records.types import ScenarioResult
from energybench.records.window import Window
from energybench.run import interrupt
from energybench.run.allocator import keep_freed_memory
from energybench.run.checkpoint import CheckpointLoader, save_checkpoint
from energybench.run.context import PhaseContext
from energybench.run.devices import MemoryPeaks, device_scope, memory_peaks, release_memory
from energybench.run.environment import snapshot
from energybench.run.idle import measure_baselines, restore
from energybench.run.interrupt import CtrlC
from energybench.run.lock import RunLock
from energybench.run.manifest import build_manifest, previous_manifest
from energybench.run.numerics import apply_numerics
from energybench.run.placement import placements
from energybench.run.preflight import (
    check_datasets,
    check_devices,
    check_weights,
    needed_entries,
    task_for,
)
from energybench.run.progress import RunProgress
from energybench.run.resume import (
    ResumeError,
    phase_hashes,
    require_resumable,
    upstream_phases,
)
from energybench.serve.scenarios import ScenarioContext, run_scenario
from energybench.suite.devices import placement_notes
from energybench.suite.load import LoadedSuite
from energybench.suite.schema import Adaptive, Entry, TrainSettings
from energybench.tasks.base import Task
from energybench.train.loop import settings_kwargs, train_steps
from energybench.train.sizing import MAX_AUTO_BATCH, auto_batch_size

#: Test hook (documented in tests/test_runner.py): ``ENTRY/PHASE:PATH`` holds the run just before
#: that phase starts, after writing ``PATH.ready``, for as long as the file ``PATH`` exists. Fault
#: tests synchronise on it instead of sleeping, so they pass on a loaded machine. Other points:
#: ``peaks`` (before each GEMM peak), ``cool-down/ENTRY``, ``idle/after``, ``report`` (``run``'s
#: report, after the run).
TEST_HOLD_ENV = "ENERGYBENCH_TEST_HOLD"


def test_hold(point: str) -> None:
    """Wait at ``point`` ("entry/phase") while the test hook says so (no-op otherwise)."""
    spec = os.environ.get(TEST_HOLD_ENV)
    if not spec or not spec.startswith(point + ":"):
        return
    path = Path(spec[len(point) + 1 :])
    Path(f"{path}.ready").write_text(point)
    while path.exists():
        interrupt.sleep(0.01)  # a Ctrl-C dropped by a finaliser still ends the wait


@dataclass
class RunOutcome:
    run_dir: Path
    failed: dict[str, str] = field(default_factory=dict)  # entry -> error
    ran: list[str] = field(default_factory=list)  # "entry/phase" that ran this time
    reused: list[str] = field(default_factory=list)  # "entry/phase" kept from before

    @property
    def ok(self) -> bool:
        return not self.failed


class Runner:
    """Runs one suite into one run directory."""

    def __init__(
        self,
        loaded: LoadedSuite,
        store: RunStore,
        console: Console,
        tasks: dict[str, Task] | None = None,
        simulate: str | None = None,
    ) -> None:
        self.loaded = loaded
        self.weights: dict[str, dict[str, Any]] = {}  # entry -> the pretrained weights it loaded
        self.suite = loaded.suite
        self.store = store
        self.console = console
        self.simulate = simulate
        self.placements = placements(self.suite, simulate)
        self.hashes = phase_hashes(self.suite, {k: p.label for k, p in self.placements.items()})
        self.outcome = RunOutcome(run_dir=store.root)
        self._datasets: dict[str, Task] = tasks if tasks is not None else {}
        self.monitor: EnergyMonitor | None = None  # while :meth:`run` runs (see :attr:`meter`)
        self.progress: RunProgress | None = None
        self.cooldowns: dict[str, dict[str, Any]] = {}
        self._served: dict[str, nn.Module] = {}  # entry -> model on its serving backend
        self._sizing: dict[str, BatchSizing] = {}  # entry -> its resolved batch_size: auto
        self.peaks: dict[str, dict[str, float]] = {}  # device label -> dtype -> GEMM FLOP/s
        self._peaks = MemoryPeaks()  # the running phase's CUDA memory peaks
        self.idle_path = store.root / "idle.json"  # a cluster job keeps its node's own
        # every process that measures (in-process runs, executor jobs) serves the same way:
        # serving figures measure the model, not the allocator's history
        keep_freed_memory()

    # ------------------------------------------------------------------ helpers
    @property
    def meter(self) -> EnergyMonitor:
        """The run's energy monitor; phases run only inside :meth:`run`, which builds it."""
        if self.monitor is None:
            raise RuntimeError("the energy monitor exists only while Runner.run runs")
        return self.monitor

    def _task(self, e: Entry) -> Task:
        return task_for(self.suite, e, self._datasets)

    def context(self) -> PhaseContext:
        """What phase code outside the runner may use of this run (not the runner itself)."""
        return PhaseContext(
            loaded=self.loaded,
            store=self.store,
            placements=self.placements,
            loader=CheckpointLoader(lambda u: self.store.checkpoint_path(u, "train")),
            monitor=self.monitor,
            simulate=self.simulate,
        )

    def _load(self, path: Path, device: torch.device) -> nn.Module:
        """A checkpoint of this run: tensors only, the module rebuilt from its recipe."""
        return self.context().load(path, device)

    def _record(self, e: Entry, phase: str, status: str, **fields_: Any) -> PhaseRecord:
        """Write ``e``'s ``phase`` record, built as that phase's typed record
        (:data:`~energybench.records.phases.PHASE_KINDS`): a field of the wrong shape fails
        here, as a :class:`RecordShapeError`, before anything is written."""
        if status != "skipped":  # this process's peaks (ranks of a DDP phase: their own)
            fields_.setdefault("memory", self._peaks.read())
        rec = parse_phase(
            phase,
            {
                "schema_version": STORE_VERSION,
                "entry": e.name,
                "phase": phase,
                "status": status,
                "config_hash": self.hashes[e.name][phase],
                **fields_,
            },
        )
        self.store.write_phase(e.name, phase, rec)
        return rec

    def _window_fields(self, meas: Window | None, t0: float) -> dict[str, Any]:
        return {
            "started_unix_s": t0,
            "duration_s": time.time() - t0,
            "measurement": meas,
        }

    # ------------------------------------------------------------------ phases
    def _build_model(self, e: Entry, device: torch.device, task: Task | None = None) -> nn.Module:
        model, weights = self.context().build_model(e, device, task)
        if weights is not None:
            self.weights[e.name] = weights
        return model

    def _train(self, e: Entry, task: Task, device: torch.device) -> nn.Module:
        ckpt = self.store.checkpoint_path(e.name, "train")
        if e.inherit:
            return self._train_inherited(e, e.inherit, device)
        torch.manual_seed(e.train.seed if e.train else 0)
        # DDP ranks build their own models on their GPUs: the parent's copy (to count its
        # parameters) stays on the CPU, so the parent creates no CUDA context on a rank's GPU
        ranks = self._ranks_train(e, "train")
        model = self._build_model(e, torch.device("cpu") if ranks else device, task)
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        steps = self._train_steps(e, task, 1)  # only whether there is anything to train
        if trainable == 0 or steps == 0:
            saved = save_checkpoint(model, ckpt)
            why = "model has no trainable parameters" if trainable == 0 else "0 training steps"
            self._record(
                e,
                "train",
                "skipped",
                reason=why,
                measurement=None,
                model=describe_model(model),
                checkpoint=saved,
                weights=self.weights.get(e.name),
            )
            return model.to(device)
        tr = e.train
        assert tr is not None
        if tr.distributed is not None:  # DDP ranks, each metering its own device
            from energybench.train.distributed import train_distributed

            self._phase_bar(f"{e.name}: train ({tr.distributed.nproc_per_node} ranks)", None)
            model, done = train_distributed(self.context(), e, steps)
            self._record(e, "train", "done", **done)
            return model
        self._train_here(e, tr, model, task, device, ckpt)
        return model

    def _train_inherited(self, e: Entry, base: str, device: torch.device) -> nn.Module:
        """``e`` trains nothing: it inherits ``base``'s trained model (and its training energy)."""
        self._record(
            e,
            "train",
            "skipped",
            inherited_from=base,
            reason=f"inherits the trained model of '{base}' (its training "
            "energy is counted for this entry too)",
            measurement=None,
        )
        return self._load(self.store.checkpoint_path(base, "train"), device)

    def _train_here(
        self,
        e: Entry,
        tr: TrainSettings,
        model: nn.Module,
        task: Task,
        device: torch.device,
        ckpt: Path,
    ) -> None:
        """Train ``model`` in this process inside ``e``'s measured train window (which also
        holds an auto batch size's probe), save it to ``ckpt`` and record the phase."""
        t0 = time.time()
        with self.meter.window(f"{e.name}/train") as w:  # an auto batch's probe is training's
            batch = self._batch_size(e, model, task, device)
            steps = self._train_steps(e, task, batch)
            self._phase_bar(f"{e.name}: train", steps)
            res = train_steps(
                model,
                task,
                steps=steps,
                device=device,
                **{**settings_kwargs(tr), "batch_size": batch},
                progress=self._update,
            )
        saved = save_checkpoint(model, ckpt)
        sizing = self._sizing.get(e.name)
        self._record(
            e,
            "train",
            "done",
            train={**res.to_dict(), "batch_sizing": sizing.model_dump() if sizing else None},
            model=describe_model(model),
            checkpoint=saved,
            weights=self.weights.get(e.name),
            **self._window_fields(w.measurement, t0),
        )

    def _batch_size(self, e: Entry, model: nn.Module, task: Task, device: torch.device) -> int:
        """``e``'s training batch: the suite's number, or ``auto`` resolved once per entry from
        its device (:mod:`energybench.train.sizing`) and, on resume, the size training used."""
        tr = e.train
        if tr is None:
            return 16
        if tr.batch_size != "auto":
            return int(tr.batch_size)
        if e.name not in self._sizing:
            rec = self.store.read_phase(e.name, "train")
            train = (rec or {}).get("train")  # our own record, as written (maybe hand-edited)
            sizing = train.get("batch_sizing") if isinstance(train, dict) else None
            try:  # a hand-edited or damaged figure is measured again, never trusted or raised
                self._sizing[e.name] = BatchSizing.model_validate(sizing)
            except ValidationError:
                cap = tr.max_batch_size or MAX_AUTO_BATCH
                self._sizing[e.name] = auto_batch_size(model, task, device, tr.optimizer, cap=cap)
        return self._sizing[e.name].batch_size

    def _train_steps(self, e: Entry, task: Task, batch_size: int) -> int:
        tr = e.train
        if tr is None:
            return 0
        if tr.steps is not None:
            return tr.steps
        if tr.epochs is None:
            return 0
        items = getattr(getattr(task, "dataset", None), "train_items", None)
        if not items:
            raise ValueError(f"dataset of entry '{e.name}' has no epoch size; use train.steps")
        return tr.epochs * math.ceil(items / batch_size)

    def _compress(self, e: Entry, model: nn.Module, task: Task, device: torch.device) -> nn.Module:
        if not e.compress:
            self._record(
                e,
                "compress",
                "skipped",
                reason="no compression methods",
                measurement=None,
                methods=[],
            )
            return model
        ctx = CompressContext(
            task=task,
            device=device,
            seed=e.train.seed if e.train else 0,
            batch_size=self._batch_size(e, model, task, device),
            progress=self._update,
        )
        methods = []
        t0 = time.time()
        with self.meter.window(f"{e.name}/compress") as outer:
            for i, step in enumerate(e.compress):
                self._phase_bar(f"{e.name}: compress {step.method}", 1)
                t1 = time.time()
                with self.meter.window(f"{e.name}/compress/{i}-{step.method}") as w:
                    model, info = apply_method(step, model, ctx)
                methods.append({**info, **self._window_fields(w.measurement, t1)})
        saved = save_checkpoint(model, self.store.checkpoint_path(e.name, "compress"))
        self._record(
            e,
            "compress",
            "done",
            methods=methods,
            checkpoint=saved,
            **self._window_fields(outer.measurement, t0),
        )
        return model

    def _served_model(
        self, e: Entry, model: nn.Module, task: Task, device: torch.device, metered: bool
    ) -> tuple[nn.Module, dict[str, Any]]:
        """``model`` on the entry's serving backend (see :mod:`energybench.serve.backends.core`);
        ``metered``: the one-off export/compile runs in its own window (counted in TEC)."""
        from energybench.serve.backends.core import (
            PrepareContext,
            prepare_serving,
            serving_batches,
        )

        if e.backend.is_default():
            return model, {"name": "eager", "export": None}
        if e.name in self._served and not metered:
            return self._served[e.name], {}
        frames = task.sample_inputs(e.backend.parity_frames, seed=1)
        if frames is None:
            raise SetupError(f"entry '{e.name}': backend '{e.backend.name}' needs sample inputs")
        ctx = PrepareContext(
            frames, device, task, e.train.seed if e.train else 0,
            self._batch_size(e, model, task, device), serving_batches(e),
            self.store.root / "engines" / e.name, self.suite.numerics,
        )  # fmt: skip
        self._phase_bar(f"{e.name}: prepare backend {e.backend.name}", None)
        served, rec = prepare_serving(
            e.backend, model, ctx, self.monitor if metered else None, f"{e.name}/serve/export"
        )
        self._served[e.name] = served
        return served, rec

    def _variant(self, name: str, device: torch.device) -> nn.Module:
        """An adaptive scenario's variant: that entry's final model on its own backend."""
        v = self.suite.entry(name)
        model = self._resume_model(v, "serve", device)
        return self._served_model(v, model, self._task(v), device, metered=False)[0]

    def _serve(self, e: Entry, model: nn.Module, task: Task, device: torch.device) -> None:
        from energybench.models.sr.complexity import count_flops

        scenarios: dict[str, ScenarioResult] = {}  # typed, as the scenarios return them
        t0 = time.time()
        served, backend = self._served_model(e, model, task, device, metered=bool(e.serve))
        sample = task.sample_inputs(1)
        info = describe_model(model)
        if sample is not None:
            try:
                info["flops_per_item"] = count_flops(model, tuple(sample.shape))
            except Exception as exc:  # noqa: BLE001 - FLOPs are informative, never fatal
                info["flops_per_item"] = None
                info["flops_error"] = str(exc)
            info["input_shape"] = list(sample.shape)
        for sc, name in zip(e.serve, e.scenario_names(), strict=True):
            self._phase_bar(f"{e.name}: serve {name}", None)
            ctx = ScenarioContext(
                served, task, device, self.meter, self.suite.energy, f"{e.name}/serve/{name}",
                variant=lambda v: self._variant(v, device),
            )  # fmt: skip
            scenarios[name] = run_scenario(sc, ctx)
            scenarios[name].name = name
        self._record(
            e,
            "serve",
            "done" if e.serve else "skipped",
            scenarios=scenarios,
            backend=backend,
            model=info,
            device=str(device),
            started_unix_s=t0,
            duration_s=time.time() - t0,
        )

    def _evaluate(self, e: Entry, model: nn.Module, task: Task, device: torch.device) -> None:
        """Score the entry's model; an entry that serves an adaptive scenario is scored on what
        it delivered instead (:func:`~energybench.serve.adaptive.delivered_quality`)."""
        if e.variants():
            self._evaluate_delivered(e)
            return
        served, _ = self._served_model(e, model, task, device, metered=False)
        self._phase_bar(f"{e.name}: evaluate", None)
        t0 = time.time()
        with torch.inference_mode(), self.meter.window(f"{e.name}/evaluate") as w:
            quality = task.evaluate(served, e.evaluate, device)
        fields = self._window_fields(w.measurement, t0)
        if served is not model:
            fields.update(self._quality_vs_fp32(e, model, task, device, quality))
        self._record(e, "evaluate", "done", split=e.evaluate.split, quality=quality, **fields)

    def _quality_vs_fp32(
        self, e: Entry, model: nn.Module, task: Task, device: torch.device, quality: dict
    ) -> dict[str, Any]:
        """A reduced-precision backend (bf16, fp16, int8): the fp32 model scored on the same
        clips, outside the metered window (a check, not part of the entry's cost), and the
        difference (``precision`` in the evaluate record; see serve/backends/lowp.py)."""
        from energybench.serve.backends.lowp import quality_vs_fp32, reduced_dtype

        dtype = reduced_dtype(e.backend)
        if dtype is None:
            return {}
        self._phase_bar(f"{e.name}: evaluate fp32 reference", None)
        with torch.inference_mode():
            fp32 = task.evaluate(model, e.evaluate, device)
        return {"precision": quality_vs_fp32(dtype, quality, fp32)}

    def _evaluate_delivered(self, e: Entry) -> None:
        """Quality of the frames the entry's first adaptive scenario served: its variants' own
        evaluate figures weighted by the frames each served (not the host model's)."""
        from energybench.serve.adaptive import delivered_quality

        names = e.scenario_names()
        name = next(n for sc, n in zip(e.serve, names, strict=True) if isinstance(sc, Adaptive))
        serve = self.store.read_phase(e.name, "serve") or {}
        result = (serve.get("scenarios") or {}).get(name)
        if result is None:
            raise SetupError(f"entry '{e.name}': no record of its adaptive scenario '{name}'")
        variant_quality = {}
        for v in result["variants"]:
            rec = self.store.read_phase(v, "evaluate") or {}
            if rec.get("status") != "done":
                raise SetupError(f"entry '{e.name}': variant '{v}' has no finished evaluation")
            variant_quality[v] = rec.get("quality") or {}
        self._phase_bar(f"{e.name}: evaluate (frames served by {name})", None)
        t0 = time.time()
        with self.meter.window(f"{e.name}/evaluate") as w:
            quality, basis = delivered_quality(result, variant_quality)
        self._record(
            e,
            "evaluate",
            "done",
            split=e.evaluate.split,
            quality=quality,
            quality_basis={"scenario": name, **basis},
            **self._window_fields(w.measurement, t0),
        )

    # ------------------------------------------------------------------ progress
    def _phase_bar(self, description: str, total: int | None) -> None:
        if self.progress is not None:
            self.progress.phase(description, total)

    def _update(self, step: int, total: int, loss: float) -> None:
        if self.progress is not None:
            self.progress.update(step, total, loss)

    # ------------------------------------------------------------------ entry and run
    def run_entry(self, e: Entry, remaining: list[Entry] | None = None) -> None:
        """Run the phases of ``e`` that are not finished yet, charged for its GPUs only, each
        phase with the entry's device as the current CUDA device (kernels, streams, events and
        synchronises go to that GPU; a DDP train phase: to the ranks' own). Afterwards its
        served models are released unless an entry in ``remaining`` serves them as adaptive
        variants (None: keep them all)."""
        placement = self.placements[e.name]
        self._peaks = MemoryPeaks()  # nothing of an earlier entry's phases
        try:
            with self.meter.charging(placement.gpus):
                self._run_phases(e, placement.device)
        finally:
            if remaining is not None:
                self.release_served(remaining, placement.device)

    def release_served(self, remaining: list[Entry], device: torch.device) -> list[str]:
        """Drop the served models (sessions, engines) no entry in ``remaining`` needs, then free
        the CUDA cache of ``device``; returns the entries whose models were dropped."""
        needed = {v for r in remaining for sc in r.serve if isinstance(sc, Adaptive)
                  for v in sc.variants} | {r.name for r in remaining}  # fmt: skip
        dropped = [name for name in self._served if name not in needed]
        for name in dropped:
            del self._served[name]
        release_memory(device)
        return dropped

    def _run_phases(self, e: Entry, device: torch.device) -> None:
        task = self._task(e)
        model: nn.Module | None = None
        h = self.hashes[e.name]
        for phase in PHASES:
            key = f"{e.name}/{phase}"
            state = self.store.phase_state(e.name, phase, h[phase])
            redone = [d for d in upstream_phases(e, phase) if d in self.outcome.ran]
            if state is None and not redone:
                self.outcome.reused.append(key)
                continue
            if state:
                self._note(f"{key}: {state}; redoing it")
            elif state is None:
                self._note(f"{key}: redoing it, because {', '.join(redone)} was redone")
            interrupt.check()
            test_hold(key)
            # a DDP train phase's ranks own their GPUs: the parent must not touch them
            here = torch.device("cpu") if self._ranks_train(e, phase) else device
            with device_scope(here), memory_peaks(here) as self._peaks:
                model = self._run_phase(e, phase, model, task, device)
            self._peaks = MemoryPeaks()
            self.outcome.ran.append(key)

    @staticmethod
    def _ranks_train(e: Entry, phase: str) -> bool:
        """Whether ``phase`` of ``e`` runs in DDP rank processes (not in this one)."""
        return phase == "train" and e.train is not None and e.train.distributed is not None

    def _run_phase(
        self, e: Entry, phase: str, model: nn.Module | None, task: Task, device: torch.device
    ) -> nn.Module | None:
        """Run one phase of ``e``; returns the model the next phase starts from."""
        if phase == "train":
            return self._train(e, task, device)
        if model is None:
            model = self._resume_model(e, phase, device)
        if phase == "compress":
            return self._compress(e, model, task, device)
        if phase == "serve":
            self._serve(e, model, task, device)
        else:
            self._evaluate(e, model, task, device)
        return model

    def _resume_model(self, e: Entry, phase: str, device: torch.device) -> nn.Module:
        """The model a phase after training starts from when earlier phases finished in a
        previous session."""
        candidates = [self.store.checkpoint_path(e.name, "train")]
        if phase != "compress":
            candidates.insert(0, self.store.checkpoint_path(e.name, "compress"))
        if e.inherit:
            candidates.append(self.store.checkpoint_path(e.inherit, "train"))
        for path in candidates:
            if path.is_file():
                return self._load(path, device)
        raise FileNotFoundError(
            f"no checkpoint to resume entry '{e.name}' from (looked for "
            f"{', '.join(str(p) for p in candidates)})"
        )

    def _note(self, text: str) -> None:
        """A line for the user while the run goes on (e.g. a damaged phase that is redone)."""
        from rich.markup import escape

        line = f"[yellow]note: {escape(text)}[/yellow]"
        if self.progress is not None:
            self.progress.log(line)
        else:
            self.console.print(line, highlight=False, soft_wrap=True)

    def run(self, only: list[str] | None = None) -> RunOutcome:
        entries = needed_entries(self.suite, only)
        devices = sorted({g for e in entries for g in self._gpus_used(e)})
        self.monitor = build_monitor(
            self.suite.energy, devices or None, self.store.trace_dir, simulate=self.simulate
        )
        apply_numerics(self.suite.numerics)  # declared, before any work (manifest: environment)
        for name, note in placement_notes(entries).items():
            self.console.print(f"[yellow]note: entry '{name}': {note}[/yellow]", highlight=False)
        with CtrlC(), self.monitor, RunProgress(self.console, self.monitor.live_power) as prog:
            self.progress = prog
            self._write_manifest()
            self._idle_baseline("before", devices)
            self._measure_peaks(entries)
            blocked: dict[str, str] = {}
            for i, e in enumerate(entries):
                interrupt.check()
                if i > 0:
                    self._cool_down(e)
                deps = ([e.inherit] if e.inherit else []) + e.uses
                bad = [d for d in deps if d in self.outcome.failed or d in blocked]
                if bad:
                    blocked[e.name] = f"depends on failed entry {', '.join(bad)}"
                    self.outcome.failed[e.name] = blocked[e.name]
                    continue
                try:
                    self.run_entry(e, entries[i + 1 :])
                except (DiskFullError, LinkInRunError):
                    raise  # nothing more can be saved: stop the run, finished records are intact
                except Exception as exc:  # noqa: BLE001 - one entry failing must not stop the run
                    self.outcome.failed[e.name] = f"{type(exc).__name__}: {exc}"
                    self._record_failure(e, exc)
                    prog.log(f"[red]entry '{e.name}' failed: {type(exc).__name__}: {exc}[/red]")
            if self.suite.energy.idle_after:
                test_hold("idle/after")
                self._idle_baseline("after")
            self._write_manifest(finished=True)
        write_seal(self.store.root)  # after the meters closed: their traces are complete
        return self.outcome

    def _gpus_used(self, e: Entry) -> set[int]:
        """GPUs an entry uses: its own, and the ranks' GPUs of a distributed train phase (so the
        idle baseline covers them)."""
        gpus = set(self.placements[e.name].gpus)
        if gpus and e.train is not None and e.train.distributed is not None:
            d = e.train.distributed
            gpus.update(range(min(gpus), min(gpus) + d.nproc_per_node * d.nnodes))
        return gpus

    def _cool_down(self, e: Entry) -> None:
        """Optionally wait for the devices to cool back to near idle before entry ``e``."""
        test_hold(f"cool-down/{e.name}")
        cfg = self.suite.energy.cooldown
        if not cfg.enabled or self.monitor is None:
            return
        if all(self.store.phase_done(e.name, p, self.hashes[e.name][p]) for p in PHASES):
            return
        self._phase_bar(f"cool-down before {e.name}", None)
        res = self.monitor.cool_down(cfg.tolerance_c, cfg.max_s)
        self.cooldowns[e.name] = res
        if res.get("reached") is False and self.progress is not None:
            self.progress.log(
                f"[yellow]cool-down before '{e.name}' gave up after {cfg.max_s:g} s[/yellow]"
            )

    def _record_failure(self, e: Entry, exc: BaseException) -> None:
        for phase in PHASES:
            if not self.store.phase_done(e.name, phase, self.hashes[e.name][phase]):
                self._record(
                    e,
                    phase,
                    "failed",
                    error=f"{type(exc).__name__}: {exc}",
                    traceback=traceback.format_exc(),
                )
                return

    def _idle_baseline(self, when: str, gpus: list[int] | None = None) -> None:
        """``before``: the cold and the active idle baselines (:mod:`energybench.run.idle`),
        or an earlier session's; ``after``: idle power after the run (recorded only)."""
        path = self.idle_path
        idle: dict[str, Any] = {}
        if path.exists() or path.is_symlink():
            try:
                idle = read_record(path, "idle")
            except RunFileError as exc:
                if path.is_dir():  # cannot be replaced by a file: the user must look at it
                    raise
                self._note(f"{exc}; measuring the idle baseline again")
        if when == "before" and restore(self.meter, idle):
            return
        seconds = self.suite.energy.idle_baseline_s
        self._phase_bar(f"idle baseline ({when})", None)
        if when == "before" and seconds > 0:
            idle.update(measure_baselines(self.meter, seconds, gpus or []))
        else:
            power = self.meter.measure_idle(seconds)
            idle[when] = {
                "seconds": seconds,
                "power_w": power,
                "temp_c": self.meter.idle_temp_c,
                "measured_unix_s": time.time(),
            }
        atomic_write_json(path, idle)

    def _measure_peaks(self, entries: list[Entry]) -> None:
        """The matrix-multiply peak of each serving device in the dtypes its entries serve in
        (:mod:`energybench.serve.peaks`), outside every window; the report puts each entry's
        FLOP/s against it. Recorded in the manifest (``peaks``: device label -> dtype -> FLOP/s)."""
        from energybench.serve.peaks import gemm_peak_flops, serving_dtype

        wanted: dict[str, tuple[torch.device, set[str]]] = {}
        for e in entries:
            if not e.serve or self._ranks_train(e, "train"):  # DDP: the parent keeps off its GPUs
                continue
            p = self.placements[e.name]
            dtype = serving_dtype(e)
            if dtype is not None:
                wanted.setdefault(p.label, (p.device, set()))[1].add(dtype)
        for label, (device, dtypes) in wanted.items():
            for dtype in sorted(dtypes):
                test_hold("peaks")
                try:  # a figure for the report, never a reason to stop the run
                    with device_scope(device):
                        flops = gemm_peak_flops(device, dtype)
                except Exception as exc:
                    self._note(f"{label}: {dtype} GEMM peak not measured ({type(exc).__name__})")
                    continue
                self.peaks.setdefault(label, {})[dtype] = flops
        if self.peaks:
            self._write_manifest()

    def _write_manifest(self, finished: bool = False) -> None:
        old = previous_manifest(self.store)
        gpus = sorted({g for p in self.placements.values() for g in p.gpus})
        extra: dict[str, Any] = {"peaks": self.peaks} if self.peaks else {}
        manifest = build_manifest(
            old,
            self.suite,
            suite_file=str(self.loaded.path),
            config_hash=self.loaded.config_hash,
            phase_hashes=self.hashes,
            environment=snapshot(self.simulate, gpus),
            meters=self.monitor.describe() if self.monitor else [],
            finished=finished,
            failed=self.outcome.failed,
            cooldowns={**old.get("cooldowns", {}), **self.cooldowns},
            simulate=self.simulate,
            placements={k: p.label for k, p in self.placements.items()},
            **extra,
        )
        self.store.write_manifest(manifest)


def run_suite(
    loaded: LoadedSuite,
    out_root: Path = Path("results"),
    resume: Path | None = None,
    only: list[str] | None = None,
    console: Console | None = None,
    simulate: str | None = None,
    on_run_dir: Callable[[Path], None] | None = None,
) -> RunOutcome:
    """Run (or resume) a suite; returns where the results are and what failed.

    ``simulate`` names a simulated-GPU profile (``energybench.meters.sim.profiles``): the models run
    on the CPU while simulated NVIDIA GPUs are measured through the real NVML code path.
    ``on_run_dir`` is called with the run folder once it exists and is locked (the CLI saves a
    crash report there if the run then stops on a bug).
    """
    console = console or Console()
    lock: RunLock | None = None
    if resume is not None:  # one writer per run folder: a second one stops here (exit 2)
        store = RunStore(Path(resume))
        if not store.exists():
            raise ResumeError(f"--resume {resume}: not a run directory (no manifest.json)")
        store.check_links()  # a link where the run writes: refused before anything is written
        store.read_manifest()  # damaged or of a later store version: refused, never rewritten
        lock = RunLock(store.root).acquire()
    try:
        labels = {k: p.label for k, p in check_devices(loaded.suite, only, simulate).items()}
        tasks = check_datasets(loaded.suite, only)  # before a run folder exists, too
        check_weights(loaded.suite, only, loaded.path.parent)
        if resume is not None:
            require_resumable(store, loaded.suite, phase_hashes(loaded.suite, labels), resume)
        else:
            store = RunStore.create(out_root, loaded.suite.name, loaded.config_hash)
            lock = RunLock(store.root).acquire()
        if on_run_dir is not None:
            on_run_dir(store.root)
        if lock is not None and lock.note:  # the lock is held here (taken above)
            from rich.markup import escape

            console.print(
                f"[yellow]note: {escape(lock.note)}[/yellow]", highlight=False, soft_wrap=True
            )
        return Runner(loaded, store, console, tasks, simulate=simulate).run(only)
    finally:
        if lock is not None:
            lock.release()
