"""Issue 17, the run-folder half: damaged run folders, resume dead-ends, the run-folder lock,
output targets and a full disk, each through the real CLI.

Every case copies one tiny finished run (built once per session) into ``tmp_path/out``, runs
``energybench report|export|run --resume`` with ``tmp_path`` as the working directory, and
asserts the exit code, a message naming the file, no traceback, a time bound, and that nothing
changed outside the files the command may write.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from energybench.cli import app
from energybench.records import store

TIME_BOUND_S = 120  # generous: a loaded 2-core machine; a hang is what this catches

SUITE = """\
name: tiny
defaults:
  dataset:
    name: photos
    params: {patch_size: 16, test_crop: 32x32, serve_lr: 16x16, seq_size: 48x48, seq_frames: 4}
  train: {steps: 1, batch_size: 1}
  evaluate: {max_items: 1}
energy:
  idle_baseline_s: 0
  min_window_s: 0
  min_window_iters: 2
  trials: 1
  max_trials: 1
  allow_estimates_in_ranking: true
metric:
  quality: psnr_db
entries:
  - name: teacher
    model: {name: espcn, params: {channels: 4, layers: 2, first_kernel: 3}}
    serve:
      - {scenario: throughput, batch_sizes: [1], warmup: 0, iterations: 2}
  - name: child
    model: {name: espcn, params: {channels: 4, layers: 2, first_kernel: 3}}
    inherit: teacher
    serve:
      - {scenario: throughput, batch_sizes: [1], warmup: 0, iterations: 2}
"""


# --------------------------------------------------------------------------- fixtures, helpers
@pytest.fixture(scope="module")
def finished_tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """``(suite, run_dir)`` of a finished two-entry run (``child`` inherits ``teacher``)."""
    tmp = tmp_path_factory.mktemp("tiny-run")
    suite = tmp / "tiny.yaml"
    suite.write_text(textwrap.dedent(SUITE))
    res = CliRunner().invoke(app, ["run", str(suite), "--out", str(tmp / "out"), "--no-report"])
    assert res.exit_code == 0, res.output
    (manifest,) = (tmp / "out").glob("tiny/*/manifest.json")
    return suite, manifest.parent


@pytest.fixture
def run(
    finished_tiny: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[Path, Path]:
    """``(suite, run_dir)``: a private copy under ``tmp_path/out``; cwd is ``tmp_path``."""
    suite, run_dir = finished_tiny
    mine = tmp_path / "out" / "tiny" / run_dir.name
    shutil.copytree(run_dir, mine)
    shutil.copy(suite, tmp_path / "tiny.yaml")
    monkeypatch.chdir(tmp_path)
    return tmp_path / "tiny.yaml", mine


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``root`` with its size and mtime (what a command may not change)."""
    return {
        str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def cli(args: list[str]) -> tuple[Result, float]:
    """Run the real CLI in-process; returns the result and how long it took."""
    t0 = time.monotonic()
    res = CliRunner().invoke(app, [str(a) for a in args])
    return res, time.monotonic() - t0


def assert_user_error(res: Result, took: float, code: int, *located: object) -> None:
    """Exit ``code``, a located one-paragraph message, no traceback, within the time bound."""
    assert res.exit_code == code, res.output
    assert res.exception is None or isinstance(res.exception, SystemExit), res.exception
    assert "Traceback" not in res.output
    out = " ".join(res.output.split())  # rich may wrap long paths
    for item in located:
        assert str(item) in out or str(item) in res.output.replace("\n", ""), (item, res.output)
    assert took < TIME_BOUND_S


def assert_nothing_outside_out(tmp_path: Path) -> None:
    """The working folder holds only what the case put there: ``out/`` and the suite."""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "tiny.yaml"]


def rec(run_dir: Path, key: str) -> Path:
    entry, phase = key.split("/")
    return run_dir / "entries" / entry / f"{phase}.json"


def edit(path: Path, change: Callable[[dict], object]) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


# --------------------------------------------------------------------------- damaged records
def _truncate(p: Path) -> None:
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])


def _binary(p: Path) -> None:
    p.write_bytes(b"\x80\x81\xfe\xff" * 50)


def _empty(p: Path) -> None:
    p.write_bytes(b"")


def _as_list(p: Path) -> None:
    p.write_text(json.dumps([json.loads(p.read_text())]))


