"""The serving-scenario contract: a scenario is a class with typed settings, a typed result and
``run(ctx)``, where the context holds everything the run provides (the served model, the task,
the device, the monitor, the energy settings, the window name, other entries' models).

A plug-in scenario is one class and one registry line::

    class BurstScenario(Scenario[Burst, BurstResult]):
        \"\"\"``frames`` batch-1 frames back to back in one window per trial.\"\"\"

        name = "burst"

        def run(self, ctx: ScenarioContext) -> BurstResult:
            ...  # self.settings is a Burst; measure in ctx.monitor's windows

    SERVE_SCENARIOS.register(BurstScenario)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar, get_args, get_origin

import torch
from torch import nn

from energybench.meters.base import EnergyMonitor
from energybench.records.types import FlatResult, ScenarioResult
from energybench.suite.scenarios import ScenarioSettings
from energybench.suite.schema import EnergySettings
from energybench.tasks.base import Task


def _no_variants(name: str) -> nn.Module:
    raise LookupError(f"this scenario has no variant '{name}' (only adaptive serving has any)")


@dataclass(frozen=True)
class ScenarioContext:
    """What a serving scenario gets besides its settings: the served model, the task, the
    device, the run's monitor and energy settings, the measurement window's name, and
    ``variant(name)``: another entry's final model on its own backend (the ``adaptive``
    scenario's variants, loaded when asked)."""

    model: nn.Module
    task: Task
    device: torch.device
    monitor: EnergyMonitor
    energy: EnergySettings
    window: str
    variant: Callable[[str], nn.Module] = _no_variants


S = TypeVar("S", bound=ScenarioSettings)
R = TypeVar("R", bound=ScenarioResult)


class Scenario(Generic[S, R]):
    """A serving scenario: ``Scenario[Settings, Result]`` with a ``name`` (the settings' tag);
    ``settings_type`` and ``result_type`` are read from the two type arguments (the result
    defaults to :class:`~energybench.records.types.FlatResult`: statistics at the record's top
    level). :meth:`run` measures in ``ctx.monitor``'s windows and returns the typed result."""

    name: ClassVar[str]
    settings_type: ClassVar[type[ScenarioSettings]] = ScenarioSettings
    result_type: ClassVar[type[ScenarioResult]] = FlatResult

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for base in getattr(cls, "__orig_bases__", ()):
            if get_origin(base) is Scenario:
                settings, result = get_args(base)
                if isinstance(settings, type) and "settings_type" not in cls.__dict__:
                    cls.settings_type = settings
                if isinstance(result, type) and "result_type" not in cls.__dict__:
                    cls.result_type = result

    def __init__(self, settings: S) -> None:
        self.settings = settings

    def run(self, ctx: ScenarioContext) -> R:
        """Serve ``ctx.model`` as the settings say; the typed result."""
        raise NotImplementedError
