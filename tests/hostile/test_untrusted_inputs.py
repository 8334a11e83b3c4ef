"""Issue 28, the small ones: each bad input is exit 2 with a located message, before any work,
no traceback, within a time bound, and nothing written outside the test's folder; and no write
inside a run folder follows a link planted while the run goes on."""

from __future__ import annotations

import errno
import gzip
import json
import os
import pickle
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner, Result

from energybench.cli import app
from energybench.data.clipset import DatasetConfigError
from energybench.data.digits import read_idx
from energybench.data.images import CifarDataset
from energybench.records import safefs
from energybench.records.store import DiskFullError, RunStore, atomic_write_json
from energybench.run.lock import RunLock

TIME_BOUND_S = 120


def cli(args: list[object]) -> tuple[Result, float]:
    t0 = time.monotonic()
    res = CliRunner().invoke(app, [str(a) for a in args])
    return res, time.monotonic() - t0


def assert_user_error(res: Result, took: float, *located: str) -> None:
    assert res.exit_code == 2, res.output
    assert res.exception is None or isinstance(res.exception, SystemExit), res.exception
    assert "Traceback" not in res.output
    out = " ".join(res.output.split())
    for item in located:
        assert item in out or item in res.output.replace("\n", ""), (item, res.output)
    assert took < TIME_BOUND_S


# --------------------------------------------------------------------------- plan
@pytest.mark.parametrize("value", ["nan", "-inf", "inf"])
def test_plan_refuses_a_non_finite_quality_floor(tmp_path: Path, value: str) -> None:
    res, took = cli(["plan", tmp_path, "--p99-ms", "10", "--rate", "1", "--min-quality", value])
    assert_user_error(res, took, "--min-quality must be a finite number")


def test_plan_json_is_strict_json() -> None:
    from energybench.cli import _finite_json

    doc = {"a": float("-inf"), "b": [float("nan"), 1.5], "c": {"d": float("inf")}}
    assert json.loads(json.dumps(_finite_json(doc), allow_nan=False)) == {
        "a": None,
        "b": [None, 1.5],
        "c": {"d": None},
    }


# --------------------------------------------------------------------------- suites
@pytest.mark.parametrize(
    ("text", "where", "code"),
    [
        ("name: x\nentries:\n  - name: a\x00b\n", ":3:12:", "U+0000"),
        ("name: x\x07\n", ":1:8:", "U+0007"),
        ("# ok\nname: \ufffe\n", ":2:7:", "U+FFFE"),
    ],
)
def test_an_unacceptable_character_is_located_by_line_and_column(
    tmp_path: Path, text: str, where: str, code: str
) -> None:
    suite = tmp_path / "s.yaml"
    suite.write_text(text, encoding="utf-8")
    res, took = cli(["validate", suite])
    assert_user_error(res, took, f"{suite}{where}", code)


def test_validate_on_a_fifo_says_not_a_regular_file(tmp_path: Path) -> None:
    fifo = tmp_path / "suite.yaml"
    os.mkfifo(fifo)
    res, took = cli(["validate", fifo])
    assert_user_error(res, took, str(fifo), "not a regular file")


def test_validate_checks_dataset_roots_as_run_does(tmp_path: Path) -> None:
    suite = tmp_path / "s.yaml"
    suite.write_text(
        "name: c\ndefaults:\n  dataset: {name: cifar, params: {root: /etc}}\n"
        "metric: {quality: top1}\nentries:\n  - name: r\n    model: {name: 'tv:resnet18'}\n"
        "    serve: [{scenario: throughput, batch_sizes: [1]}]\n"
    )
    res, took = cli(["validate", suite])
    assert_user_error(res, took, "/etc", "not found")


# --------------------------------------------------------------------------- output paths
@pytest.mark.parametrize("out", ["/proc/energybench-test", "/sys/kernel/energybench", "/proc/self"])
def test_out_on_a_kernel_file_system_exits_2_before_work(tmp_path: Path, out: str) -> None:
    from tests.hostile.test_run_folders import SUITE

    suite = tmp_path / "s.yaml"
    suite.write_text(SUITE)
    res, took = cli(["run", suite, "--out", out, "--no-report"])
    assert_user_error(res, took, out, "file system, not a place for files")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.yaml"]


