"""The run store keeps every file inside the run directory, and every new run inside ``--out``,
whatever names a suite or a (possibly crafted) manifest holds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from energybench.records.check import RunFileError
from energybench.records.safefs import LinkInRunError
from energybench.records.store import RunStore, UnsafePathError, load_run


@pytest.mark.parametrize("name", ["..", ".", "", "../x", "a/b", "a\\b", ".hidden", "x\0"])
def test_entry_names_that_leave_entries_are_refused(tmp_path: Path, name: str) -> None:
    store = RunStore(tmp_path / "run")
    with pytest.raises(UnsafePathError, match="outside the run directory"):
        store.write_phase(name, "train", {"status": "done"})
    with pytest.raises(UnsafePathError):
        store.checkpoint_path(name, "train")
    assert list(tmp_path.rglob("*")) == []


def test_ordinary_names_stay_where_they_belong(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "run")
    rec = {"entry": "+cmd..v2", "phase": "train", "status": "done", "config_hash": "h"}
    store.write_phase("+cmd..v2", "train", rec)
    assert (tmp_path / "run/entries/+cmd..v2/train.json").is_file()
    assert (
        store.checkpoint_path("a.b", "compress")
        == tmp_path / "run/entries/a.b/checkpoints/compress.pt"
    )


def test_a_symlinked_entry_folder_pointing_outside_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (tmp_path / "run/entries").mkdir(parents=True)
    (tmp_path / "run/entries/evil").symlink_to(outside)
    store = RunStore(tmp_path / "run")
    with pytest.raises(LinkInRunError, match="entries/evil: is a symbolic link"):
        store.write_phase("evil", "train", {"status": "done"})
    assert list(outside.iterdir()) == []


@pytest.mark.parametrize("suite_name", ["..", ".", "", "../..", "a/b", ".x"])
def test_a_new_run_never_lands_outside_out(tmp_path: Path, suite_name: str) -> None:
    out = tmp_path / "a" / "out"
    with pytest.raises(UnsafePathError, match="suite name"):
        RunStore.create(out, suite_name, "0123456789abcdef")
    assert list(tmp_path.rglob("*")) == []


def test_a_new_run_is_created_inside_out(tmp_path: Path) -> None:
    store = RunStore.create(tmp_path / "out", "vsr", "0123456789abcdef")
    assert store.root.parent == tmp_path / "out" / "vsr" and store.root.is_dir()


def test_a_crafted_manifest_cannot_make_reports_read_outside(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    secret = tmp_path / "train.json"
    secret.write_text(json.dumps({"status": "done", "secret": 1}))
    manifest = {"suite": {"name": "s", "entries": [{"name": "../..", "model": {"name": "x"}}]}}
    (run / "manifest.json").write_text(json.dumps(manifest))
    # the typed suite refuses the name, naming the manifest, before any path is built from it
    refused = r"manifest.json: suite: .*entry name '\.\./\.\.'.*outside"
    with pytest.raises(RunFileError, match=refused):
        load_run(run)
