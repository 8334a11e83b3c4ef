"""The one manifest builder: what ``manifest.json`` holds, for in-process runs
(:mod:`energybench.run.runner`), executor runs (:mod:`energybench.run.executors`) and the Python
API's :class:`energybench.api.Run`.

Each writer supplies what it knows (hashes, environment, meters, placements); the version
stamps, the creation time kept across rewrites and the resume count are set here alone.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from energybench.records.store import STORE_VERSION, RunStore
from energybench.suite.schema import SCHEMA_VERSION, Suite
from energybench.version import __version__


def build_manifest(
    old: Mapping[str, Any],
    suite: Suite,
    *,
    suite_file: str | None,
    config_hash: str,
    phase_hashes: Mapping[str, Any],
    environment: Mapping[str, Any],
    meters: list[Any],
    finished: bool,
    failed: Mapping[str, str],
    cooldowns: Mapping[str, Any],
    simulate: str | None,
    placements: Mapping[str, str],
    resumes: int | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """The manifest of a run whose previous manifest is ``old`` (``{}`` for a new run).

    ``created_unix_s`` is kept from ``old``; ``resumes`` counts the unfinished rewrites (the
    first write is 0) unless given; ``extra`` adds writer-specific keys (``executor``,
    ``source``)."""
    now = time.time()
    if resumes is None:
        resumes = int(old.get("resumes", -1)) + 1 if not finished else int(old.get("resumes", 0))
    return {
        "schema_version": SCHEMA_VERSION,
        "store_version": STORE_VERSION,
        "energybench_version": __version__,
        "suite_file": suite_file,
        "suite": suite.model_dump(mode="json"),
        "config_hash": config_hash,
        "phase_hashes": dict(phase_hashes),
        "environment": dict(environment),
        "meters": list(meters),
        "created_unix_s": old.get("created_unix_s", now),
        "updated_unix_s": now,
        "finished": finished,
        "failed": dict(failed),
        "cooldowns": dict(cooldowns),
        "simulate": simulate,
        "placements": dict(placements),
        "resumes": resumes,
        **extra,
    }


def previous_manifest(store: RunStore) -> dict[str, Any]:
    """The run's manifest so far (checked), ``{}`` before the first write."""
    return store.read_manifest() if store.exists() else {}
