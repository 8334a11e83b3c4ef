"""Mutation testing of one file group, in a scratch copy of the committed tree.

One command per group (groups are ``[tool.energybench.mutation.*]`` in ``pyproject.toml``)::

    python benchmarks/mutation.py ranking       # suite/ranking.py and metrics/*.py
    python benchmarks/mutation.py trials        # serve/trials.py
    python benchmarks/mutation.py meters-base   # meters/base.py
    python benchmarks/mutation.py meters-nvml   # the NVML path ([tool.mutmut] as committed)
    python benchmarks/mutation.py window        # records/window.py (the measurement window)
    python benchmarks/mutation.py trials --only "energybench.serve.trials.x_precision*"

The committed tree (``git archive HEAD``: commit the tests first) is unpacked into
``/tmp/mutmut-GROUP``; its ``[tool.mutmut]`` gets the group's files, test selection and timeout;
``mutmut run`` runs there with one torch thread (torch's thread pool deadlocks in mutmut's forked
children otherwise, and every mutant "times out"); then the per-file tally and score are printed.
A rerun in an existing folder checks only the mutants not yet checked (``--fresh`` starts over).
mutmut skips decorated functions (``@property``, pydantic validators) and constants:
``benchmarks/hand_mutants.py GROUP`` runs hand-written mutants of those (group ``window``).
Needs Python >= 3.11 (``tomllib``) and mutmut 3.8 (the dev extra). Results and survivors:
``docs/validation/mutation-ranking.md``, ``docs/validation/mutation-meters.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[1]
STATUSES = ("killed", "timeout", "survived", "no tests", "suspicious", "skipped", "not checked")


def groups() -> dict[str, dict]:
    """The groups from ``pyproject.toml`` (``[tool.energybench.mutation.NAME]``)."""
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return data["tool"]["energybench"]["mutation"]


def _toml(value: object) -> str:
    return json.dumps(value)  # a JSON list of plain strings or a number is valid TOML


def configure(pyproject: Path, group: dict) -> None:
    """Give the copy's ``[tool.mutmut]`` the group's files, tests and timeout."""
    if "only_mutate" not in group:
        return  # the committed [tool.mutmut]
    text = pyproject.read_text()
    head = text.index("[tool.mutmut]")
    end = text.find("\n[", head + 1)
    block = text[head:end] if end != -1 else text[head:]
    for key in ("only_mutate", "pytest_add_cli_args_test_selection", "timeout_multiplier"):
        block = re.sub(rf"^{key} = (\[.*?\]|\S+)\n", "", block, flags=re.S | re.M)
    tests = list(group["tests"]) + (["-k", group["deselect"]] if group.get("deselect") else [])
    lines = [
        f"only_mutate = {_toml(group['only_mutate'])}",
        f"pytest_add_cli_args_test_selection = {_toml(tests)}",
    ]
    if "timeout_multiplier" in group:
        lines.append(f"timeout_multiplier = {_toml(group['timeout_multiplier'])}")
    block = block.replace("[tool.mutmut]\n", "[tool.mutmut]\n" + "\n".join(lines) + "\n", 1)
    pyproject.write_text(text[:head] + block + (text[end:] if end != -1 else ""))


def tally(folder: Path, mutmut: str) -> None:
    """Per-file killed/timeout/survived/... and the score (killed + timeout) / checked."""
    out = subprocess.run(
        [mutmut, "results", "--all", "true"], cwd=folder, capture_output=True, text=True
    ).stdout
    per_file: dict[str, Counter[str]] = defaultdict(Counter)
    for line in out.splitlines():
        name, _, status = line.strip().rpartition(": ")
        m = re.match(r"^(.*?)\.x[_ǁ].*__mutmut_\d+$", name)
        if m:
            per_file[m.group(1)][status] += 1
    print("| file | " + " | ".join(STATUSES) + " | score |")
    print("|---|" + "---|" * (len(STATUSES) + 1))
    total: Counter[str] = Counter()
    for module, c in sorted(per_file.items()):
        total += c
        print(f"| `{module}` | " + " | ".join(str(c[s]) for s in STATUSES) + f" | {_score(c)} |")
    print("| **all** | " + " | ".join(str(total[s]) for s in STATUSES) + f" | {_score(total)} |")


def _score(c: Counter[str]) -> str:
    checked = c["killed"] + c["timeout"] + c["survived"] + c["suspicious"]
    return f"{100 * (c['killed'] + c['timeout']) / checked:.1f} %" if checked else "-"


def main() -> int:
    known = groups()
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("group", choices=sorted(known))
    ap.add_argument("--dir", type=Path, help="scratch folder (default /tmp/mutmut-GROUP)")
    ap.add_argument("--fresh", action="store_true", help="start over in a new copy")
    ap.add_argument("--max-children", type=int, default=1)
    ap.add_argument("--only", nargs="*", default=[], help="mutant names or globs to run")
    ap.add_argument("--tally", action="store_true", help="only print the tally of a past run")
    args = ap.parse_args()
    folder = args.dir or Path(f"/tmp/mutmut-{args.group}")
    mutmut = str(Path(sys.executable).with_name("mutmut"))
    if not args.tally:
        if args.fresh and folder.exists():
            shutil.rmtree(folder)
        if not folder.exists():
            folder.mkdir(parents=True)
            archive = subprocess.run(
                ["git", "archive", "HEAD"], cwd=ROOT, capture_output=True, check=True
            )
            subprocess.run(["tar", "-x", "-C", str(folder)], input=archive.stdout, check=True)
            configure(folder / "pyproject.toml", known[args.group])
        env = os.environ | {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        cmd = [mutmut, "run", "--max-children", str(args.max_children), *args.only]
        subprocess.run(cmd, cwd=folder, env=env, check=False)
    tally(folder, mutmut)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
