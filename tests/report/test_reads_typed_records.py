"""The report and plan read typed records and the typed suite: ``.get(`` only on plain maps."""

from __future__ import annotations

import re
from pathlib import Path

PKG = Path(__file__).resolve().parents[2] / "energybench"


def test_get_calls_are_few_and_each_says_it_reads_a_plain_map() -> None:
    files = sorted((PKG / "report").glob("*.py")) + [PKG / "plan.py"]
    calls = [
        (f"{f.name}:{i}", line)
        for f in files
        for i, line in enumerate(f.read_text().splitlines(), 1)
        if ".get(" in line
    ]
    assert len(calls) < 15, calls  # issue 26: typed records, defaults in the schema alone
    unexplained = [where for where, line in calls if not re.search(r"#.*plain", line)]
    assert not unexplained, f"a .get( without a '# ... plain ...' comment: {unexplained}"
