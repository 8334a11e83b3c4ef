"""Phase records and the idle baseline are typed on load: a record without a field its type
requires fails naming its file, and a fresh run's records keep every key they were written with."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from energybench.cli import app
from energybench.records.check import RunFileError
from energybench.records.phases import (
    CompressRecord,
    EvaluateRecord,
    ServeRecord,
    TrainRecord,
)
from energybench.records.store import RunData, load_run

ROOT = Path(__file__).resolve().parents[2]
RUN_010 = ROOT / "tests" / "fixtures" / "run-0.1.0"
SUITE = ROOT / "suites" / "smoke.yaml"


def _edit(path: Path, change: Callable[[dict[str, Any]], None]) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def _drop_device_kind(rec: dict[str, Any]) -> None:
    del rec["measurement"]["devices"][0]["kind"]


def _drop_method_name(rec: dict[str, Any]) -> None:
    del rec["methods"][0]["method"]


PHASE_DAMAGE = {
    "no-status": ("teacher/evaluate.json", lambda r: r.pop("status"), "status"),
    "no-config-hash": ("teacher/train.json", lambda r: r.pop("config_hash"), "config_hash"),
    "no-entry": ("bicubic/serve.json", lambda r: r.pop("entry"), "entry"),
    "wrong-phase": ("teacher/train.json", lambda r: r.update(phase="serve"), "phase"),
    "device-without-kind": ("teacher/train.json", _drop_device_kind, "devices.0.kind"),
    "step-without-method": ("ckbg-merged/compress.json", _drop_method_name, "methods.0.method"),
    "duration-not-a-number": (
        "teacher/evaluate.json",
        lambda r: r["measurement"].update(duration_s="long"),
        "measurement.duration_s",
    ),
}


@pytest.mark.parametrize("case", sorted(PHASE_DAMAGE))
def test_a_phase_record_without_a_required_field_names_its_file(case: str, tmp_path: Path) -> None:
    rel, change, field = PHASE_DAMAGE[case]
    run = tmp_path / "run"
    shutil.copytree(RUN_010, run)
    path = run / "entries" / rel
    _edit(path, change)
    with pytest.raises(RunFileError) as err:
        load_run(run)
    assert err.value.path == path
    assert field in err.value.problem


@pytest.mark.parametrize(
    "idle",
    [
        {"before": {"seconds": "half a second", "power_w": {"cpu:estimate": 1.0}}},
        {"before": {"power_w": {"cpu:estimate": 1.0}}},  # no seconds
        {"before": {"seconds": 0.5, "power_w": {"cpu:estimate": 1.0}, "temp_c": "warm"}},
        {"before": "yesterday"},
    ],
)
def test_an_idle_record_of_the_wrong_shape_names_idle_json(
    idle: dict[str, Any], tmp_path: Path
) -> None:
    run = tmp_path / "run"
    shutil.copytree(RUN_010, run)
    (run / "idle.json").write_text(json.dumps(idle))
    with pytest.raises(RunFileError) as err:
        load_run(run)
    assert err.value.path == run / "idle.json"
    assert "before" in err.value.problem


def test_records_in_memory_are_typed_like_files() -> None:
    with pytest.raises(ValueError, match="config_hash"):
        RunData.from_records(Path("r"), {"suite": {}}, {"e": {"train": {"status": "done"}}})


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("smoke")
    res = CliRunner().invoke(
        app, ["run", str(SUITE), "--out", str(out), "--only", "teacher", "--no-report"]
    )
    assert res.exit_code == 0, res.output
    (manifest,) = out.glob("smoke/*/manifest.json")
    return manifest.parent


def test_a_fresh_run_reads_back_typed_with_every_key_it_was_written_with(smoke_run: Path) -> None:
    run = load_run(smoke_run)
    phases = run.phases["teacher"]
    assert isinstance(phases.train, TrainRecord) and isinstance(phases.compress, CompressRecord)
    assert isinstance(phases.serve, ServeRecord) and isinstance(phases.evaluate, EvaluateRecord)
    assert [p for p, _ in phases.items()] == ["train", "compress", "serve", "evaluate"]
    for phase, rec in phases.items():
        raw = json.loads((smoke_run / "entries" / "teacher" / f"{phase}.json").read_text())
        assert rec.model_dump(mode="json", exclude_unset=True) == raw  # nothing lost or added
        assert (rec.phase, rec.entry, rec.status) == (phase, "teacher", raw["status"])
        assert rec.config_hash == run.manifest["phase_hashes"]["teacher"][phase]
    train = phases.train
    assert train.done and train.train is not None and train.train.steps == 4
    assert train.checkpoint is not None and len(train.checkpoint.sha256) == 64
    m = train.measurement
    assert m is not None and m.name == "teacher/train" and m.duration_s > 0
    raw_devices = json.loads((smoke_run / "entries/teacher/train.json").read_text())
    for d, raw_d in zip(m.devices, raw_devices["measurement"]["devices"], strict=True):
        assert (d.device, d.kind, d.source, d.energy_j) == (
            raw_d["device"],
            raw_d["kind"],
            raw_d["source"],
            raw_d["energy_j"],
        )
        assert isinstance(d.source, str) and d.charged and d.is_estimate == (d.source == "estimate")
    assert phases.compress.status == "skipped" and phases.compress.windows() == []
    serve = phases.serve
    assert serve.done and serve.device == "cpu" and serve.model is not None
    assert serve.model.params and serve.model.params > 0
    assert set(serve.scenarios) == set(run.results("teacher"))
    assert phases.evaluate.score("psnr_db") == phases.evaluate.quality["psnr_db"]
    idle = json.loads((smoke_run / "idle.json").read_text())
    assert run.idle.before is not None and run.idle.before.power_w == idle["before"]["power_w"]
    assert run.idle.model_dump(mode="json", exclude_unset=True) == idle
    # idle twice: cold before any work, active after the warm-up; the split uses the active one
    assert run.idle.active is not None and run.idle.active.warmed == ["cpu"]
    assert run.idle.split_uses == "active"
    ((_, window),) = phases.train.windows()
    split = [d for d in window.devices if d.idle_power_w is not None]
    assert all(d.idle_power_w == run.idle.active.power_w[d.device] for d in split)


def test_the_store_refuses_to_write_a_record_without_its_typed_shape(tmp_path: Path) -> None:
    from energybench.records.store import RunStore
    from energybench.records.types import RecordShapeError

    store = RunStore(tmp_path)
    ok = {"entry": "e", "phase": "train", "status": "done", "config_hash": "h"}
    store.write_phase("e", "train", ok)
    assert store.phase_path("e", "train").exists()
    no_hash = {k: v for k, v in ok.items() if k != "config_hash"}
    with pytest.raises(RecordShapeError, match="config_hash"):
        store.write_phase("e", "compress", {**no_hash, "phase": "compress"})
    assert not store.phase_path("e", "compress").exists()
    bad_scenario = {**ok, "phase": "serve", "scenarios": {"s": {"scenario": "stream"}}}
    with pytest.raises(RecordShapeError, match="scenarios.s: a stream scenario record"):
        store.write_phase("e", "serve", bad_scenario)
    assert not store.phase_path("e", "serve").exists()


def test_an_idle_record_with_an_unknown_split_basis_names_it(tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(RUN_010, run)
    base = {"seconds": 0.5, "power_w": {"cpu:estimate": 1.0}}
    (run / "idle.json").write_text(json.dumps({"before": base, "split_basis": "warm"}))
    with pytest.raises(RunFileError) as err:
        load_run(run)
    assert err.value.path == run / "idle.json" and "split_basis" in err.value.problem
    (run / "idle.json").write_text(
        json.dumps({"before": base, "active": base, "split_basis": "active"})
    )
    assert load_run(run).idle.split_uses == "active"


def test_a_fresh_runs_records_read_typed_and_written_again_are_the_same_bytes(
    smoke_run: Path, tmp_path: Path
) -> None:
    """The writer's format is the typed records' own: read into the types and written by the
    store again, every phase file is byte for byte what the run wrote (key order included)."""
    from energybench.records.phases import parse_phase
    from energybench.records.store import RunStore

    again = RunStore(tmp_path / "again")
    files = sorted((smoke_run / "entries").glob("*/*.json"))
    assert len(files) == 4
    for path in files:
        entry, phase = path.parent.name, path.stem
        rec = parse_phase(phase, json.loads(path.read_text()))
        again.write_phase(entry, phase, rec)
        assert again.phase_path(entry, phase).read_text() == path.read_text(), path


def test_the_store_writes_a_typed_record_once_as_given(tmp_path: Path) -> None:
    from energybench.records.phases import ServeRecord, TrainRecord
    from energybench.records.store import RunStore
    from energybench.records.types import RecordShapeError

    store = RunStore(tmp_path)
    rec = ServeRecord(
        entry="e",
        phase="serve",
        status="done",
        config_hash="h",
        model={"flops_per_item": 12, "params": 3},
        note=float("inf"),  # a key no type declares: kept, a non-finite float as JSON has it
        path=tmp_path,  # a value of no JSON type: its str, as ``json.dumps(default=str)``
    )
    store.write_phase("e", "serve", rec)
    text = store.phase_path("e", "serve").read_text()
    assert list(json.loads(text)) == [
        "entry",
        "phase",
        "status",
        "config_hash",
        "model",
        "note",
        "path",
    ]
    assert '"flops_per_item": 12,' in text and '"note": Infinity' in text
    assert json.loads(text)["path"] == str(tmp_path)
    train = TrainRecord(entry="e", phase="train", status="done", config_hash="h")
    with pytest.raises(RecordShapeError, match="train record written as the compress phase"):
        store.write_phase("e", "compress", train)
    assert not store.phase_path("e", "compress").exists()


def test_a_record_is_written_in_the_order_its_fields_were_given_or_set() -> None:
    from energybench.records.types import Precision

    p = Precision(reached=True, basis="all")
    p.rel_ci = 0.1  # set later: written after the rest
    p.note = "x"  # a key no type declares, too
    assert list(p.to_json()) == ["reached", "basis", "rel_ci", "note"]
    assert p.given() == {"reached": True, "basis": "all", "rel_ci": 0.1, "note": "x"}
    assert "target_ci" not in p.to_json()  # left at its default: not written
