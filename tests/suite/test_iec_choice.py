"""Which scenario gives each entry's IEC (``suite.ranking``): like with like, named, by batch."""

from __future__ import annotations

from typing import Any

from energybench.suite.ranking import iec_choices, iec_reference, unrankable
from energybench.suite.schema import Suite


def suite(metric: dict[str, Any], *entries: dict[str, Any]) -> Suite:
    return Suite.model_validate({"name": "s", "metric": metric, "entries": list(entries)})


def e(name: str, *serve: dict[str, Any], rank: bool = True) -> dict[str, Any]:
    return {"name": name, "model": {"name": "bicubic"}, "serve": list(serve), "rank": rank}


TP = {"scenario": "throughput", "batch_sizes": [4, 1]}
ST = {"scenario": "stream", "name": "live"}


def test_without_iec_scenario_the_first_served_scenario_and_its_first_batch() -> None:
    s = suite({}, e("nothing"), e("a", TP, ST), e("b", ST))
    ref = iec_reference(s)
    assert ref is not None and (ref.kind, ref.batch_size, ref.name) == ("throughput", 4, None)
    assert ref.describe() == "throughput scenario at batch size 4"
    assert ref.basis_label().startswith("closed-loop J/item")
    ch = iec_choices(s)
    assert (ch["a"].scenario, ch["a"].batch_size, ch["a"].reason) == ("throughput", 4, None)
    assert ch["b"].scenario is None and "no throughput scenario at batch size 4" in ch["b"].reason
    assert "its scenarios: live (stream)" in ch["b"].reason
    assert "its scenarios: none" in ch["nothing"].reason
    assert set(unrankable(s)) == {"nothing", "b"}


def test_a_named_scenario_and_batch_size() -> None:
    s = suite(
        {"iec_scenario": "throughput", "iec_batch_size": 1},
        e("a", ST, TP),
        e("b", {"scenario": "throughput", "batch_sizes": [2]}),
        e("c", {"scenario": "throughput"}, rank=False),
    )
    ref = iec_reference(s)
    assert ref is not None
    assert (ref.kind, ref.batch_size, ref.name) == ("throughput", 1, "throughput")
    assert ref.describe() == "throughput scenario 'throughput' at batch size 1"
    ch = iec_choices(s)
    assert (ch["a"].scenario, ch["a"].batch_size) == ("throughput", 1)
    assert ch["b"].scenario is None  # batch 2 only
    assert (ch["c"].scenario, ch["c"].batch_size) == ("throughput", 1)  # batch sizes default [1]
    assert unrankable(s) == {"b": ch["b"].reason}  # c has rank: false


def test_a_stream_is_batch_one_and_a_missing_name_is_said() -> None:
    s = suite({"iec_scenario": "live"}, e("a", ST), e("b", {"scenario": "stream"}))
    ref = iec_reference(s)
    assert ref is not None and (ref.kind, ref.batch_size) == ("stream", 1)
    assert ref.basis_label().startswith("J/frame of a paced stream")
    ch = iec_choices(s)
    assert ch["a"].scenario == "live" and ch["b"].scenario is None  # another stream's name
    missing = suite({"iec_scenario": "nope"}, e("a", ST))
    assert iec_reference(missing) is None
    assert iec_choices(missing)["a"].reason == (
        "IEC not defined: no entry has a scenario named 'nope'"
    )
    assert iec_choices(suite({}, e("a")))["a"].reason == "IEC not defined: no entry serves"
