"""The checks a run makes before any work and before its run folder exists, so that bad input
exits 2 and leaves nothing behind: the entries ``--only`` needs, their datasets, the meters."""

from __future__ import annotations

from pathlib import Path

from energybench.data import DATASETS
from energybench.data.clipset import DatasetConfigError
from energybench.errors import SetupError
from energybench.meters.factory import build_monitor
from energybench.run.placement import Placement, placements
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
    return placed
