"""Issue 17, suite input: a corpus of hostile suites and ``--set`` values through the real CLI.

Every case must end with exit 2, a message that names the place (``file:line:`` or ``--set``)
and the field, no traceback, within the time bound, and nothing written anywhere (the command
runs with the temporary folder as its working directory; ``run`` gets ``--out`` inside it).
"""

from __future__ import annotations

import dataclasses
import os
import resource
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from energybench.cli import app

BASE = """\
name: hostile
defaults:
  dataset: {name: photos, params: {patch_size: 16}}
  train: {steps: 1, batch_size: 1}
energy:
  idle_baseline_s: 0
  min_window_s: 0
  trials: 1
metric:
  quality: psnr_db
entries:
  - name: small
    model: {name: espcn, params: {channels: 4, layers: 2, first_kernel: 3}}
    serve:
      - {scenario: throughput, batch_sizes: [1], warmup: 0, iterations: 2}
  - name: bicubic
    model: {name: bicubic}
"""

VALIDATE_S = 5.0  # the bound for validating any suite under 1 MB

BOMB = (
    'lol: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [" + ",".join([f"*{chr(97 + i)}"] * 9) + "]\n"
        for i in range(8)
    )
).replace("lol: &a", "a: &a")


@dataclass
class Case:
    """A suite (``BASE`` with ``edits``, or ``text``) and ``--set`` values, and what the error
    must say: ``where`` (``suite.yaml:LINE:`` or ``--set``), ``what``, the ``field`` path."""

    id: str
    where: str
    what: str
    field: str = ""
    edits: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    sets: list[str] = dataclasses.field(default_factory=list)
    text: str | None = None
    raw: bytes | None = None

    def content(self) -> bytes:
        if self.raw is not None:
            return self.raw
        text = BASE if self.text is None else self.text
        for old, new in self.edits:
            assert old in text, (self.id, old)
            text = text.replace(old, new, 1)
        return text.encode()


def _deep(n: int) -> str:
    return "[" * n + "]" * n


