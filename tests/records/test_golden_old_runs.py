"""Runs written by energybench 0.1.0 (store version 1) and 0.2.0 (store version 2) render and
export exactly as they did: every export format, the report's tables, the terminal summary,
``compare`` and ``plan`` are checked against golden files made by the code before the record
model was unified. Regenerate (after a deliberate change of output) with
``EB_REGEN_GOLDEN=1 pytest tests/records/test_golden_old_runs.py``."""

from __future__ import annotations

import io
import json
import os
import re
import time
from html.parser import HTMLParser
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from energybench import cli
from energybench.records.store import load_run
from energybench.report import terminal

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
GOLDEN = FIXTURES / "golden"
RUNS = {"0.1.0": FIXTURES / "run-0.1.0", "0.2.0": FIXTURES / "run-0.2.0"}


def _invoke(*args: str) -> str:
    res = CliRunner().invoke(cli.app, list(args), terminal_width=160)
    assert res.exit_code in (0, 1), res.output
    return res.output


class _Tables(HTMLParser):
    """The text of every table cell of a report, row by row (figures and scripts left out:
    the tables carry the numbers)."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self._cell: list[str] | None = None
        self._depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table":
            self._depth += 1
        elif tag == "tr" and self._depth:
            self.rows.append([])
        elif tag in ("td", "th") and self._depth:
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self._depth -= 1
        elif tag in ("td", "th") and self._cell is not None and self.rows:
            self.rows[-1].append(re.sub(r"\s+", " ", "".join(self._cell)).strip())
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def _report_tables(run: Path, tmp: Path) -> str:
    out = tmp / "report.html"
    _invoke("report", str(run), "-o", str(out))
    parser = _Tables()
    parser.feed(out.read_text(encoding="utf-8"))
    return "\n".join(" | ".join(r) for r in parser.rows) + "\n"


def _export(run: Path, fmt: str, tmp: Path) -> str:
    out = tmp / f"export.{fmt}"
    _invoke("export", str(run), "--format", fmt, "-o", str(out))
    text = out.read_text(encoding="utf-8")
    if fmt == "json":  # key order is not part of the contract; values are
        text = json.dumps(json.loads(text), indent=1, sort_keys=True) + "\n"
    return text


def _glance(run: Path) -> str:
    buf = io.StringIO()
    Console(file=buf, width=160, color_system=None).print(terminal.glance(load_run(run)))
    return buf.getvalue()


def outputs(run: Path, tmp: Path) -> dict[str, str]:
    """Every rendering of ``run`` a reader sees, by golden file name."""
    tmp.mkdir(parents=True, exist_ok=True)
    return {
        "export.csv": _export(run, "csv", tmp),
        "export.json": _export(run, "json", tmp),
        "export.tex": _export(run, "latex", tmp),
        "report-tables.txt": _report_tables(run, tmp),
        "glance.txt": _glance(run),
        "compare.txt": _invoke("compare", str(run), str(run)),
        "plan.txt": _invoke("plan", str(run), "--p99-ms", "1000", "--rate", "5"),
        "plan.json": _invoke("plan", str(run), "--p99-ms", "1000", "--rate", "5", "-f", "json"),
    }


def _scrub(text: str, run: Path) -> str:
    """The run folder's absolute path differs between checkouts."""
    return text.replace(str(run), "<RUN>").replace(str(run.parent), "<FIXTURES>")


@pytest.mark.parametrize("version", sorted(RUNS))
def test_an_old_run_renders_and_exports_as_it_did(
    version: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TZ", "UTC")  # the report shows local times
    time.tzset()
    run = RUNS[version]
    golden = GOLDEN / version
    got = {name: _scrub(text, run) for name, text in outputs(run, tmp_path).items()}
    if os.environ.get("EB_REGEN_GOLDEN"):
        golden.mkdir(parents=True, exist_ok=True)
        for name, text in got.items():
            (golden / name).write_text(text, encoding="utf-8")
    for name, text in got.items():
        assert text == (golden / name).read_text(encoding="utf-8"), f"{version}: {name} changed"
