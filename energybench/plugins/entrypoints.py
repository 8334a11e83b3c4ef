"""Plug-ins from installed packages: the ``energybench.plugins`` entry-point group.

A package adds models, datasets, compression methods, serving scenarios, backends, policies,
meters or task types by declaring, in its ``pyproject.toml``::

    [project.entry-points."energybench.plugins"]
    toy = "energybench_toy:register"

``register(host)`` receives a :class:`PluginHost` and registers into its tables, as built-ins do.
A suite uses a plug-in's names only when it declares the plug-in (``plugins: [toy]``): loading a
suite imports no code that the suite does not name, and nothing that is not installed. Every
registry remembers who registered each name (:meth:`Registry.origin`), which ``energybench
models`` and ``meters`` show. This module must not import the runtime at import time.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any

from energybench.errors import UserError
from energybench.plugins.registry import CURRENT_ORIGIN

if TYPE_CHECKING:
    from energybench.records.store import RunData

GROUP = "energybench.plugins"

_loaded: dict[str, str] = {}  # plug-in name -> its distribution ("name version")
_lock = threading.RLock()


class PluginError(UserError, ValueError):
    """A declared plug-in that is not installed, or whose ``register`` failed."""


@dataclass(frozen=True)
class PluginHost:
    """The tables a plug-in registers into (the same objects built-ins use)."""

    models: Any
    datasets: Any
    methods: Any
    scenarios: Any
    policies: Any
    meters: Any
    backends: Any = None
    tasks: Any = None

    @staticmethod
    def register_backend(backend: Any) -> Any:
        """Add a serving backend (an :class:`energybench.suite.backends.Backend`)."""
        from energybench.suite.backends import register

        return register(backend)


def _host() -> PluginHost:
    from energybench.data import DATASETS
    from energybench.meters.plugins import METERS
    from energybench.models import MODELS
    from energybench.suite.backends import BACKENDS
    from energybench.suite.methods import COMPRESS_METHODS
    from energybench.suite.policies import POLICIES
    from energybench.suite.scenarios import SERVE_SCENARIOS
    from energybench.tasks.registry import TASKS

    return PluginHost(
        MODELS, DATASETS, COMPRESS_METHODS, SERVE_SCENARIOS, POLICIES, METERS, BACKENDS, TASKS
    )


def installed() -> dict[str, EntryPoint]:
    """Installed plug-ins by name (one entry point each in the ``energybench.plugins`` group)."""
    return {ep.name: ep for ep in entry_points(group=GROUP)}


def _dist(ep: EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    return f"{dist.name} {dist.version}" if dist is not None else ep.value


def load_plugins(names: list[str] | tuple[str, ...]) -> dict[str, str]:
    """Load the declared plug-ins (once per process); returns name -> distribution.

    Raises :class:`PluginError` for a plug-in that is not installed (listing those that are,
    and how to install one) or whose ``register`` raised."""
    with _lock:
        available = installed()
        for name in names:
            if name in _loaded:
                continue
            ep = available.get(name)
            if ep is None:
                known = ", ".join(sorted(available)) or "none"
                raise PluginError(
                    f"plug-in '{name}' is not installed (installed energybench plug-ins: "
                    f"{known}); install the package that provides it, e.g. `pip install "
                    f"<package>`, whose entry point group is '{GROUP}'"
                )
            token = CURRENT_ORIGIN.set(f"plug-in {name}")
            try:
                register = ep.load()
                register(_host())
            except PluginError:
                raise
            except Exception as exc:
                raise PluginError(
                    f"plug-in '{name}' ({_dist(ep)}) failed to register: "
                    f"{type(exc).__name__}: {exc}"
                ) from exc
            finally:
                CURRENT_ORIGIN.reset(token)
            _loaded[name] = _dist(ep)
        return {n: _loaded[n] for n in names}


def load_all() -> dict[str, str]:
    """Load every installed plug-in (for listings such as ``energybench models``)."""
    return load_plugins(sorted(installed()))


def undeclared(declared: list[str] | tuple[str, ...]) -> list[str]:
    """Installed plug-ins a suite does not declare (named in errors; none is loaded)."""
    return sorted(set(installed()) - set(declared))


def load_run(run_dir: str | Path) -> RunData:
    """Read a run folder (:func:`energybench.records.store.load_run`) after loading the
    plug-ins its suite declared, so their result kinds parse; a declared plug-in that is not
    installed is a :class:`~energybench.records.check.RunFileError` naming the manifest."""
    from energybench.records import store

    st = store.RunStore(Path(run_dir))
    if st.manifest_path.is_file() and not st.manifest_path.is_symlink():
        suite = st.read_manifest().get("suite")
        names = suite.get("plugins") if isinstance(suite, dict) else None
        if isinstance(names, list) and names:
            try:
                load_plugins([str(n) for n in names])
            except PluginError as exc:
                raise store.RunFileError(
                    st.manifest_path, f"the run's suite declares {exc}"
                ) from None
    return store.load_run(run_dir)
