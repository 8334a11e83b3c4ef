"""README's sample terminal output is what the program prints for a recorded smoke run.

The block between ``<!-- sample-output ... -->`` and ``<!-- /sample-output -->`` in README.md
must equal what ``energybench report`` prints for ``tests/fixtures/readme/<run-id>`` (a smoke
suite run recorded on a 2-core CPU), so the README cannot drift from the program. After a
deliberate change to the terminal output, regenerate it with
``ENERGYBENCH_UPDATE_README=1 pytest tests/report/test_readme_sample.py`` and review the diff.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from typer.testing import CliRunner

from energybench.cli import app

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
(RUN,) = (ROOT / "tests" / "fixtures" / "readme").iterdir()
BLOCK = re.compile(r"(<!-- sample-output:.*?-->\n```\n)(.*?)(```\n<!-- /sample-output -->)", re.S)


def program_output(tmp_path: Path) -> str:
    """The leaderboard, break-even and notes ``energybench report`` prints (no report path)."""
    res = CliRunner().invoke(app, ["report", str(RUN), "-o", str(tmp_path / "r.html")])
    assert res.exit_code == 0, res.output
    lines = [ln.rstrip() for ln in res.stdout.splitlines() if not ln.startswith("report: ")]
    return "\n".join(lines).strip("\n") + "\n"


def test_readme_sample_output_is_the_programs(tmp_path: Path) -> None:
    text = README.read_text(encoding="utf-8")
    m = BLOCK.search(text)
    assert m, "README.md lost its <!-- sample-output --> block"
    want = program_output(tmp_path)
    if os.environ.get("ENERGYBENCH_UPDATE_README") == "1":
        README.write_text(text[: m.start(2)] + want + text[m.end(2) :], encoding="utf-8")
    else:
        assert m.group(2) == want, (
            "README.md's sample output differs from the program's; regenerate with "
            "ENERGYBENCH_UPDATE_README=1 pytest tests/report/test_readme_sample.py"
        )
    assert "leaderboard: smoke" in want and "break-even:" in want
