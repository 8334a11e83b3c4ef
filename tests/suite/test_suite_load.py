"""Suite loading: located, precise errors for every kind of bad input; overrides; defaults."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from energybench.cli import app
from energybench.suite import SuiteError, load_suite

GOOD = """\
name: mini
description: a tiny suite
defaults:
  dataset: {name: photos, params: {patch_size: 32}}
  train: {steps: 2, batch_size: 2}
energy:
  idle_baseline_s: 0
entries:
  - name: base
    model: {name: espcn}
    serve:
      - {scenario: throughput, batch_sizes: [1]}
  - name: variant
    model: {name: espcn}
    inherit: base
    serve:
      - {scenario: stream, fps: 10, frames: 4}
"""


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "suite.yaml"
    p.write_text(textwrap.dedent(text))
    return p


def problems(tmp_path: Path, text: str, *overrides: str) -> str:
    with pytest.raises(SuiteError) as info:
        load_suite(write(tmp_path, text), list(overrides))
    return str(info.value)


def test_good_suite_loads_with_defaults_merged(tmp_path: Path) -> None:
    s = load_suite(write(tmp_path, GOOD)).suite
    assert s.entries[0].train.steps == 2
    assert s.entries[0].dataset.params == {"patch_size": 32}
    assert s.entries[1].train is None  # an inheriting entry does not take the default train
    assert s.entries[1].serve[0].scenario == "stream"


def test_typo_key_names_line_and_suggests(tmp_path: Path) -> None:
    msg = problems(tmp_path, GOOD.replace("batch_sizes: [1]", "batch_size: [1]"))
    assert "suite.yaml:12:" in msg
    assert "unknown field 'batch_size'" in msg and "did you mean 'batch_sizes'" in msg
    assert "entries.0.serve.0.batch_size" in msg


def test_typo_top_level_key(tmp_path: Path) -> None:
    msg = problems(tmp_path, GOOD.replace("energy:", "enregy:"))
    assert "suite.yaml:6:1" in msg and "did you mean 'energy'" in msg


def test_wrong_type_says_expected_and_found(tmp_path: Path) -> None:
    msg = problems(tmp_path, GOOD.replace("fps: 10", "fps: fast"))
    assert "suite.yaml:17:" in msg
    assert "entries.1.serve.0.fps" in msg
    assert "valid number" in msg and "'fast'" in msg


def test_missing_required_field(tmp_path: Path) -> None:
    msg = problems(tmp_path, GOOD.replace("    model: {name: espcn}\n    serve:", "    serve:"))
    assert "missing required field 'model'" in msg
    assert "suite.yaml:9:" in msg


def test_unknown_model_suggests(tmp_path: Path) -> None:
    msg = problems(
        tmp_path,
        GOOD.replace("model: {name: espcn}\n    serve", "model: {name: espnc}\n    serve", 1),
    )
    assert "unknown model 'espnc'" in msg and "did you mean 'espcn'" in msg
    assert "suite.yaml:10:" in msg


def test_unknown_model_param(tmp_path: Path) -> None:
    msg = problems(
        tmp_path,
        GOOD.replace(
            "model: {name: espcn}\n    serve",
            "model: {name: espcn, params: {chanels: 8}}\n    serve",
            1,
        ),
    )
    assert "no parameter 'chanels'" in msg


def test_unknown_scenario_kind(tmp_path: Path) -> None:
    msg = problems(tmp_path, GOOD.replace("scenario: stream", "scenario: streem"))
    assert "unknown kind 'streem'" in msg and "did you mean 'stream'" in msg


def test_malformed_yaml(tmp_path: Path) -> None:
    msg = problems(tmp_path, GOOD.replace("  - name: variant", "  - name: variant: [oops"))
    assert "malformed YAML" in msg and "suite.yaml:13:" in msg


def test_unknown_inherit_target(tmp_path: Path) -> None:
    msg = problems(tmp_path, GOOD.replace("inherit: base", "inherit: bsae"))
    assert "no entry named 'bsae'" in msg and "did you mean 'base'" in msg


def test_cycle_is_reported(tmp_path: Path) -> None:
    text = GOOD.replace(
        "  - name: base\n    model: {name: espcn}",
        "  - name: base\n    model: {name: espcn}\n    uses: [variant]",
    )
    assert "cycle" in problems(tmp_path, text)


def test_overrides_address_entries_by_name(tmp_path: Path) -> None:
    s = load_suite(
        write(tmp_path, GOOD), ["entries.base.train.steps=7", "energy.sample_period_s=0.02"]
    ).suite
    assert s.entries[0].train.steps == 7 and s.energy.sample_period_s == 0.02


def test_bad_override(tmp_path: Path) -> None:
    msg = problems(tmp_path, GOOD, "entries.nope.train.steps=1")
    assert "no list item named or numbered 'nope'" in msg
    assert "is not key.path=value" in problems(tmp_path, GOOD, "entries")
    assert "expected" in problems(tmp_path, GOOD, "entries.base.train.steps=-3")


def test_missing_file(tmp_path: Path) -> None:
    assert "no such suite file" in problems_path(tmp_path / "nope.yaml")


def problems_path(p: Path) -> str:
    with pytest.raises(SuiteError) as info:
        load_suite(p)
    return str(info.value)


@pytest.mark.parametrize(
    "edit",
    [
        ("batch_sizes: [1]", "batch_size: [1]"),
        ("fps: 10", "fps: fast"),
        ("    model: {name: espcn}\n    serve:", "    serve:"),
        ("name: espcn}\n    serve", "name: espnc}\n    serve"),
        ("  - name: variant", "  - name: variant: [oops"),
    ],
)
def test_cli_validate_exit_2_without_traceback(tmp_path: Path, edit: tuple[str, str]) -> None:
    path = write(tmp_path, GOOD.replace(*edit, 1))
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert "suite.yaml:" in result.output


def test_cli_validate_ok(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["validate", str(write(tmp_path, GOOD))])
    assert result.exit_code == 0 and "ok" in result.output


def test_real_process_bad_suite_prints_no_traceback(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("fps: 10", "fps: fast"))
    proc = subprocess.run(
        [sys.executable, "-m", "energybench", "validate", str(path)], capture_output=True, text=True
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr + proc.stdout
    assert "suite.yaml:17:" in proc.stderr


@pytest.mark.parametrize(
    "suite", sorted(Path(__file__).parents[2].glob("suites/*.yaml")), ids=lambda p: p.name
)
def test_every_shipped_suite_validates(suite: Path) -> None:
    load_suite(suite)


def test_a_bad_set_value_is_blamed_on_the_set_not_the_file(tmp_path: Path) -> None:
    msg = problems(tmp_path, GOOD, "entries.variant.serve.0.fps=fast")
    assert "--set: " in msg and "(from --set entries.variant.serve.0.fps=fast)" in msg
    assert "suite.yaml:" not in msg


ADAPTIVE = (
    GOOD
    + """\
  - name: adaptive
    model: {name: espcn}
    serve:
      - {scenario: adaptive, fps: 10, duration_s: 2, variants: [variant, base], policy: deadline,
         contention: [{at_s: 0.5, threads: 1}, {at_s: 1.5, threads: 0}]}