CASES = [
    # ---------------------------------------------------------------- YAML reader
    Case(
        "dup-top-key",
        "suite.yaml:2:",
        "duplicate key 'name'",
        edits=[("defaults:", "name: b\ndefaults:")],
    ),
    Case(
        "dup-entry-key",
        "suite.yaml:18:",
        "duplicate key 'model' (first given on line 17)",
        edits=[
            ("    model: {name: bicubic}", "    model: {name: bicubic}\n    model: {name: espcn}")
        ],
    ),
    Case(
        "dup-flow-key",
        "suite.yaml:15:",
        "duplicate key 'warmup'",
        edits=[("warmup: 0,", "warmup: 0, warmup: 9,")],
    ),
    Case(
        "dup-defaults-key",
        "suite.yaml:4:",
        "duplicate key 'dataset'",
        edits=[("  train: {steps: 1, batch_size: 1}", "  dataset: {name: video}")],
    ),
    Case(
        "alias-bomb",
        "suite.yaml:",
        "more than 50000 values after alias expansion",
        edits=[("energy:", BOMB + "energy:")],
    ),
    Case(
        "alias-bomb-nested",
        "suite.yaml:",
        "more than 50000 values",
        edits=[("entries:", BOMB.replace("\n", "\n  ").join(["x:\n  ", "\nentries:"]))],
    ),
    Case(
        "merge-key-bomb",
        "suite.yaml:",
        "more than 50000 values",
        edits=[
            (
                "energy:",
                "".join(
                    f"m{i}: &m{i} {{<<: [*m{i - 1}, *m{i - 1}, *m{i - 1}, *m{i - 1}]}}\n"
                    for i in range(1, 12)
                ).join(["m0: &m0 {k: 1, j: 2}\n", "energy:"]),
            )
        ],
    ),
    Case(
        "recursive-alias",
        "suite.yaml:5:",
        "inside its own anchor",
        edits=[("energy:\n", "loop: &r [1, *r]\nenergy:\n")],
    ),
    Case(
        "deep-flow-list",
        "suite.yaml:1:",
        "nesting deeper than 32 levels",
        edits=[("name: hostile", "name: " + _deep(100_000))],
    ),
    Case(
        "deep-block-mapping",
        "suite.yaml:",
        "nesting deeper than 32 levels",
        edits=[
            (
                "energy:\n",
                "x:\n" + "".join("  " * (i + 1) + f"k{i}:\n" for i in range(60)) + "energy:\n",
            )
        ],
    ),
    Case(
        "file-over-1MB",
        "suite.yaml",
        "at most 1000000 bytes",
        edits=[("energy:", "# " + "x" * 1_000_100 + "\nenergy:")],
    ),
    Case(
        "malformed-yaml",
        "suite.yaml:14:",
        "malformed YAML",
        edits=[("first_kernel: 3}}", "first_kernel: 3}")],
    ),
    Case(
        "tab-indent",
        "suite.yaml:6:",
        "malformed YAML",
        edits=[("  idle_baseline_s", "\tidle_baseline_s")],
    ),
    Case("not-utf8", "suite.yaml", "cannot read", raw=BASE.encode() + b"\n# \xff\xfe\xfa\n"),
    Case("empty-file", "suite.yaml:1:", "expected a mapping at the top level", text=""),
    Case(
        "top-level-list", "suite.yaml:1:", "expected a mapping at the top level", text="- a\n- b\n"
    ),
    Case(
        "two-documents", "suite.yaml:", "expected a single document", text=BASE + "---\nname: x\n"
    ),
    Case(
        "undefined-alias",
        "suite.yaml:1:",
        "undefined alias",
        edits=[("name: hostile", "name: *nope")],
    ),
    Case(
        "python-tag",
        "suite.yaml:1:",
        "could not determine a constructor",
        edits=[("name: hostile", "name: !!python/object/apply:os.system ['touch pwned']")],
    ),
    # ---------------------------------------------------------------- identifiers
    Case(
        "suite-name-slash",
        "suite.yaml:1:",
        "is not a name",
        "name",
        edits=[("name: hostile", "name: a/../../escape")],
    ),
    Case(
        "suite-name-space",
        "suite.yaml:1:",
        "is not a name",
        "name",
        edits=[("name: hostile", "name: my suite")],
    ),
    Case(
        "suite-name-too-long",
        "suite.yaml:1:",
        "1-64 letters",
        "name",
        edits=[("name: hostile", "name: " + "a" * 65)],
    ),
    Case(
        "entry-name-slash",
        "suite.yaml:12:",
        "is not a name",
        "entries.0.name",
        edits=[("name: small", "name: a/b")],
    ),
    Case(
        "entry-name-dotdot",
        "suite.yaml:12:",
        "starts with '.'",
        "entries.0.name",
        edits=[("name: small", "name: '..'")],
    ),
    Case(
        "entry-name-backslash",
        "suite.yaml:12:",
        "is not a name",
        "entries.0.name",
        edits=[("name: small", "name: 'a\\b'")],
    ),
    Case(
        "entry-name-empty",
        "suite.yaml:12:",
        "is not a name",
        "entries.0.name",
        edits=[("name: small", "name: ''")],
    ),
    Case(
        "entry-name-newline",
        "suite.yaml:12:",
        "is not a name",
        "entries.0.name",
        edits=[("name: small", 'name: "a\\nb"')],
    ),
    Case(
        "entry-names-differ-by-case",
        "suite.yaml:16:",
        "unique ignoring case",
        "entries.1.name",
        edits=[("name: bicubic", "name: SMALL")],
    ),
    # ---------------------------------------------------------------- numbers
    Case(
        "tau-inf",
        "suite.yaml:11:",
        "finite number",
        "metric.tau",
        edits=[("  quality: psnr_db", "  quality: psnr_db\n  tau: .inf")],
    ),
    Case(
        "idle-baseline-inf",
        "suite.yaml:6:",
        "finite number",
        "energy.idle_baseline_s",
        edits=[("idle_baseline_s: 0", "idle_baseline_s: .inf")],
    ),
    Case(
        "min-window-nan",
        "suite.yaml:7:",
        "finite number",
        "energy.min_window_s",
        edits=[("min_window_s: 0", "min_window_s: .nan")],
    ),
    Case(
        "mui-inf",
        "--set",
        "finite number",
        "metric.usage_intensities.0.mui",
        sets=["metric.usage_intensities=[{mui: .inf}]"],
    ),
    Case(
        "steps-1e18",
        "suite.yaml:4:",
        "less than or equal to 10000000",
        "defaults.train.steps",
        edits=[("steps: 1,", "steps: 1.0e+18,")],
    ),
    Case(
        "batch-sizes-1e9",
        "suite.yaml:15:",
        "less than or equal to 65536",
        "entries.0.serve.0.batch_sizes.0",
        edits=[("batch_sizes: [1]", "batch_sizes: [1000000000]")],
    ),
    Case(
        "batch-sizes-0-neg",
        "suite.yaml:15:",
        "greater than or equal to 1",
        "entries.0.serve.0.batch_sizes.1",
        edits=[("batch_sizes: [1]", "batch_sizes: [0, -4]")],
    ),
    Case(
        "frames-1e12",
        "--set",
        "less than or equal to 10000000",
        "entries.1.serve.0.frames",
        sets=["entries.bicubic.serve=[{scenario: stream, frames: 1000000000000}]"],
    ),
    Case(
        "trials-1e9",
        "suite.yaml:8:",
        "less than or equal to 1000",
        "energy.trials",
        edits=[("trials: 1", "trials: 1000000000")],
    ),
    Case(
        "zero-weights",
        "suite.yaml:10:",
        "every usage intensity has weight 0",
        "metric",
        edits=[
            (
                "  quality: psnr_db",
                "  quality: psnr_db\n"
                "  usage_intensities: [{mui: 10, weight: 0}, {mui: 99, weight: 0.0}]",
            )
        ],
    ),
    Case(
        "device-quantum",
        "suite.yaml:",
        "is not one of auto, cpu, cuda, cuda:N",
        "entries.1.device",
        edits=[("    model: {name: bicubic}", "    model: {name: bicubic}\n    device: quantum:7")],
    ),
    Case(
        "schema-version-99",
        "suite.yaml:1:",
        "known: 1",
        "schema_version",
        edits=[("name: hostile", "schema_version: 99\nname: hostile")],
    ),
    Case(
        "load-rate-inf",
        "--set",
        "finite number",
        "entries.1.serve.0.rate_per_s",
        sets=["entries.bicubic.serve=[{scenario: load, rate_per_s: .inf}]"],
    ),
    Case(
        "cooldown-huge",
        "suite.yaml:",
        "less than or equal to 86400",
        "energy.cooldown.max_s",
        edits=[("  trials: 1", "  trials: 1\n  cooldown: {enabled: true, max_s: 1.0e+300}")],
    ),
    Case(
        "seed-negative",
        "--set",
        "greater than or equal to 0",
        "entries.0.train.seed",
        sets=["entries.small.train.seed=-1"],
    ),
    Case(
        "lr-inf",
        "suite.yaml:4:",
        "finite number",
        "defaults.train.lr",
        edits=[("batch_size: 1}", "batch_size: 1, lr: .inf}")],
    ),
    Case(
        "pue-inf",
        "suite.yaml:",
        "finite number",
        "carbon.pue",
        edits=[("metric:", "carbon: {pue: .inf}\nmetric:")],
    ),
    # ---------------------------------------------------------------- model and dataset params
    Case(
        "model-layers-negative",
        "suite.yaml:13:",
        "'layers' must be between 2 and 256",
        "entries.0.model.params.layers",
        edits=[("layers: 2", "layers: -3")],
    ),
    Case(
        "model-channels-text",
        "suite.yaml:13:",
        "'channels': expected input should be a valid integer",
        "entries.0.model.params.channels",
        edits=[("channels: 4", "channels: abc")],
    ),
    Case(
        "model-channels-huge",
        "suite.yaml:13:",
        "between 1 and 4096",
        "entries.0.model.params.channels",
        edits=[("channels: 4", "channels: 1000000000")],
    ),
    Case(
        "model-param-inf",
        "suite.yaml:13:",
        "must be a finite number",
        "entries.0.model.params.residual",
        edits=[("first_kernel: 3", "first_kernel: 3, residual: .inf")],
    ),
    Case(
        "dataset-patch-negative",
        "suite.yaml:3:",
        "'patch_size' must be between 1 and 8192",
        "defaults.dataset.params.patch_size",
        edits=[("patch_size: 16", "patch_size: -1")],
    ),
    Case(
        "dataset-size-huge",
        "--set",
        "at most 8192 pixels",
        "entries.0.dataset.params.serve_lr",
        sets=["entries.small.dataset.params.serve_lr=100000x100000"],
    ),
    Case(
        "dataset-unknown-param",
        "suite.yaml:3:",
        "has no parameter 'patchsize'",
        "defaults.dataset.params.patchsize",
        edits=[("patch_size: 16", "patchsize: 16")],
    ),
    # ---------------------------------------------------------------- defaults and --set blame
    Case(
        "defaults-bad-steps",
        "suite.yaml:4:",
        "set in 'defaults'; reaches entries 'small', 'bicubic'",
        "defaults.train.steps",
        edits=[("steps: 1,", "steps: -1,")],
    ),
    Case(
        "entry-own-value-not-blamed-on-defaults",
        "suite.yaml:14:",
        "greater than or equal to 0",
        "entries.0.train.steps",
        edits=[
            (
                "    serve:\n      - {scenario: throughput",
                "    train: {steps: -2}\n    serve:\n      - {scenario: throughput",
            )
        ],
    ),
    Case(
        "defaults-unknown-key",
        "suite.yaml:5:",
        "unknown field 'trian'",
        "defaults.trian",
        edits=[("energy:", "  trian: {steps: 1}\nenergy:")],
    ),
    Case(
        "set-defaults-blamed-on-set",
        "--set",
        "from --set defaults.train.steps=-5",
        "defaults.train.steps",
        sets=["defaults.train.steps=-5"],
    ),
    Case(
        "set-alias-bomb",
        "--set",
        "more than 50000 values",
        sets=["description=" + "{" + BOMB.strip().replace("\n", ", ") + "}"],
    ),
    Case(
        "set-deep-value",
        "--set",
        "nesting deeper than 32 levels",
        sets=["description=" + _deep(50_000)],
    ),
    Case(
        "set-deep-key", "--set", "levels deep; at most 32", sets=["defaults" + ".x" * 5000 + "=1"]
    ),
    Case("set-duplicate-key", "--set", "duplicate key 'a'", sets=["description={a: 1, a: 2}"]),
    Case(  # past Python's 4300-digit limit for int(): a ValueError in the YAML reader
        "int-5000-digits",
        "suite.yaml:13:",
        "an integer of 5000 characters",
        edits=[("channels: 4,", f"channels: {'9' * 5000},")],
    ),
    Case(  # a float conversion of it overflows
        "int-400-digits",
        "suite.yaml:13:",
        "an integer of 400 characters",
        edits=[("channels: 4,", f"channels: {'9' * 400},")],
    ),
    Case(
        "set-int-5000-digits", "--set", "an integer of 5000", sets=[f"energy.trials={'9' * 5000}"]
    ),
    Case(
        "set-device",
        "--set",
        "is not one of auto, cpu, cuda",
        "entries.0.device",
        sets=["entries.small.device=cuda:x"],
    ),
    Case(
        "too-many-entries",
        "suite.yaml:12:",
        "at most 256 per suite",
        "entries",
        edits=[
            (
                "  - name: bicubic\n",
                "".join(f"  - {{name: e{i}, model: {{name: bicubic}}}}\n" for i in range(300))
                + "  - name: bicubic\n",
            )
        ],
    ),
    Case(
        "defaults-times-entries",
        "suite.yaml:3:",
        "at most 200000",
        "defaults",
        edits=[
            (
                "  train: {steps: 1, batch_size: 1}\n",
                "  train: {steps: 1, batch_size: 1}\n  serve: ["
                + ",".join(["{scenario: stream}"] * 2000)
                + "]\n",
            ),
            (
                "  - name: bicubic\n",
                "".join(f"  - {{name: e{i}, model: {{name: bicubic}}}}\n" for i in range(200))
                + "  - name: bicubic\n",
            ),
        ],
    ),
]

