"""The one registry class: a kind, a base type, no duplicates, lazy entries, origins, order; and
every plug-in table is an instance of it."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from energybench.data import DATASETS
from energybench.meters.plugins import METERS
from energybench.models import MODELS
from energybench.plugins.registry import CURRENT_ORIGIN, Registry
from energybench.records.types import RESULT_KINDS, ScenarioResult, register_result
from energybench.suite.backends import BACKENDS, Backend, register
from energybench.suite.methods import COMPRESS_METHODS
from energybench.suite.policies import POLICIES
from energybench.suite.scenarios import SERVE_SCENARIOS
from energybench.tasks.registry import TASKS


@dataclass(frozen=True)
class Thing:
    name: str
    help: str = ""


def test_every_table_is_one_registry_class() -> None:
    tables = [MODELS, DATASETS, TASKS, COMPRESS_METHODS, SERVE_SCENARIOS, BACKENDS, POLICIES]
    tables += [METERS, RESULT_KINDS]
    assert all(isinstance(t, Registry) for t in tables)
    assert len({t.kind for t in tables}) == len(tables)


def test_a_name_registered_twice_is_an_error_naming_both_origins() -> None:
    reg: Registry[Thing] = Registry("thing", Thing)
    reg.register(Thing("a"))
    token = CURRENT_ORIGIN.set("plug-in toy")
    try:
        with pytest.raises(ValueError, match=r"'a' is registered twice \(first by energybench, "
                           r"then by plug-in toy\)"):  # fmt: skip
            reg.register(Thing("a"))
        reg.register(Thing("b", help="the b"))
    finally:
        CURRENT_ORIGIN.reset(token)
    assert reg.origin("b") == "plug-in toy" and reg.help("b") == "the b"
    reg.unregister("b")
    assert "b" not in reg and reg.ordered() == ["a"]


def test_entries_must_be_of_the_base_type_even_when_lazy() -> None:
    reg: Registry[Thing] = Registry("thing", Thing)
    with pytest.raises(TypeError, match="thing 'x' must be a Thing, not int"):
        reg.register("x", 3)  # type: ignore[arg-type]
    reg.register("lazy", "collections:OrderedDict")  # not imported, not checked yet
    with pytest.raises(TypeError, match="thing 'lazy' must be a Thing"):
        reg.get("lazy")
    classes: Registry[type[ScenarioResult]] = Registry("result", ScenarioResult)
    with pytest.raises(TypeError, match="must be a ScenarioResult"):
        classes.register("dict", dict)  # type: ignore[arg-type]
    factories: Registry[Callable[..., int]] = Registry("factory", Callable)
    factories.register("one", lambda: 1)
    assert factories.create("one") == 1


def test_lazy_entries_are_imported_only_when_used() -> None:
    reg: Registry[Callable[..., object]] = Registry("factory", Callable)
    reg.register("wave", "wave:open")
    sys.modules.pop("wave", None)
    assert "wave" in reg and "wave" not in sys.modules
    assert callable(reg.get("wave")) and "wave" in sys.modules


def test_values_keep_registration_order_and_names_are_sorted() -> None:
    reg: Registry[Thing] = Registry("thing", Thing)
    for n in ("b", "c", "a"):
        reg.register(Thing(n))
    assert reg.ordered() == ["b", "c", "a"] and reg.names() == ["a", "b", "c"]
    assert [t.name for t in reg.values()] == ["b", "c", "a"]


def test_backends_refuse_duplicates_and_non_backends() -> None:
    with pytest.raises(ValueError, match="backend 'eager' is registered twice"):
        register(Backend("eager", "x:y", "again"))
    with pytest.raises(TypeError, match="must be a Backend"):
        BACKENDS.register("bad", Thing("bad"))  # type: ignore[arg-type]
    assert BACKENDS.ordered() == ["eager", "compile", "onnxruntime", "openvino"]


def test_result_kinds_accept_the_same_class_again_but_not_another() -> None:
    register_result("stream", RESULT_KINDS.get("stream"))  # idempotent
    with pytest.raises(ValueError, match="registered twice"):
        register_result("stream", RESULT_KINDS.get("load"))