"""
)


def test_adaptive_scenario_loads_and_runs_after_its_variants(tmp_path: Path) -> None:
    from energybench.suite.load import dependency_order

    loaded = load_suite(write(tmp_path, ADAPTIVE))
    entry = loaded.suite.entry("adaptive")
    assert entry.variants() == ["variant", "base"]
    order = [e.name for e in dependency_order(loaded.suite)]
    assert order.index("adaptive") > max(order.index("variant"), order.index("base"))


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        ("variants: [variant, base]", "adaptive variant: no entry named 'bsae'"),
        ("policy: deadline", "unknown policy 'deadlin'"),
        ("{at_s: 0.5, threads: 1}, {at_s: 1.5", "increasing 'at_s'"),
    ],
)
def test_adaptive_errors_are_located_at_validate(tmp_path: Path, edit: str, expected: str) -> None:
    bad = {
        "variants: [variant, base]": "variants: [variant, bsae]",
        "policy: deadline": "policy: deadlin",
        "{at_s: 0.5, threads: 1}, {at_s: 1.5": "{at_s: 1.5, threads: 1}, {at_s: 0.5",
    }[edit]
    path = write(tmp_path, ADAPTIVE.replace(edit, bad))
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert expected in result.output and "suite.yaml:" in result.output


def test_an_adaptive_entry_reruns_when_a_variant_changes(tmp_path: Path) -> None:
    from energybench.run.resume import phase_hashes

    a = phase_hashes(load_suite(write(tmp_path, ADAPTIVE)).suite)
    b = phase_hashes(load_suite(write(tmp_path, ADAPTIVE.replace("steps: 2", "steps: 3"))).suite)
    assert a["adaptive"]["serve"] != b["adaptive"]["serve"]
    good = phase_hashes(load_suite(write(tmp_path, GOOD)).suite)
    assert good["base"] == a["base"]  # entries without adaptive scenarios keep their hashes


def test_validate_reports_schema_and_name_problems_in_one_pass(tmp_path: Path) -> None:
    """Field typos, an unknown model and a dangling reference: all four in one report."""
    from energybench.suite.load import SuiteError, load_suite

    suite = tmp_path / "typos.yaml"
    suite.write_text(
        "name: typos\nentries:\n"
        "  - name: a\n    model: {name: espcnn}\n"
        "    serve:\n      - {scenario: throughput, batch_sizez: [1]}\n"
        "  - name: b\n    model: {name: bicubic}\n    inherit: aa\n    train: {stepz: 3}\n"
    )
    with pytest.raises(SuiteError) as info:
        load_suite(suite)
    text = str(info.value)
    assert "4 problems" in text
    for where, what in [
        ("typos.yaml:6:", "'batch_sizez'"),
        ("typos.yaml:10:", "'stepz'"),
        ("typos.yaml:4:", "unknown model 'espcnn'"),
        ("typos.yaml:9:", "no entry named 'aa'"),
    ]:
        assert any(where in line and what in line for line in text.splitlines()), (where, text)
