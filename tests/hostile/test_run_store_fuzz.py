"""Fuzz of the run-store reader: whatever bytes or JSON a run-folder file holds, reading it gives
a checked record or a ``RunFileError`` naming the file, never another exception."""

from __future__ import annotations

import copy
import csv
import io
import json
import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from energybench.records.check import ENERGY_KEYS, RunFileError, parse_record
from energybench.records.store import RunStore, load_run

FUZZ = settings(
    max_examples=60,
    deadline=5000,  # ms; generous for a loaded CI machine, still catches a hang
    database=None,  # never write .hypothesis/ into the repository
    suppress_health_check=[HealthCheck.too_slow],
)
KINDS = ("phase", "manifest", "idle")
KEYS = sorted(ENERGY_KEYS) + [
    "status", "measurement", "devices", "scenarios", "by_batch", "trials", "methods", "suite",
    "entries", "name", "power_w", "before", "checkpoint", "sha256", "file", "mean", "quality",
]  # fmt: skip

#: an explicit alphabet (quotes, brackets, markup, non-ASCII): no slow unicode tables to build
TEXT = st.text(alphabet="aZ09_.-: $\\{}[]\"'/\u00e9\u2603\x00", max_size=12)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | TEXT
    | st.sampled_from(["done", "skipped", "failed"])
    | st.sampled_from([10**400, -(10**400), 5e-324, 1e308]),  # beyond a float; the extremes
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(KEYS) | TEXT, inner, max_size=5)
    ),
    max_leaves=25,
)

DEVICE = {"device": "cpu:0", "kind": "cpu", "source": "estimate", "energy_j": 1.5}
MEASUREMENT = {"energy_j": 1.5, "devices": [DEVICE], "sources": ["estimate"], "flags": []}
RECORDS: dict[str, Any] = {
    "phase": {
        "schema_version": 1,
        "entry": "a",
        "phase": "serve",
        "status": "done",
        "config_hash": "0123456789abcdef",
        "duration_s": 0.5,
        "measurement": MEASUREMENT,
        "checkpoint": {"file": "train.pt", "sha256": "0" * 64},
        "methods": [{"method": "prune", "measurement": MEASUREMENT}],
        "scenarios": {
            "throughput": {
                "by_batch": {
                    "1": {
                        "energy_per_item_j": {"mean": 0.1, "ci_low": -0.2},
                        "trials": [{"energy_j": 0.2, "measurement": MEASUREMENT}],
                    }
                }
            }
        },
    },
    "manifest": {
        "suite": {
            "name": "s",
            "entries": [{"name": "a", "model": {"name": "bicubic"}}],
            "energy": {},
        }
    },
    "idle": {"before": {"seconds": 0, "power_w": {"gpu:0": 60.0}}},
}


def _located(exc: RunFileError, path: Path | str) -> None:
    assert str(exc).startswith(f"{path}: ") and len(exc.problem) > 5, str(exc)


def _read(raw: bytes, kind: str) -> None:
    path = Path("run") / f"{kind}.json"
    try:
        data = parse_record(raw, kind, path)
    except RunFileError as exc:
        _located(exc, path)
    else:
        assert isinstance(data, dict)


@pytest.mark.parametrize("kind", KINDS)
def test_the_untouched_records_are_accepted(kind: str) -> None:
    assert parse_record(json.dumps(RECORDS[kind]).encode(), kind, "x.json") == RECORDS[kind]


@FUZZ
@given(raw=st.binary(max_size=600), kind=st.sampled_from(KINDS))
def test_random_bytes(raw: bytes, kind: str) -> None:
    _read(raw, kind)


@FUZZ
@given(value=json_values, kind=st.sampled_from(KINDS))
def test_random_json_values(value: Any, kind: str) -> None:
    _read(json.dumps(value).encode(), kind)


