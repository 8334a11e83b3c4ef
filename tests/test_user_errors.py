"""One user-error type: bad input exits 2 with its message, a bug is never called bad input."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from energybench.cli import app
from energybench.errors import UserError

SUITE = Path(__file__).resolve().parents[1] / "suites" / "smoke.yaml"


@pytest.mark.parametrize(
    "where, name",
    [
        ("energybench.suite.errors", "SuiteError"),
        ("energybench.records.check", "RunFileError"),
        ("energybench.run.lock", "RunLockedError"),
        ("energybench.outpaths", "OutputPathError"),
        ("energybench.records.store", "NotARunError"),
        ("energybench.records.store", "UnsafePathError"),
        ("energybench.run.resume", "ResumeError"),
        ("energybench.run.checkpoint", "CheckpointError"),
        ("energybench.meters.factory", "MeterUnavailableError"),
        ("energybench.meters.sim.profiles", "UnknownProfileError"),
        ("energybench.data.clipset", "DatasetConfigError"),
        ("energybench.models.vision.classifiers", "ModelConfigError"),
        ("energybench.errors", "SetupError"),
    ],
)
def test_every_bad_input_error_is_a_user_error(where: str, name: str) -> None:
    import importlib

    cls = getattr(importlib.import_module(where), name)
    assert issubclass(cls, UserError) and cls.exit_code == 2


def test_a_setup_problem_exits_2_with_its_message(tmp_path: Path) -> None:
    res = CliRunner().invoke(
        app, ["run", str(SUITE), "--out", str(tmp_path / "out"), "--only", "nosuch"]
    )
    assert res.exit_code == 2, res.output
    assert "--only: no entry named nosuch" in res.output and "Traceback" not in res.output
    assert not (tmp_path / "out").exists()


def _crash_reports(folder: Path) -> list[Path]:
    return sorted(folder.glob("*crash-*.txt"))


def test_a_bug_during_setup_is_a_crash_report_not_bad_input(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise ValueError("a bug in energybench, not the user's input")

    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setattr("tempfile.tempdir", str(temp))  # no run folder yet: the report goes here
    monkeypatch.setattr("energybench.run.preflight.placements", broken)
    args = ["run", str(SUITE), "--out", str(tmp_path / "out")]
    monkeypatch.setattr("sys.argv", ["energybench", *args])  # what the console script sees
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 1 and isinstance(res.exception, SystemExit), res.output
    out = " ".join(res.output.split())
    assert "stopped on a bug" in out and "ValueError: a bug in energybench" in out
    assert "Traceback" not in res.output and "bad input" not in out
    (report,) = _crash_reports(temp)
    assert str(report) in res.output.replace("\n", "")
    text = report.read_text()
    assert "Traceback (most recent call last)" in text and "in broken" in text
    assert "ValueError: a bug in energybench" in text
    assert f"command: energybench run {SUITE}" in text
    assert "energybench " in text and "torch " in text and "python " in text
    assert not (tmp_path / "out").exists()


def test_a_bug_during_a_run_saves_its_crash_report_in_the_run_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from energybench.run.runner import Runner

    write_manifest = Runner._write_manifest

    def broken(self: Runner, finished: bool = False) -> None:
        if finished:
            raise KeyError("a bug after the entries ran")
        write_manifest(self, finished)

    monkeypatch.setattr(Runner, "_write_manifest", broken)
    out = tmp_path / "out"
    res = CliRunner().invoke(
        app, ["run", str(SUITE), "--out", str(out), "--only", "bicubic", "--no-report"]
    )
    assert res.exit_code == 1 and isinstance(res.exception, SystemExit), res.output
    (run_dir,) = [p.parent for p in out.glob("smoke/*/manifest.json")]
    (report,) = _crash_reports(run_dir)
    assert report.name.startswith("crash-") and "KeyError" in report.read_text()
    flat = res.output.replace("\n", "")
    assert str(report) in flat and "--resume" in flat and "Traceback" not in res.output
    done = [p.stem for p in (run_dir / "entries").glob("*/*.json")]
    assert sorted(done) == ["compress", "evaluate", "serve", "train"]  # nothing finished is lost


def test_a_crash_report_that_cannot_be_saved_shows_the_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise ValueError("a bug in energybench")

    def unwritable(*args: object, **kwargs: object) -> Path:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("energybench.run.preflight.placements", broken)
    monkeypatch.setattr("energybench.crash.write_crash_report", unwritable)
    res = CliRunner().invoke(app, ["run", str(SUITE), "--out", str(tmp_path)])
    assert res.exit_code == 1
    assert "Traceback" in res.stderr and "could not be saved" in res.stderr


def test_the_default_report_follows_out(tmp_path: Path) -> None:
    """``run --out X`` without ``--report`` writes its report under X, not ./reports."""
    from typer.testing import CliRunner

    from energybench.cli import app

    suite = tmp_path / "s.yaml"
    suite.write_text(
        "name: tiny\nenergy: {meters: [estimate], idle_baseline_s: 0, min_window_s: 0,\n"
        "  min_window_iters: 2, trials: 1, max_trials: 1}\n"
        "defaults:\n  dataset: {name: photos, params: {patch_size: 16, test_crop: 32x32,\n"
        "    serve_lr: 16x16, seq_size: 48x48, seq_frames: 4}}\n  evaluate: {max_items: 1}\n"
        "entries:\n  - name: bicubic\n    model: {name: bicubic}\n"
    )
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    import os

    old = os.getcwd()
    os.chdir(cwd)
    try:
        res = CliRunner().invoke(app, ["run", str(suite), "--out", str(tmp_path / "out")])
    finally:
        os.chdir(old)
    assert res.exit_code == 0, res.output
    assert list((tmp_path / "out" / "reports").glob("tiny-*.html"))
    assert not (cwd / "reports").exists()
