"""energybench: full-cycle (train + compress + serve) energy benchmark for vision models.

The public surface (stable; everything else may change between releases)::

    measure, Run, MonitorConflictError   # measure your own code (energybench.api)
    load_suite, run_suite                # run a declarative suite
    load_run                             # read a run folder into typed records
    UserError                            # what every error about a user's input subclasses
"""

from __future__ import annotations

from typing import TYPE_CHECKING as _TYPE_CHECKING
from typing import Any as _Any

from energybench.version import __version__

__all__ = [
    "MonitorConflictError",
    "Run",
    "UserError",
    "__version__",
    "load_run",
    "load_suite",
    "measure",
    "run_suite",
]

# Lazy: ``import energybench`` stays cheap (no torch) until a name is used.
_LAZY = {
    "measure": "energybench.api",
    "Run": "energybench.api",
    "MonitorConflictError": "energybench.api",
    "UserError": "energybench.errors",
    "load_suite": "energybench.suite",
    "run_suite": "energybench.run.runner",
    "load_run": "energybench.plugins.entrypoints",
}

if _TYPE_CHECKING:
    from energybench.api import MonitorConflictError, Run, measure
    from energybench.errors import UserError
    from energybench.plugins.entrypoints import load_run
    from energybench.run.runner import run_suite
    from energybench.suite import load_suite


def __getattr__(name: str) -> _Any:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'energybench' has no attribute {name!r}")


def __dir__() -> list[str]:
    """The public names only (submodules and helpers are not the package's surface)."""
    return sorted(__all__)


del annotations  # the ``from __future__`` feature object is not a public name