def _paths(value: Any, here: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every location inside a JSON value (dict keys and list indices)."""
    out = [here]
    if isinstance(value, dict):
        for k, v in value.items():
            out += _paths(v, (*here, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += _paths(v, (*here, i))
    return out


@FUZZ
@given(data=st.data(), kind=st.sampled_from(KINDS))
def test_a_valid_record_with_one_value_replaced(data: st.DataObject, kind: str) -> None:
    """The sharpest fuzz: a real-shaped record where one value anywhere becomes anything."""
    record = copy.deepcopy(RECORDS[kind])
    where = data.draw(st.sampled_from(_paths(record)[1:]))
    target = record
    for step in where[:-1]:
        target = target[step]
    target[where[-1]] = data.draw(json_values)
    _read(json.dumps(record).encode(), kind)


@FUZZ
@given(raw=st.one_of(st.binary(max_size=300), json_values.map(lambda v: json.dumps(v).encode())))
def test_load_run_of_a_fuzzed_record(raw: bytes) -> None:
    """Through the store: a run folder whose serve record is fuzzed loads or names the file."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "manifest.json").write_text(json.dumps(RECORDS["manifest"]))
        path = RunStore(root).phase_path("a", "serve")
        path.parent.mkdir(parents=True)
        path.write_bytes(raw)
        try:
            run = load_run(root)
        except RunFileError as exc:
            _located(exc, path)
        else:
            serve = run.phases["a"].serve
            assert serve is not None and serve.status in ("done", "skipped", "failed")


@pytest.mark.parametrize(
    ("kind", "change", "problem"),
    [
        ("phase", lambda r: r["measurement"].update(energy_j=float("nan")), "NaN"),
        ("phase", lambda r: r["measurement"]["devices"][0].update(energy_j=-1), "negative"),
        (
            "phase",
            lambda r: r["scenarios"]["throughput"]["by_batch"]["1"]["trials"][0].update(
                energy_j=float("inf")
            ),
            "Infinity",
        ),  # fmt: skip
        ("phase", lambda r: r.update(status="running"), "status"),
        ("phase", lambda r: r.update(methods={"a": 1}), "methods"),
        ("phase", lambda r: r["checkpoint"].pop("sha256"), "checkpoint.sha256"),
        ("manifest", lambda r: r["suite"]["entries"].append({"name": "a"}), "twice"),
        ("manifest", lambda r: r.pop("suite"), "suite"),
        ("idle", lambda r: r["before"]["power_w"].update(g=float("nan")), "power"),
    ],
)
def test_each_check_fires_with_its_location(kind: str, change: Any, problem: str) -> None:
    """Each guarded line, one at a time: removing a check makes its case fail."""
    record = copy.deepcopy(RECORDS[kind])
    change(record)
    with pytest.raises(RunFileError, match=problem) as info:
        parse_record(json.dumps(record).encode(), kind, "run/x.json")
    _located(info.value, "run/x.json")


# --------------------------------------------------------------------------- a real run, fuzzed
#: every record kind of a real run: the manifest, the idle baseline, each phase of each entry
REAL_FILES = (
    "manifest.json",
    "idle.json",
    "entries/teacher/train.json",
    "entries/teacher/compress.json",
    "entries/teacher/serve.json",
    "entries/teacher/evaluate.json",
    "entries/child/train.json",
    "entries/child/serve.json",
    "entries/child/evaluate.json",
)


@pytest.fixture(scope="module")
def real_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished two-entry run (the hostile run-folder tests' tiny suite)."""
    from typer.testing import CliRunner

    from energybench.cli import app
    from tests.hostile.test_run_folders import SUITE

    tmp = tmp_path_factory.mktemp("fuzz-run")
    (tmp / "tiny.yaml").write_text(SUITE)
    res = CliRunner().invoke(
        app, ["run", str(tmp / "tiny.yaml"), "--out", str(tmp / "out"), "--no-report"]
    )
    assert res.exit_code == 0, res.output
    (manifest,) = (tmp / "out").glob("tiny/*/manifest.json")
    return manifest.parent


@settings(FUZZ, max_examples=int(os.environ.get("FUZZ_EXAMPLES", "120")))
@given(data=st.data(), rel=st.sampled_from(REAL_FILES))
def test_a_real_run_with_one_value_replaced_loads_and_exports_or_names_the_file(
    real_run: Path, data: st.DataObject, rel: str
) -> None:
    """Any record kind of a real run, one value anywhere replaced by anything: loading the run
    and computing every table of its export (sums, rankings) either works or raises a user
    error naming the file; never another exception, never a non-finite score ranked."""
    from energybench.errors import UserError
    from energybench.report.export import export_text

    record = json.loads((real_run / rel).read_text())
    where = data.draw(st.sampled_from(_paths(record)[1:]))
    target = record
    for step in where[:-1]:
        target = target[step]
    target[where[-1]] = data.draw(json_values)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "run"
        shutil.copytree(real_run, root)
        (root / rel).write_text(json.dumps(record))
        try:
            run = load_run(root)
        except RunFileError as exc:
            _located(exc, root / rel)
            return
        except UserError as exc:  # e.g. an entry name that would leave the run folder
            assert "manifest" in str(exc) or str(root) in str(exc), exc
            return
        text = export_text([run], "csv")
        for row in csv.DictReader(io.StringIO(text)):
            if row["rank"]:
                assert math.isfinite(float(row["score"] or row["greenness"] or 0)), row


@settings(FUZZ, max_examples=int(os.environ.get("FUZZ_REPORT_EXAMPLES", "15")))
@given(data=st.data(), rel=st.sampled_from(REAL_FILES))
def test_a_real_run_with_one_value_replaced_renders_or_names_the_file(
    real_run: Path, data: st.DataObject, rel: str
) -> None:
    """The HTML report and the site read more of a run than the export does (timestamps, the
    machine, meters, peaks): with one value anywhere replaced, both render or the load names
    the file; never another exception."""
    from energybench.errors import UserError
    from energybench.report.html import render_report
    from energybench.report.site import build_site

    record = json.loads((real_run / rel).read_text())
    where = data.draw(st.sampled_from(_paths(record)[1:]))
    target = record
    for step in where[:-1]:
        target = target[step]
    target[where[-1]] = data.draw(json_values)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "run"
        shutil.copytree(real_run, root)
        (root / rel).write_text(json.dumps(record))
        try:
            run = load_run(root)
        except UserError as exc:
            assert str(root) in str(exc) or "manifest" in str(exc), exc
            return
        assert "<html" in render_report([run]).lower()
        build_site([root], Path(tmp) / "site")


#: the other files a run folder holds that energybench reads: the seal (``site --check``) and a
#: checkpoint's recipe (``run --resume``)
@FUZZ
@given(value=st.one_of(json_values, st.binary(max_size=200)))
def test_a_fuzzed_seal_gives_problems_never_an_exception(real_run: Path, value: Any) -> None:
    from energybench.records.seal import SEAL_NAME, seal_problems

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "run"
        shutil.copytree(real_run, root)
        raw = value if isinstance(value, bytes) else json.dumps({"sha256": value}).encode()
        (root / SEAL_NAME).write_bytes(raw)
        problems = seal_problems(root)
        assert problems and all(isinstance(p, str) and str(root) in p for p in problems)


@FUZZ
@given(data=st.data())
def test_a_fuzzed_checkpoint_recipe_loads_or_names_it(real_run: Path, data: st.DataObject) -> None:
    from energybench.run.checkpoint import CheckpointError, CheckpointLoader, recipe_path

    ckpt = real_run / "entries" / "teacher" / "checkpoints" / "train.pt"
    record = json.loads(recipe_path(ckpt).read_text())
    where = data.draw(st.sampled_from(_paths(record)[1:]))
    target = record
    for step in where[:-1]:
        target = target[step]
    target[where[-1]] = data.draw(json_values)
    with tempfile.TemporaryDirectory() as tmp:
        mine = Path(tmp) / "train.pt"
        shutil.copy(ckpt, mine)
        recipe_path(mine).write_text(json.dumps(record))
        try:
            CheckpointLoader().load(mine)
        except CheckpointError as exc:
            assert str(Path(tmp)) in str(exc) or "recipe" in str(exc), exc


@pytest.mark.parametrize("digits", [30, 400, 5000])
@pytest.mark.parametrize("kind", KINDS)
def test_an_integer_longer_than_any_record_holds_is_named(kind: str, digits: int) -> None:
    """A hand-typed integer of hundreds or thousands of digits (beyond what a float or Python's
    int parser takes) in a figure: the field is named, no OverflowError or ValueError escapes."""
    field = {"phase": "energy_j", "manifest": "store_version", "idle": "power_w"}[kind]
    record = copy.deepcopy(RECORDS[kind])
    target = record["before"] if kind == "idle" else record
    target[field] = "BIG"
    raw = json.dumps(record).replace('"BIG"', "1" + "0" * digits).encode()
    with pytest.raises(RunFileError, match=field) as info:
        parse_record(raw, kind, "run/x.json")
    _located(info.value, "run/x.json")


@pytest.mark.parametrize("params", [{"channels": 2**31}, {"layers": 10**6}, {"channels": "4"}])
def test_a_recipe_asking_for_a_giant_model_is_refused_before_building_it(
    real_run: Path, tmp_path: Path, params: dict[str, Any]
) -> None:
    """A hand-edited recipe whose model no suite could ask for (2**31 channels: tens of GB) is
    refused by name at once, never built (the state's hash still matches: it is not edited)."""
    import time

    from energybench.run.checkpoint import CheckpointError, CheckpointLoader, recipe_path

    ckpt = real_run / "entries" / "teacher" / "checkpoints" / "train.pt"
    recipe = json.loads(recipe_path(ckpt).read_text())
    recipe["model"]["params"].update(params)
    mine = tmp_path / "train.pt"
    shutil.copy(ckpt, mine)
    recipe_path(mine).write_text(json.dumps(recipe))
    t0 = time.monotonic()
    with pytest.raises(CheckpointError, match=next(iter(params))) as info:
        CheckpointLoader().load(mine)
    assert str(recipe_path(mine)) in str(info.value) and time.monotonic() - t0 < 5
