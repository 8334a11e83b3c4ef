"""The documented limits of the suite YAML reader, at their boundaries, and what stays allowed."""

from __future__ import annotations

import pytest

from energybench.suite.yamlsafe import MAX_DEPTH, MAX_NODES, YamlLimitError, load_bounded


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def test_nesting_up_to_the_limit_is_read_and_one_more_is_refused() -> None:
    data, _ = load_bounded(nested(MAX_DEPTH))
    for _ in range(MAX_DEPTH - 1):
        (data,) = data
    assert data == []
    with pytest.raises(YamlLimitError, match=f"deeper than {MAX_DEPTH}") as info:
        load_bounded(nested(MAX_DEPTH + 1))
    assert (info.value.line, info.value.column) == (1, MAX_DEPTH + 1)


def test_values_are_counted_after_alias_expansion() -> None:
    n = MAX_NODES // 2 - 3  # mapping, key a, list (n + 1), key b, *a (n + 1): 49,999 values
    ok = "a: &a [" + ",".join(["1"] * n) + "]\nb: *a\n"
    data, _ = load_bounded(ok)
    assert data["a"] is data["b"] and len(data["b"]) == n
    with pytest.raises(YamlLimitError, match="alias '\\*a' alone expands to"):
        load_bounded(ok + "c: *a\n")


def test_anchors_aliases_and_merge_keys_stay_usable() -> None:
    text = "base: &t {steps: 1, lr: 0.1}\nx: {<<: *t, steps: 2}\ny: *t\n"
    data, _ = load_bounded(text)
    assert data["x"] == {"steps": 2, "lr": 0.1} and data["y"] == {"steps": 1, "lr": 0.1}


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("a: 1\nb: 2\na: 3\n", 3),
        ("a: {x: 1, 'x': 2}\n", 1),
        ("- {k: 1}\n- k: 1\n  k: 2\n", 3),
        ("true: 1\nTrue: 2\n", 2),  # both the boolean true
        ("1: a\n0x1: b\n", 2),  # both the integer 1
    ],
)
def test_duplicate_keys_are_refused_with_the_line(text: str, line: int) -> None:
    with pytest.raises(YamlLimitError, match="duplicate key") as info:
        load_bounded(text)
    assert info.value.line == line


def test_same_key_in_different_mappings_is_fine() -> None:
    data, _ = load_bounded("a: {k: 1}\nb: {k: 2}\nc: [{k: 1}, {k: 2}]\n")
    assert data["c"] == [{"k": 1}, {"k": 2}]


def test_a_recursive_alias_is_refused() -> None:
    with pytest.raises(YamlLimitError, match="inside its own anchor"):
        load_bounded("a: &x {b: *x}\n")
