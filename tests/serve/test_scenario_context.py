"""Scenarios get other entries' models through their :class:`ScenarioContext` (as ``adaptive``
does): the runner calls every scenario the same way, no special case. ``pick`` is the older
plug-in form kept for compatibility: a plain function ``fn(settings, ctx)`` returning a dict."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import pytest
import torch
from pydantic import Field

from energybench.meters.base import EnergyMonitor
from energybench.records.types import RESULT_KINDS, Group, ScenarioResult
from energybench.serve import adaptive
from energybench.serve.base import Scenario
from energybench.serve.scenarios import ScenarioContext, run_scenario
from energybench.suite.scenarios import SERVE_SCENARIOS, ScenarioSettings
from energybench.suite.schema import EnergySettings

RUNNER = Path(__file__).resolve().parents[2] / "energybench" / "run" / "runner.py"


class Pick(ScenarioSettings):
    """Serves nothing: reports which variant models it was given."""

    scenario: Literal["pick"]
    variants: list[str] = Field(default_factory=list)


class PickResult(ScenarioResult):
    """What :func:`run_pick` returns (it measures nothing: no groups)."""

    scenario: Literal["pick"]
    got: dict[str, int]
    window: str

    def groups(self) -> dict[str, Group]:
        return {}


def run_pick(sc: Pick, ctx: ScenarioContext) -> dict[str, Any]:
    models = {v: ctx.variant(v) for v in sc.variants}
    return {"scenario": "pick", "got": {v: m.out_features for v, m in models.items()},
            "window": ctx.window}  # fmt: skip


@pytest.fixture
def pick() -> Iterator[None]:
    SERVE_SCENARIOS.register("pick", run_pick, settings=Pick, result=PickResult)
    yield
    SERVE_SCENARIOS.unregister("pick")


def test_a_context_scenario_gets_variants_through_the_context(
    pick: None, fake_monitor: EnergyMonitor
) -> None:
    loaded: list[str] = []

    def variant(name: str) -> torch.nn.Module:
        loaded.append(name)
        return torch.nn.Linear(1, len(name))

    sc = Pick(scenario="pick", variants=["a", "bbb"])
    ctx = ScenarioContext(
        torch.nn.Identity(), None, torch.device("cpu"), fake_monitor,  # type: ignore[arg-type]
        EnergySettings(), "e/serve/pick", variant=variant,
    )  # fmt: skip
    result = run_scenario(sc, ctx)
    assert isinstance(result, PickResult)  # the plug-in's plain dict, typed by its kind
    rec = result.to_json()
    assert rec["got"] == {"a": 1, "bbb": 3} and loaded == ["a", "bbb"]
    assert rec["window"] == "e/serve/pick" and rec["compile"] == "none"


def test_a_scenario_without_variants_is_told_so(pick: None, fake_monitor: EnergyMonitor) -> None:
    sc = Pick(scenario="pick", variants=["a"])
    with pytest.raises(LookupError, match="no variant 'a'"):
        run_scenario(sc, ScenarioContext(torch.nn.Identity(), None, torch.device("cpu"),  # type: ignore[arg-type]
                                         fake_monitor, EnergySettings(), "w"))  # fmt: skip


def test_adaptive_is_registered_like_any_other_and_the_runner_has_no_special_case() -> None:
    assert SERVE_SCENARIOS.get("adaptive") is adaptive.AdaptiveScenario
    for name in ("throughput", "stream", "load", "adaptive"):  # every built-in is a class whose
        cls = SERVE_SCENARIOS.get(name)  # types are the ones the schema registered
        assert issubclass(cls, Scenario) and cls.name == name
        assert cls.settings_type is SERVE_SCENARIOS.settings(name)
        assert cls.result_type is RESULT_KINDS.get(name)
    serve = next(
        n for n in ast.walk(ast.parse(RUNNER.read_text(encoding="utf-8")))
        if isinstance(n, ast.FunctionDef) and n.name == "_serve"
    )  # fmt: skip
    assert "Adaptive" not in ast.unparse(serve) and "run_adaptive" not in ast.unparse(serve)