# --------------------------------------------------------------------------- running out of room
@pytest.mark.parametrize(
    ("code", "said"),
    [
        (errno.ENOSPC, "no space left on device"),
        (errno.EFBIG, "file size limit (ulimit -f)"),
        (errno.EDQUOT, "quota"),
    ],
)
def test_running_out_of_room_names_the_file_and_what_ran_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int, said: str
) -> None:
    from energybench.records import store

    def full(fh: object, path: Path) -> None:
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(store, "_sync", full)
    path = tmp_path / "run" / "entries" / "a" / "train.json"
    with pytest.raises(DiskFullError) as info:
        atomic_write_json(path, {"x": 1})
    assert str(info.value).startswith(f"{path}: ") and said in str(info.value)
    assert list(path.parent.iterdir()) == []  # the temporary file is gone too


# --------------------------------------------------------------------------- data files
def _cifar_root(tmp_path: Path, payload: bytes) -> Path:
    root = tmp_path / "cifar-10-batches-py"
    root.mkdir()
    for name in [*(f"data_batch_{i}" for i in range(1, 6)), "test_batch", "batches.meta"]:
        (root / name).write_bytes(payload)
    return root


class _Evil:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, ("echo pwned > /tmp/energybench-pwned",))


@pytest.mark.parametrize(
    ("payload", "said"),
    [
        (pickle.dumps(_Evil()), "refused to load global"),
        (pickle.dumps({b"data": np.zeros((2, 3072), np.uint8)})[:40], "truncated, damaged"),
        (b"not a pickle at all", "not a CIFAR python batch"),
        (pickle.dumps([1, 2, 3]), "not a dictionary"),
    ],
)
def test_an_undecodable_cifar_batch_is_bad_input_naming_the_file(
    tmp_path: Path, payload: bytes, said: str
) -> None:
    root = _cifar_root(tmp_path, payload)
    with pytest.raises(DatasetConfigError, match=said) as info:
        CifarDataset(root=root)
    assert str(root / "data_batch_1") in str(info.value)
    assert not Path("/tmp/energybench-pwned").exists()


def test_a_truncated_gzip_idx_file_is_bad_input_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "train-images-idx3-ubyte.gz"
    whole = gzip.compress(b"\x00\x00\x08\x01" + (4).to_bytes(4, "big") + b"abcd")
    path.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(DatasetConfigError, match="truncated or damaged") as info:
        read_idx(path)
    assert str(path) in str(info.value)