def _directory(p: Path) -> None:
    p.unlink()
    (p / "inside").mkdir(parents=True)


def _nan_energy(p: Path) -> None:
    p.write_text(p.read_text().replace('"energy_j": ', '"energy_j": NaN, "was": ', 1))


def _negative_energy(p: Path) -> None:
    edit(p, lambda d: d["measurement"]["devices"][0].update(energy_j=-5.0))


def _measurement_string(p: Path) -> None:
    edit(p, lambda d: d.update(measurement="lots of joules"))


def _unknown_status(p: Path) -> None:
    edit(p, lambda d: d.update(status="finished"))


def _scenarios_list(p: Path) -> None:
    edit(p, lambda d: d.update(scenarios=[1, 2]))


def _infinite_per_item(p: Path) -> None:
    text = p.read_text()
    assert '"energy_per_item_j": 0' in text or '"mean": ' in text
    edit(
        p,
        lambda d: next(iter(next(iter(d["scenarios"].values()))["by_batch"].values()))[
            "energy_per_item_j"
        ].update(mean=float("inf")),
    )


def _entries_not_list(p: Path) -> None:
    edit(p, lambda d: d["suite"].update(entries={"teacher": {}}))


def _idle_list(p: Path) -> None:
    p.write_text("[1, 2, 3]")


DAMAGED = {
    # id: (file relative to the run, damage, what the message says)
    "truncated-record": ("entries/teacher/serve.json", _truncate, "not valid JSON"),
    "binary-record": ("entries/child/evaluate.json", _binary, "not UTF-8"),
    "empty-record": ("entries/teacher/train.json", _empty, "is empty"),
    "record-is-a-list": ("entries/teacher/evaluate.json", _as_list, "a JSON object"),
    "record-is-a-directory": ("entries/child/serve.json", _directory, "is a directory"),
    "nan-energy": ("entries/teacher/train.json", _nan_energy, "NaN"),
    "negative-energy": ("entries/teacher/train.json", _negative_energy, "cannot be negative"),
    "mistyped-measurement": ("entries/teacher/train.json", _measurement_string, "measurement"),
    "unknown-status": ("entries/child/compress.json", _unknown_status, "status"),
    "scenarios-not-an-object": ("entries/teacher/serve.json", _scenarios_list, "scenarios"),
    "infinite-energy-per-item": ("entries/child/serve.json", _infinite_per_item, "Infinity"),
    "manifest-is-a-list": ("manifest.json", _as_list, "a JSON object"),
    "manifest-truncated": ("manifest.json", _truncate, "not valid JSON"),
    "manifest-entries-mistyped": ("manifest.json", _entries_not_list, "suite.entries"),
    "idle-is-a-list": ("idle.json", _idle_list, "idle"),
}


@pytest.mark.parametrize("command", ["report", "export"])
@pytest.mark.parametrize("case", list(DAMAGED), ids=list(DAMAGED))
def test_a_damaged_run_is_a_located_user_error(
    run: tuple[Path, Path], tmp_path: Path, case: str, command: str
) -> None:
    _, run_dir = run
    name, damage, why = DAMAGED[case]
    damage(run_dir / name)
    before = snapshot(tmp_path)
    target = tmp_path / ("r.html" if command == "report" else "r.csv")

    res, took = cli([command, run_dir, "-o", target])

    assert_user_error(res, took, 2, run_dir / name, why)
    assert not target.exists() and snapshot(tmp_path) == before  # nothing written anywhere


def test_a_missing_manifest_says_it_is_not_a_run(run: tuple[Path, Path], tmp_path: Path) -> None:
    _, run_dir = run
    (run_dir / "manifest.json").unlink()
    res, took = cli(["report", run_dir, "-o", tmp_path / "r.html"])
    assert_user_error(res, took, 2, run_dir, "not an energybench run directory")


def test_an_intact_copy_still_reports(run: tuple[Path, Path], tmp_path: Path) -> None:
    """The control case: the corpus fails because of the damage, not because of the copy."""
    _, run_dir = run
    res, took = cli(["export", run_dir, "-o", tmp_path / "r.csv"])
    assert_user_error(res, took, 0)
    assert (tmp_path / "r.csv").stat().st_size > 0


