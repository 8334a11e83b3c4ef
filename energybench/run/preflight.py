"""The checks a run makes before any work and before its run folder exists, so that bad input
exits 2 and leaves nothing behind: the entries ``--only`` needs, their datasets, the meters,
and that an ONNX Runtime entry on a GPU really runs on it (:func:`check_backends`).
:func:`host_report` is the same device check for ``energybench validate``."""

from __future__ import annotations

from pathlib import Path

import torch

from energybench.data import DATASETS
from energybench.data.clipset import DatasetConfigError
from energybench.errors import SetupError
from energybench.meters.factory import build_monitor
from energybench.run.placement import Placement, place, placements
from energybench.suite.load import config_hash, dependency_order
from energybench.suite.schema import EnergySettings, Entry, Suite
from energybench.tasks.base import Task
from energybench.tasks.select import make_task


def needed_entries(suite: Suite, only: list[str] | None) -> list[Entry]:
    """The entries to run, in dependency order: all, or those ``--only`` names and what they
    depend on (``SetupError`` for a name that is not an entry)."""
    order = dependency_order(suite)
    if not only:
        return order
    by_name = {e.name: e for e in suite.entries}
    unknown = [o for o in only if o not in by_name]
    if unknown:
        raise SetupError(
            f"--only: no entry named {', '.join(unknown)} (entries: {', '.join(by_name)})"
        )
    keep: set[str] = set()

    def add(name: str) -> None:
        if name in keep:
            return
        keep.add(name)
        e = by_name[name]
        for dep in ([e.inherit] if e.inherit else []) + e.uses + e.variants():
            add(dep)

    for o in only:
        add(o)
    return [e for e in order if e.name in keep]


def task_for(suite: Suite, e: Entry, cache: dict[str, Task]) -> Task:
    """The task (dataset adaptor) of entry ``e``, built once per distinct dataset spec.

    A dataset that rejects its parameters raises ``ValueError`` naming the entry (exit 2).
    """
    entry = e
    while entry.dataset is None and entry.inherit:
        entry = suite.entry(entry.inherit)
    spec = entry.dataset
    if spec is None:
        raise SetupError(f"entry '{e.name}' has no dataset (give one, or one in defaults)")
    key = config_hash(spec.model_dump(mode="json"))
    if key not in cache:
        try:
            cache[key] = make_task(DATASETS.create(spec.name, **spec.params))
        except DatasetConfigError as exc:
            raise SetupError(f"entry '{e.name}': dataset '{spec.name}': {exc}") from None
    return cache[key]


def check_meters(settings: EnergySettings, gpus: list[int], simulate: str | None) -> None:
    """Build the meters once and release them: a meter named in ``energy.meters`` that cannot
    work here raises :class:`MeterUnavailableError` (bad input) before any work or folder."""
    build_monitor(
        settings, gpus or None, None, simulate=simulate, background=False, probe_s=0
    ).close()


def check_datasets(suite: Suite, only: list[str] | None) -> dict[str, Task]:
    """Build the task of every entry to run, so bad dataset parameters exit 2 before any work;
    returns the cache :func:`task_for` filled, for the runner to reuse."""
    tasks: dict[str, Task] = {}
    for e in needed_entries(suite, only):
        task_for(suite, e, tasks)
    return tasks


def check_weights(suite: Suite, only: list[str] | None, base: Path | None) -> None:
    """Every declared pretrained weight file is in its local cache with its pinned hash
    (:class:`~energybench.models.weights.WeightsError`, exit 2, before any work)."""
    from energybench.models.weights import check_weights as check_file

    for e in needed_entries(suite, only):
        if e.model.weights is not None:
            check_file(e.model.weights, e.model.name, base)


def check_devices(
    suite: Suite, only: list[str] | None, simulate: str | None
) -> dict[str, Placement]:
    """Every entry's :class:`Placement`, after probing the meters of the GPUs the entries to
    run use (a device or a meter that cannot work here is bad input, before any folder)."""
    placed = placements(suite, simulate)
    gpus = sorted({g for e in needed_entries(suite, only) for g in placed[e.name].gpus})
    check_meters(suite.energy, gpus, simulate)
    check_backends(needed_entries(suite, only), placed)
    return placed


def backend_device_problem(e: Entry, placement: Placement) -> str | None:
    """Why ``e``'s backend cannot run on its placement's GPU here, or None (ONNX Runtime: the
    GPU build installed and its GPU provider loading on a probe session)."""
    if e.backend.name != "onnxruntime" or placement.device.type != "cuda":
        return None
    from energybench.serve.backends.ort import gpu_session_problem

    return gpu_session_problem(e.backend, placement.device)


def check_backends(entries: list[Entry], placed: dict[str, Placement]) -> None:
    """:class:`SetupError` (exit 2) for the first entry whose backend would not run on its GPU
    (never a silent CPU run while the GPU is charged)."""
    for e in entries:
        why = backend_device_problem(e, placed[e.name])
        if why:
            raise SetupError(f"entry '{e.name}': {why}")


def host_report(suite: Suite, simulate: str | None) -> tuple[list[str], list[str]]:
    """(errors, notes) about running ``suite`` on this host (or the ``simulate`` profile): each
    entry's device, and whether its backend runs there. Without ``simulate`` on a host with no
    CUDA GPU, GPU entries are noted (checked on a GPU host or with ``--simulate``)."""
    from energybench.suite.devices import effective_device, placement_notes

    errors: list[str] = []
    notes = [f"entry '{k}': {v}" for k, v in placement_notes(suite.entries).items()]
    count = 0
    if simulate:
        from energybench.meters.sim.profiles import simulated_gpu_count

        count = simulated_gpu_count(simulate)
    no_gpu = []
    for e in suite.entries:
        try:
            p = place(effective_device(e), simulate, count)
        except (ValueError, RuntimeError) as exc:
            if not simulate and effective_device(e) != "cpu" and "no CUDA GPU" in str(exc):
                no_gpu.append(e.name)
            else:
                errors.append(f"entry '{e.name}': {exc}")
            continue
        why = backend_device_problem(e, p)
        if why:
            errors.append(f"entry '{e.name}': {why}")
        elif simulate and p.gpus and e.backend.name == "onnxruntime":
            notes.extend(_simulated_ort_note(e))
    if no_gpu:
        notes.append(
            f"this host has no CUDA GPU: entries {', '.join(no_gpu)} (on cuda) are checked on "
            "a GPU host, or here with --simulate PROFILE"
        )
    return errors, notes


def _simulated_ort_note(e: Entry) -> list[str]:
    """A note when a simulated GPU entry on ONNX Runtime would need the GPU build for real."""
    import onnxruntime as ort

    from energybench.serve.backends.ort import INSTALL_GPU, provider_names

    wanted = provider_names(e.backend, torch.device("cuda"))
    missing = [p for p in wanted if p not in ort.get_available_providers()]
    if not missing:
        return []
    return [
        f"entry '{e.name}': simulated, it runs on ONNX Runtime's CPU provider; on a real GPU it "
        f"needs {', '.join(missing)} (install: {INSTALL_GPU})"
    ]