# ------------------------------------------------------------- links planted while a run goes on
def test_a_lock_file_planted_as_a_link_is_never_truncated(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    run = tmp_path / "run"
    run.mkdir()
    (run / "run.lock").symlink_to(victim)
    with pytest.raises(safefs.LinkInRunError, match="run.lock: is a symbolic link"):
        RunLock(run).acquire()
    assert victim.read_text() == "precious\n"


def test_a_trace_planted_as_a_link_is_never_appended_to(tmp_path: Path) -> None:
    from energybench.meters.sampler import TraceWriter

    victim = tmp_path / "victim.csv"
    victim.write_text("precious\n")
    store = RunStore(tmp_path / "run")
    trace = store.trace_dir / "power-nvml.csv"
    trace.symlink_to(victim)
    with pytest.raises(safefs.LinkInRunError, match="power-nvml.csv"):
        TraceWriter(trace)
    assert victim.read_text() == "precious\n"


def test_a_folder_planted_as_a_link_is_never_written_through(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    store = RunStore(tmp_path / "run")
    store.root.mkdir()
    (store.root / "entries").symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(safefs.LinkInRunError, match="entries: is a symbolic link"):
        store.write_phase("a", "evaluate", {"entry": "a", "phase": "evaluate"})
    with pytest.raises(safefs.LinkInRunError, match="entries: is a symbolic link"):
        store.checkpoint_path("a", "train")
    assert list(elsewhere.iterdir()) == []


def test_a_checkpoint_folder_planted_as_a_link_is_never_written_through(tmp_path: Path) -> None:
    from energybench.records.store import atomic_write_bytes

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    store = RunStore(tmp_path / "run")
    entry = store.entry_dir("a")
    entry.mkdir(parents=True)
    (entry / "checkpoints").symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(safefs.LinkInRunError, match="checkpoints: is a symbolic link"):
        atomic_write_bytes(entry / "checkpoints" / "train.pt", b"tensors")
    assert list(elsewhere.iterdir()) == []


def test_a_fifo_in_place_of_the_lock_is_refused_without_blocking(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    os.mkfifo(run / "run.lock")
    t0 = time.monotonic()
    with pytest.raises(safefs.LinkInRunError, match="is a FIFO"):
        RunLock(run).acquire()
    assert time.monotonic() - t0 < 5


@pytest.mark.parametrize("name", ["run.lock", "traces/power-nvml.csv"])
def test_a_hard_link_where_the_run_writes_in_place_is_refused(tmp_path: Path, name: str) -> None:
    """The lock is truncated and rewritten, a trace appended to: a hard link there would change
    the file under its other name (outside the run) too."""
    from energybench.meters.sampler import TraceWriter

    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    store = RunStore(tmp_path / "run")
    store.trace_dir  # noqa: B018 - creates run/traces
    os.link(victim, store.root / name)
    with pytest.raises(safefs.LinkInRunError, match="is a hard link"):
        RunLock(store.root).acquire() if name == "run.lock" else TraceWriter(store.root / name)
    assert victim.read_text() == "precious\n"


def _png(path: Path, size: int = 32) -> bytes:
    from PIL import Image

    noise = np.random.default_rng(0).integers(0, 256, (size, size, 3), dtype=np.uint8)
    Image.fromarray(noise).save(path)  # noise: the pixel data is most of the file
    return path.read_bytes()


@pytest.mark.parametrize("damage", ["not an image", "truncated"])
def test_an_undecodable_image_is_bad_input_naming_the_file(tmp_path: Path, damage: str) -> None:
    """A frame or a class-folder image that cannot be decoded names the file (exit 2), as an
    undecodable CIFAR batch does, in the SR frame reader and in imagefolder alike."""
    from energybench.data.frames import read_rgb
    from energybench.data.images import ImageFolderDataset

    root = tmp_path / "images"
    for cls in ("a", "b"):
        (root / cls).mkdir(parents=True)
        for i in range(5):
            _png(root / cls / f"{i}.png")
    bad = root / "a" / "0.png"
    whole = bad.read_bytes()
    bad.write_bytes(b"<html>not an image</html>" if damage == "not an image" else whole[:500])
    with pytest.raises(DatasetConfigError, match="cannot be decoded as an image") as info:
        read_rgb(bad)
    assert str(bad) in str(info.value) and info.value.exit_code == 2
    ds = ImageFolderDataset(root=str(root), image_size=32, val_fraction=0, test_fraction=0)
    index = np.arange(len(ds.labels["train"]))
    with pytest.raises(DatasetConfigError, match=str(bad)):
        ds.load("train", index)


@pytest.mark.parametrize(
    "holder",
    [
        {"pid": 10**30, "since_unix_s": 1e308},
        {"pid": -1, "since_unix_s": float("nan")},
        {"pid": 0, "since_unix_s": -5},
        {"pid": True, "since_unix_s": "yesterday", "host": ["x"]},
    ],
)
def test_a_hand_edited_stale_lock_is_taken_over(tmp_path: Path, holder: dict) -> None:
    """A stale lock whose holder was edited (a pid no process has, -1 that would signal every
    process, a date no clock shows) is taken over with a note, never a traceback."""
    import socket

    run = tmp_path / "run"
    run.mkdir()
    text = json.dumps({"host": socket.gethostname(), **holder})
    (run / "run.lock").write_text(text.replace("1e+308", "1" + "0" * 400))
    with RunLock(run) as lock:
        assert lock.note is not None and "pid ? on host" in lock.note
        assert "an unknown time" in lock.note


@pytest.mark.parametrize(
    ("node", "said"),
    [
        ("[]", "must be a JSON object"),
        ('{"placement": "cpu", "environment": {}}', "phase_hashes: missing"),
        ('{"phase_hashes": {}, "placement": 3, "environment": {}}', "placement: must be a str"),
        ('{"phase_hashes": {}, "placement": "cpu", "environment": {}, "meters": [1]}', "meters"),
        ("{truncated", "cannot be read"),
    ],
)
def test_a_hand_edited_job_record_is_named(tmp_path: Path, node: str, said: str) -> None:
    """``--resume --executor``: an earlier job's ``node.json`` is read by the parent; a damaged
    one names the file and field (exit 2), never a KeyError in the manifest's assembly."""
    from energybench.records.check import RunFileError
    from energybench.run.executors import read_node

    path = tmp_path / "node.json"
    path.write_text(node)
    with pytest.raises(RunFileError, match=said) as info:
        read_node(path)
    assert str(info.value).startswith(f"{path}: ") and info.value.exit_code == 2