# --------------------------------------------------------------------------- resume
def resume(suite: Path, run_dir: Path) -> tuple[Result, float]:
    return cli(["run", suite, "--resume", run_dir, "--no-report"])


@pytest.mark.parametrize(
    "case", ["truncated-record", "binary-record", "nan-energy", "negative-energy", "unknown-status"]
)
def test_resume_redoes_a_damaged_phase(run: tuple[Path, Path], tmp_path: Path, case: str) -> None:
    suite, run_dir = run
    name, damage, _ = DAMAGED[case]
    if name.startswith("entries/teacher/train"):  # keep the case cheap: damage a late phase
        name = "entries/child/evaluate.json"
        if case == "negative-energy":
            damage = _negative_energy
    damage(run_dir / name)
    outside = snapshot(tmp_path / "tiny.yaml")

    res, took = resume(suite, run_dir)

    assert_user_error(res, took, 0, run_dir / name, "damaged", "redoing it")
    data = json.loads((run_dir / name).read_text())
    assert data["status"] in ("done", "skipped") and data["config_hash"]
    assert snapshot(tmp_path / "tiny.yaml") == outside
    assert_nothing_outside_out(tmp_path)


def test_resume_refuses_a_directory_in_place_of_a_record(run: tuple[Path, Path]) -> None:
    suite, run_dir = run
    _directory(run_dir / "entries/teacher/serve.json")
    res, took = resume(suite, run_dir)
    assert_user_error(res, took, 2, run_dir / "entries/teacher/serve.json", "is a directory")


@pytest.mark.parametrize("case", ["manifest-is-a-list", "manifest-truncated"])
def test_resume_of_a_damaged_manifest_exits_2(run: tuple[Path, Path], case: str) -> None:
    suite, run_dir = run
    name, damage, why = DAMAGED[case]
    damage(run_dir / name)
    before = snapshot(run_dir)
    res, took = resume(suite, run_dir)
    assert_user_error(res, took, 2, run_dir / name, why)
    assert snapshot(run_dir) == before and not (run_dir / "run.lock").exists()


def test_resume_measures_a_damaged_idle_baseline_again(run: tuple[Path, Path]) -> None:
    suite, run_dir = run
    (run_dir / "idle.json").write_text('{"before": {"power_w": {"gpu": -1}}}')
    res, took = resume(suite, run_dir)
    assert_user_error(res, took, 0, run_dir / "idle.json", "measuring the idle baseline again")
    assert json.loads((run_dir / "idle.json").read_text())["before"]["power_w"] == {}
    assert_nothing_outside_out(run_dir.parents[2])


@pytest.mark.parametrize("how", ["deleted", "truncated"])
def test_resume_redoes_a_phase_whose_checkpoint_is_gone(run: tuple[Path, Path], how: str) -> None:
    """A finished phase whose checkpoint no longer matches its record's sha256 is redone, and
    so is everything built on it (here: ``child`` inherits the trained ``teacher``)."""
    suite, run_dir = run
    ckpt = run_dir / "entries/teacher/checkpoints/train.pt"
    old_sha = json.loads(rec(run_dir, "teacher/train").read_text())["checkpoint"]["sha256"]
    if how == "deleted":
        ckpt.unlink()
    else:
        _truncate(ckpt)

    res, took = resume(suite, run_dir)

    assert_user_error(res, took, 0, ckpt, "damaged", "teacher/train")
    assert "child/train: redoing it, because teacher/train was redone" in " ".join(
        res.output.split()
    )
    new = json.loads(rec(run_dir, "teacher/train").read_text())["checkpoint"]
    assert new["sha256"] == store.file_sha256(ckpt) == old_sha  # seeded: the same weights
    assert "reused 0 finished" in res.output  # every phase depends on teacher/train
    if how == "deleted":  # and the run is whole again (once is enough: it costs a resume)
        res, took = resume(suite, run_dir)
        assert_user_error(res, took, 0, "reused 8 finished")
    assert_nothing_outside_out(run_dir.parents[2])


def test_a_checkpoint_load_failure_names_the_path(run: tuple[Path, Path]) -> None:
    """A checkpoint that matches its record but not its recipe: the entry fails, naming it."""
    suite, run_dir = run
    recipe = run_dir / "entries/teacher/checkpoints/train.recipe.json"
    edit(recipe, lambda d: d.update(state_sha256="0" * 64))
    rec(run_dir, "teacher/evaluate").unlink()
    res, took = resume(suite, run_dir)
    assert_user_error(res, took, 1, run_dir / "entries/teacher/checkpoints/train.pt")


