"""Fuzz of the suite loader: any text, any mutation of a valid suite, any ``--set``.

The outcome is always a valid suite or a located :class:`SuiteError` (the file or ``--set``
named in every problem); never another exception, never a hang (hypothesis' deadline).
"""

from __future__ import annotations

import os
import tempfile
from datetime import timedelta
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from energybench.suite import SuiteError, load_suite

BASE = """\
name: fuzz
defaults:
  dataset: {name: photos, params: {patch_size: 16}}
  train: {steps: 1, batch_size: 1}
energy:
  idle_baseline_s: 0
  trials: 1
metric:
  quality: psnr_db
  usage_intensities: [{mui: 10, weight: 1}]
entries:
  - name: small
    model: {name: espcn, params: {channels: 4, layers: 2}}
    serve:
      - {scenario: throughput, batch_sizes: [1], warmup: 0, iterations: 2}
      - {scenario: load, rate_per_s: 5, requests: 4}
  - name: bicubic
    model: {name: bicubic}
    device: cpu
    inherit: small
"""

HOSTILE = [
    ".inf", "-.inf", ".nan", "-1", "0", "1.0e+18", "1e18", "99999999999999999999", "''", "~",
    "null", "[]", "{}", "[0, -4]", "'..'", "'../x'", "a/b", "true", "!!binary aGk=", "*a", "&a 1",
    "'=cmd'", '"\\x00"', "[[[[[[]]]]]]", "{a: 1, a: 2}", "!!python/name:os.system", "cuda:99",
    "quantum:7", "'$\\undefined$'", "x" * 300, "{<<: {a: 1}}", "- a", ": :", "|\n  text",
]  # fmt: skip
KEYS = [
    "name", "schema_version", "description", "defaults.train.steps", "defaults.dataset.params",
    "defaults.dataset.params.patch_size", "defaults.model", "energy.trials", "energy.meters",
    "energy.idle_baseline_s", "energy.cooldown", "metric.tau", "metric.usage_intensities",
    "metric.iec_scenario", "metric.pairs", "entries.small.name", "entries.small.device",
    "entries.small.model.params.layers", "entries.small.model.params", "entries.small.serve",
    "entries.small.serve.0.batch_sizes", "entries.small.compress", "entries.bicubic.inherit",
    "entries.0.uses", "entries.1", "entries", "defaults", "carbon.pue", "entries.small.train",
]  # fmt: skip

_DIR = Path(tempfile.mkdtemp(prefix="energybench-fuzz-"))
FUZZ = settings(
    max_examples=int(os.environ.get("ENERGYBENCH_FUZZ_EXAMPLES", "40")),  # more to hunt bugs
    deadline=timedelta(seconds=5),
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def check(text: str, sets: list[str] | None = None) -> None:
    """Load ``text`` (with ``sets``): a suite, or a SuiteError whose problems are located."""
    path = _DIR / "suite.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        load_suite(path, sets or [])
    except SuiteError as exc:
        assert exc.problems, "an error with no problem"
        for pr in exc.problems:
            assert pr.file in (str(path), "--set"), pr
            assert pr.message, pr
        assert "Traceback" not in str(exc)


yamlish = st.text(
    alphabet=st.sampled_from(list("abcdefxyz019 .-_:,[]{}&*!|>'\"#\n\t?<=%@`~\\/")),
    max_size=200,
)


@FUZZ
@given(yamlish)
def test_random_yamlish_text(text: str) -> None:
    check(text)


@FUZZ
@given(yamlish)
def test_random_text_appended_to_a_valid_suite(text: str) -> None:
    check(BASE + text)


@st.composite
def mutated(draw: st.DrawFn) -> str:
    """BASE with a few lines replaced, dropped, duplicated, re-indented or given hostile values."""
    lines = BASE.splitlines()
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(lines) - 1))
        kind = draw(st.sampled_from(["value", "drop", "dup", "indent", "insert"]))
        line = lines[i]
        if kind == "value" and ":" in line:
            head = line.rsplit(":", 1)[0] if draw(st.booleans()) else line.split(":", 1)[0]
            lines[i] = f"{head}: {draw(st.sampled_from(HOSTILE))}"
        elif kind == "drop":
            del lines[i]
        elif kind == "dup":
            lines.insert(i, line)
        elif kind == "indent":
            lines[i] = " " * draw(st.integers(0, 6)) + line.lstrip()
        else:
            pos = draw(st.integers(0, len(line)))
            lines[i] = line[:pos] + draw(st.sampled_from(HOSTILE)) + line[pos:]
        if not lines:
            break
    return "\n".join(lines) + "\n"


@FUZZ
@given(mutated())
def test_mutations_of_a_valid_suite(text: str) -> None:
    check(text)


@FUZZ
@given(
    st.lists(
        st.tuples(st.sampled_from(KEYS), st.sampled_from(HOSTILE) | yamlish), min_size=1, max_size=3
    )
)
def test_random_overrides(sets: list[tuple[str, str]]) -> None:
    check(BASE, [f"{k}={v}" for k, v in sets])


def test_the_base_suite_is_valid() -> None:
    assert load_suite(_write(BASE)).suite.name == "fuzz"


def _write(text: str) -> Path:
    path = _DIR / "base.yaml"
    path.write_text(text)
    return path
