"""What a finished phase depends on (its configuration hash and the phases it is built on), and
whether ``--resume`` may reuse a run folder's finished phases under the suite as it is now."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from energybench.errors import UserError
from energybench.records.check import RunFileError
from energybench.records.store import PHASES, RunStore
from energybench.suite.load import config_hash, dependency_order
from energybench.suite.schema import Entry, Suite


class ResumeError(UserError, ValueError):
    """``--resume`` on a run whose finished phases the suite now contradicts (exit 2)."""


Hashes = dict[str, dict[str, str]]  # entry -> phase -> hash


def _train_hash(e: Entry, out: Hashes, dataset: Any, devices: Any) -> str:
    """The train phase's hash: an inheriting entry's is its base's."""
    if e.inherit:
        return out[e.inherit]["train"]
    return config_hash(
        {
            "model": e.model.model_dump(mode="json"),
            "dataset": dataset,
            "train": e.train.model_dump(mode="json") if e.train else None,
            "uses": {u: out[u]["train"] for u in e.uses},
            "device": devices,
        }
    )


def _serve_deps(
    suite: Suite, e: Entry, out: Hashes, compress: str, dataset: Any, devices: Any
) -> dict[str, Any]:
    """What the serve phase depends on: the model, data, scenarios, energy settings, how the
    model is served, and an adaptive scenario's variants (their final models)."""
    deps: dict[str, Any] = {
        "device": devices,
        "compress": compress,
        "dataset": dataset,
        "serve": [s.model_dump(mode="json") for s in e.serve],
        "energy": suite.energy.model_dump(mode="json"),
    }
    if not e.backend.is_default():  # how the model is served (and evaluated)
        deps["backend"] = e.backend.model_dump(mode="json")
    if e.variants():  # an adaptive scenario serves these entries' final models
        deps["variants"] = {
            v: out[v]["compress"]
            if suite.entry(v).backend.is_default()
            else [out[v]["compress"], suite.entry(v).backend.model_dump(mode="json")]
            for v in e.variants()
        }
    return deps


def _evaluate_hash(
    e: Entry, out: Hashes, serve_deps: dict[str, Any], serve: str, dataset: Any, devices: Any
) -> str:
    """The evaluate phase's hash; an adaptive entry is scored on the frames it served: its
    serve phase and its variants' evaluations."""
    return config_hash(
        {
            "device": devices,
            "compress": serve_deps["compress"],
            "dataset": dataset,
            "evaluate": e.evaluate.model_dump(mode="json"),
            **({} if e.backend.is_default() else {"backend": serve_deps["backend"]}),
            **(
                {"served": serve, "variants": {v: out[v]["evaluate"] for v in e.variants()}}
                if e.variants()
                else {}
            ),
        }
    )


def phase_hashes(suite: Suite, placements: dict[str, str] | None = None) -> Hashes:
    """Per entry and phase, a hash of everything that phase's result depends on.

    ``placements`` maps entry names to their device-set label (:attr:`Placement.label`); it is
    part of every phase's hash.
    """
    placements = placements or {}
    out: Hashes = {}
    for e in dependency_order(suite):
        devices: Any = placements.get(e.name, e.device)
        if suite.numerics is not None:  # TF32 & co change results (unset: old hashes kept)
            devices = [devices, suite.numerics.model_dump(mode="json")]
        dataset = e.dataset.model_dump(mode="json") if e.dataset else None
        train = _train_hash(e, out, dataset, devices)
        compress = config_hash(
            {
                "train": train,
                "compress": [c.model_dump(mode="json") for c in e.compress],
                "device": devices,
            }
        )
        serve_deps = _serve_deps(suite, e, out, compress, dataset, devices)
        serve = config_hash(serve_deps)
        evaluate = _evaluate_hash(e, out, serve_deps, serve, dataset, devices)
        out[e.name] = {"train": train, "compress": compress, "serve": serve, "evaluate": evaluate}
    return out


def upstream_phases(e: Entry, phase: str) -> list[str]:
    """The ``entry/phase`` results that ``phase`` of ``e`` is built on: when one of them is
    redone, this phase is redone too (its model or numbers came from the old result)."""
    if phase == "train":
        return [f"{u}/train" for u in ([e.inherit] if e.inherit else []) + list(e.uses)]
    if phase == "compress":
        return [f"{e.name}/train"]
    if phase == "serve":
        return [f"{e.name}/compress"] + [f"{v}/compress" for v in e.variants()]
    if e.variants():  # scored on the frames its adaptive scenario served
        return [f"{e.name}/compress", f"{e.name}/serve"] + [f"{v}/evaluate" for v in e.variants()]
    return [f"{e.name}/compress"]


def require_resumable(
    store: RunStore, suite: Suite, hashes: dict[str, dict[str, str]], resume: Path | str
) -> None:
    """Raise :class:`ResumeError` when the suite changed so that finished phases would differ."""
    problems = check_resume(store, suite, hashes)
    if problems:
        raise ResumeError(
            f"cannot resume {resume}: the suite changed in a way that invalidates finished "
            "phases:\n  " + "\n  ".join(problems) + "\nStart a new run (drop --resume) or "
            "restore the suite as it was."
        )


def check_resume(store: RunStore, suite: Suite, hashes: dict[str, dict[str, str]]) -> list[str]:
    """Finished phases that the new suite would produce differently."""
    old = store.read_manifest()
    problems = []
    if old.get("suite", {}).get("name") != suite.name:
        problems.append(
            f"the run is of suite '{old.get('suite', {}).get('name')}', not '{suite.name}'"
        )
    for e in suite.entries:
        for phase in PHASES:
            try:
                rec = store.read_phase(e.name, phase)
            except RunFileError as exc:
                if exc.path.is_dir():  # a folder in the record's place: cannot be redone
                    raise
                continue  # damaged: reported and redone by the runner
            if (
                rec
                and rec.get("status") in ("done", "skipped")
                and rec.get("config_hash") != hashes[e.name][phase]
            ):
                problems.append(
                    f"entry '{e.name}' phase '{phase}' finished with a different configuration"
                )
    return problems