RUN_CASES = {
    "alias-bomb",
    "entry-name-dotdot",
    "steps-1e18",
    "device-quantum",
    "defaults-bad-steps",
    "set-alias-bomb",
    "python-tag",
}


@pytest.fixture(scope="module", autouse=True)
def _warm(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Import the registries and the runner (PyTorch) once, outside the timed invocations."""
    import energybench.run.runner  # noqa: F401 - imported by 'run' before it validates
    from energybench.suite import load_suite

    suite = tmp_path_factory.mktemp("warm") / "suite.yaml"
    suite.write_text(BASE)
    load_suite(suite)


def _listing(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def _invoke(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str]) -> tuple[int, str]:
    monkeypatch.chdir(tmp_path)
    before = _listing(tmp_path)
    t0 = time.perf_counter()
    res = CliRunner().invoke(app, args)
    elapsed = time.perf_counter() - t0
    assert elapsed < VALIDATE_S, f"took {elapsed:.1f} s"
    assert _listing(tmp_path) == before, "something was written"
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    return res.exit_code, res.output


def test_the_corpus_is_large_and_ids_unique() -> None:
    assert len(CASES) >= 60 and len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_validate_refuses_with_a_located_message(
    case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    suite = tmp_path / "in" / "suite.yaml"
    suite.parent.mkdir()
    suite.write_bytes(case.content())
    args = ["validate", "in/suite.yaml"] + [a for s in case.sets for a in ("--set", s)]
    code, out = _invoke(tmp_path, monkeypatch, args)
    flat = " ".join(out.split())  # rich wraps long lines
    assert code == 2, out[-2000:]
    assert "Traceback" not in out
    assert case.where in flat and case.what in flat, flat[:2000]
    if case.field:
        assert f"at '{case.field}'" in flat, flat[:2000]
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize("case", [c for c in CASES if c.id in RUN_CASES], ids=sorted(RUN_CASES))
def test_run_refuses_before_writing_anything(
    case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    suite = tmp_path / "in" / "suite.yaml"
    suite.parent.mkdir()
    suite.write_bytes(case.content())
    sets = [a for s in case.sets for a in ("--set", s)]
    code, out = _invoke(tmp_path, monkeypatch, ["run", "in/suite.yaml", "--out", "out", *sets])
    assert code == 2 and "Traceback" not in out and case.what in " ".join(out.split())
    assert not (tmp_path / "out").exists() and not (tmp_path / "reports").exists()


def test_the_base_suite_is_valid(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each case above fails because of its edit, not because the base is broken."""
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "suite.yaml").write_text(BASE)
    code, out = _invoke(tmp_path, monkeypatch, ["validate", "in/suite.yaml"])
    assert code == 0, out