# --------------------------------------------------------------------------- the run-folder lock
def test_a_second_writer_is_refused_naming_the_holder(
    run: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two real processes: this one resumes the run and is held by the test hook just before a
    phase, holding the lock; a second ``energybench run --resume`` process of the same folder
    exits 2 naming the holder (pid, host, since) and does no work."""
    suite, run_dir = run
    rec(run_dir, "child/evaluate").unlink()
    hold = tmp_path / "hold"
    hold.write_text("")
    monkeypatch.setenv("ENERGYBENCH_TEST_HOLD", f"child/evaluate:{hold}")
    first: dict[str, Result] = {}
    writer = threading.Thread(target=lambda: first.update(res=resume(suite, run_dir)[0]))
    writer.start()
    try:
        deadline = time.monotonic() + 300
        while not Path(f"{hold}.ready").exists():
            assert writer.is_alive() and time.monotonic() < deadline, "run ended too early"
            time.sleep(0.02)
        env = {k: v for k, v in os.environ.items() if k != "ENERGYBENCH_TEST_HOLD"}
        t0 = time.monotonic()
        second = subprocess.run(
            [sys.executable, "-m", "energybench", "run", str(suite), "--resume", str(run_dir)],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            env=env,
            timeout=300,
        )
        took = time.monotonic() - t0
        assert second.returncode == 2, second.stdout + second.stderr
        assert "Traceback" not in second.stderr and took < TIME_BOUND_S
        assert str(run_dir / "run.lock") in second.stderr.replace("\n", "")
        err = " ".join(second.stderr.split())
        assert f"pid {os.getpid()} on host {socket.gethostname()} since" in err
        assert not rec(run_dir, "child/evaluate").exists()  # the second one did no work
        names = sorted(p.name for p in tmp_path.iterdir())
        assert names == ["hold", "hold.ready", "out", "tiny.yaml"]  # nothing outside --out
    finally:
        hold.unlink()
        writer.join(timeout=300)
    assert first["res"].exit_code == 0, first["res"].output
    assert json.loads(rec(run_dir, "child/evaluate").read_text())["status"] == "done"
    assert not (run_dir / "run.lock").exists()


def test_a_stale_lock_of_a_killed_run_is_taken_over(run: tuple[Path, Path], tmp_path: Path):
    suite, run_dir = run
    victim = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    lock = {"pid": victim.pid, "host": socket.gethostname(), "since_unix_s": time.time() - 60}
    (run_dir / "run.lock").write_text(json.dumps(lock))
    rec(run_dir, "child/evaluate").unlink()

    res, took = resume(suite, run_dir)

    assert_user_error(res, took, 0, "took over the stale lock", f"pid {victim.pid}")
    assert "no longer running" in res.output
    assert not (run_dir / "run.lock").exists()
    assert json.loads(rec(run_dir, "child/evaluate").read_text())["status"] == "done"
    assert_nothing_outside_out(tmp_path)


# --------------------------------------------------------------------------- output targets
def _unwritable(tmp_path: Path) -> Path:
    if os.geteuid() == 0:
        pytest.skip("root can write into a read-only folder; covered by the parent-is-a-file cases")
    folder = tmp_path / "readonly"
    folder.mkdir()
    folder.chmod(0o555)
    return folder


OUTPUTS = {
    # id: (command builder given (suite, run_dir, tmp_path), offending path, reason)
    "report-into-a-directory": (
        lambda s, r, t: ["report", r, "-o", t / "out"],
        lambda t: t / "out",
        "is a directory",
    ),
    "report-parent-is-a-file": (
        lambda s, r, t: ["report", r, "-o", t / "tiny.yaml" / "r.html"],
        lambda t: t / "tiny.yaml",
        "is a file, not a folder",
    ),
    "report-unwritable-folder": (
        lambda s, r, t: ["report", r, "-o", _unwritable(t) / "r.html"],
        lambda t: t / "readonly",
        "not writable",
    ),
    "export-into-a-directory": (
        lambda s, r, t: ["export", r, "-o", t / "out"],
        lambda t: t / "out",
        "is a directory",
    ),
    "export-parent-is-a-file": (
        lambda s, r, t: ["export", r, "-o", t / "tiny.yaml" / "deep" / "r.csv"],
        lambda t: t / "tiny.yaml",
        "is a file, not a folder",
    ),
    "export-split-into-a-file": (
        lambda s, r, t: ["export", r, "--split", "-o", t / "tiny.yaml"],
        lambda t: t / "tiny.yaml",
        "is a file, not a folder",
    ),
    "run-out-is-a-file": (
        lambda s, r, t: ["run", s, "--out", t / "tiny.yaml", "--no-report"],
        lambda t: t / "tiny.yaml",
        "is a file, not a folder",
    ),
    "run-out-parent-is-a-file": (
        lambda s, r, t: ["run", s, "--out", t / "tiny.yaml" / "results", "--no-report"],
        lambda t: t / "tiny.yaml",
        "is a file, not a folder",
    ),
    "run-report-into-a-directory": (
        lambda s, r, t: ["run", s, "--out", t / "new", "--report", t / "out"],
        lambda t: t / "out",
        "is a directory",
    ),
    "run-report-parent-is-a-file": (
        lambda s, r, t: ["run", s, "--out", t / "new", "--report", t / "tiny.yaml" / "r.html"],
        lambda t: t / "tiny.yaml",
        "is a file, not a folder",
    ),
    "run-default-reports-is-a-file": (  # the default report folder follows --out
        lambda s, r, t: (
            (t / "new").mkdir()
            or (t / "new" / "reports").write_text("x")
            and ["run", s, "--out", t / "new"]
        ),
        lambda t: f"report folder {t / 'new' / 'reports'}",
        "is a file, not a folder",
    ),
    "resume-report-into-a-directory": (
        lambda s, r, t: ["run", s, "--resume", r, "--report", t / "out"],
        lambda t: t / "out",
        "is a directory",
    ),
    "run-out-unwritable": (
        lambda s, r, t: ["run", s, "--out", _unwritable(t) / "results", "--no-report"],
        lambda t: t / "readonly",
        "not writable",
    ),
}


@pytest.mark.parametrize("case", list(OUTPUTS), ids=list(OUTPUTS))
def test_an_unwritable_output_exits_2_before_any_work(
    run: tuple[Path, Path], tmp_path: Path, case: str
) -> None:
    suite, run_dir = run
    build, offending, why = OUTPUTS[case]
    args = build(suite, run_dir, tmp_path)
    before = snapshot(tmp_path)

    res, took = cli(args)

    assert_user_error(res, took, 2, offending(tmp_path), why)
    assert snapshot(tmp_path) == before  # no run folder, no phase, no report: nothing at all
    assert not (tmp_path / "new").exists() or case == "run-default-reports-is-a-file"


# --------------------------------------------------------------------------- a full disk
def test_a_full_disk_fails_the_phase_cleanly_and_resume_recovers(
    run: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ENOSPC injected where the store flushes a file to disk: the serve record of ``teacher``
    cannot be written. The run stops with exit 1 naming the file, earlier records intact and
    no temporary file left; ``--resume`` afterwards finishes the run."""
    suite, run_dir = run
    for key in ("teacher/serve", "teacher/evaluate"):
        rec(run_dir, key).unlink()
    intact = {k: rec(run_dir, k).read_text() for k in ("teacher/train", "child/serve")}
    real_sync = store._sync
    full = run_dir / "entries/teacher/serve.json"

    def sync(fh: object, path: Path) -> None:
        if path == full:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_sync(fh, path)

    monkeypatch.setattr(store, "_sync", sync)
    res, took = resume(suite, run_dir)
    assert_user_error(res, took, 1, full, "no space left on device", "--resume")
    assert not full.exists() and not list(full.parent.glob(".*.tmp"))
    assert {k: rec(run_dir, k).read_text() for k in intact} == intact
    assert not (run_dir / "run.lock").exists()

    monkeypatch.setattr(store, "_sync", real_sync)  # space freed
    res, took = resume(suite, run_dir)
    assert_user_error(res, took, 0, "reused 6 finished")
    assert json.loads(full.read_text())["status"] == "done"
    assert_nothing_outside_out(tmp_path)
