"""`energybench validate` refuses enumerated fields with values outside their enumeration
(exit 2, file, line, field and what was expected), before any run starts."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from energybench.cli import app
from energybench.tasks.base import SRTask
from energybench.tasks.classification import ClassificationTask
from energybench.tasks.registry import TASKS

SUITE = Path(__file__).resolve().parents[2] / "suites" / "smoke.yaml"


def validate(*args: str) -> tuple[int, str]:
    res = CliRunner().invoke(app, ["validate", *args])
    assert "Traceback" not in res.output
    return res.exit_code, " ".join(res.output.split())


def test_the_quality_enumeration_is_exactly_what_the_tasks_produce() -> None:
    produced = set(SRTask.quality_keys) | set(ClassificationTask.quality_keys)
    assert set(TASKS.quality_figures()) == produced


def test_an_unknown_quality_figure_from_set_exits_2_and_says_what_is_expected() -> None:
    code, out = validate(str(SUITE), "--set", "metric.quality=sssim")
    assert code == 2
    assert "--set metric.quality=sssim" in out and "at 'metric.quality'" in out
    assert "found 'sssim'; did you mean 'ssim'?" in out
    for figure in TASKS.quality_figures():
        assert f"'{figure}'" in out


def test_an_unknown_quality_figure_in_the_file_names_file_and_line(tmp_path: Path) -> None:
    text = SUITE.read_text()
    line = next(i for i, t in enumerate(text.splitlines(), 1) if "quality: psnr_db" in t)
    bad = tmp_path / "bad.yaml"
    bad.write_text(text.replace("quality: psnr_db", "quality: top-1"))
    code, out = validate(str(bad))
    assert code == 2
    assert f"{bad}:{line}:" in out and "at 'metric.quality'" in out
    assert "expected one of 'psnr_db'," in out and "found 'top-1'; did you mean 'top1'?" in out


@pytest.mark.parametrize("figure", TASKS.quality_figures())
def test_every_known_quality_figure_validates(figure: str) -> None:
    code, out = validate(str(SUITE), "--set", f"metric.quality={figure}")
    assert code == 0, out


def test_a_literal_field_lists_its_options() -> None:
    code, out = validate(str(SUITE), "--set", "entries.teacher.train.optimizer=adamm")
    assert code == 2
    assert "expected one of 'adam', 'adamw', 'sgd'; found 'adamm'; did you mean 'adam'?" in out


def test_an_unknown_carbon_country_is_refused() -> None:
    pytest.importorskip("codecarbon")
    code, out = validate(str(SUITE), "--set", "carbon.country=FRX")
    assert code == 2 and "at 'carbon.country'" in out
    assert "no grid-intensity data for country 'FRX'" in out
    assert validate(str(SUITE), "--set", "carbon.country=fra")[0] == 0