def test_defaults_problem_is_reported_once_for_all_entries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "suite.yaml").write_text(BASE.replace("steps: 1,", "steps: -1,"))
    code, out = _invoke(tmp_path, monkeypatch, ["validate", "in/suite.yaml"])
    flat = " ".join(out.split())
    assert code == 2 and "(1 problem)" in flat
    assert "reaches entries 'small', 'bicubic'" in flat and "entries.0" not in flat


BOMBS = {
    "bomb.yaml": BASE.replace("energy:", BOMB + "energy:"),
    "deep.yaml": BASE.replace("name: hostile", "name: " + _deep(400_000)),
    "flat.yaml": BASE + "description: [" + ",".join(["1"] * 480_000) + "]\n",
    "errors.yaml": BASE.replace(
        "batch_sizes: [1]", "batch_sizes: [" + ",".join(["0"] * 49_000) + "]"
    ),
}


def test_hostile_files_near_1mb_validate_within_time_and_memory(tmp_path: Path) -> None:
    """In a fresh process: after the imports, each file is refused in < 5 s and < 500 MB."""
    for name, text in BOMBS.items():
        (tmp_path / name).write_text(text)
        assert len(text.encode()) < 1_000_000
    script = textwrap.dedent(
        """
        import resource, sys, time
        import energybench.cli  # noqa: F401 - the imports are not the validation's cost
        from energybench.suite import SuiteError, load_suite
        for f in sys.argv[1:]:
            # CPU time of this process: the validation's own work, not the waits a busy
            # machine adds (wall time on a quiet machine is the same)
            t0 = time.process_time()
            try:
                load_suite(f)
            except SuiteError as exc:
                msg = str(exc)
            print(f, time.process_time() - t0, msg.splitlines()[1][:100], flush=True)
        print("maxrss_mb", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
        """
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    base_rss = _rss_after_imports(env)
    proc = subprocess.run(
        [sys.executable, "-c", script, *sorted(BOMBS)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    for line in lines[:-1]:
        name, seconds, msg = line.split(" ", 2)
        assert float(seconds) < VALIDATE_S, line
        assert f"{name}:" in msg, line  # located
    rss = float(lines[-1].split()[1])
    assert rss - base_rss < 500, f"{rss:.0f} MB peak, {base_rss:.0f} MB after imports"
    assert "Traceback" not in proc.stderr


def _rss_after_imports(env: dict[str, str]) -> float:
    code = (
        "import resource, energybench.cli, energybench.suite.load, energybench.models, "
        "energybench.data; from energybench.suite import load_suite; "
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return float(out.stdout.strip())


def test_a_real_process_refuses_an_alias_bomb_without_traceback(tmp_path: Path) -> None:
    (tmp_path / "bomb.yaml").write_text(BOMBS["bomb.yaml"])
    limit = 2 * 1024**3  # 2 GB of heap: an expanding bomb would die of MemoryError
    proc = subprocess.run(
        [sys.executable, "-m", "energybench", "validate", "bomb.yaml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_DATA, (limit, limit)),
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "bomb.yaml:" in proc.stderr and "Traceback" not in proc.stderr + proc.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bomb.yaml"]
