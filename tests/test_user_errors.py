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
        ("energybench.records", "RunFileError"),
        ("energybench.runlock", "RunLockedError"),
        ("energybench.outpaths", "OutputPathError"),
        ("energybench.store", "NotARunError"),
        ("energybench.store", "UnsafePathError"),
        ("energybench.lifecycle.runner", "ResumeError"),
        ("energybench.lifecycle.checkpoint", "CheckpointError"),
        ("energybench.meters.factory", "MeterUnavailableError"),
        ("energybench.meters.simulate", "UnknownProfileError"),
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


def test_a_bug_during_setup_is_not_reported_as_bad_input(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise ValueError("a bug in energybench, not the user's input")

    monkeypatch.setattr("energybench.lifecycle.runner.placements", broken)
    res = CliRunner().invoke(app, ["run", str(SUITE), "--out", str(tmp_path / "out")])
    assert res.exit_code == 1 and isinstance(res.exception, ValueError)
    assert "a bug in energybench" in str(res.exception)
