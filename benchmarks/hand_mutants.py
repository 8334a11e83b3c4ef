"""Mutants of the code mutmut 3 does not mutate: decorated functions, constants.

mutmut 3.8 skips every function with a decorator other than one ``@staticmethod`` or
``@classmethod`` (``mutation/file_mutation.py``), and module-level assignments: a ``@property``,
a ``@contextmanager``, an ``lru_cache``, a pydantic validator or serializer and a constant tuple
are never mutated by ``benchmarks/mutation.py``. This script makes those mutants two ways:

- **automatically**, for every group: it walks the AST of each file of the group
  (``only_mutate``) and, in every function mutmut skips, makes one-node mutants the way mutmut
  does: ``+``/``-``, ``*``/``/`` (and ``//``, ``%``, ``**``) swapped, in operators and augmented
  assignments; ``<``/``<=``, ``>``/``>=``, ``==``/``!=``, ``is``/``is not``, ``in``/``not in``;
  ``and``/``or``; ``not x`` -> ``x``; a number ``n`` -> ``n + 1``; ``True``/``False``; a string
  ``s`` -> ``"XX" s "XX"`` (not docstrings, f-string text, annotations or decorators, nor lines
  matching ``[tool.mutmut] do_not_mutate_patterns``); ``x = expr`` -> ``x = None``;
  ``return expr`` -> ``return None``;
- **by hand**, in ``MUTANTS`` below (``records/window.py``: its constants, and filters or
  conditions dropped, which the automatic rules do not make).

Each mutant is applied to a scratch copy of the committed tree (``git archive HEAD``: commit
tests first), the group's tests (``hand_tests`` of the group, else its ``tests``; ``-x``, with a
timeout) run against it, and it is killed when they fail or time out::

    python benchmarks/hand_mutants.py window          # every mutant of the group
    python benchmarks/hand_mutants.py ranking --list  # print them, run nothing
    python benchmarks/hand_mutants.py window --only 3 7
    python benchmarks/hand_mutants.py window --no-auto  # the hand-written ones only

Results: ``docs/validation/mutation-meters.md`` and ``mutation-ranking.md``.
"""

from __future__ import annotations

import argparse
import ast
import copy
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import tomllib  # noqa: I001 (Python >= 3.11, as benchmarks/mutation.py)

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mutation import ROOT, groups  # noqa: E402

#: group -> file -> (function, line as written, line as mutated); each line occurs once
MUTANTS: dict[str, dict[str, list[tuple[str, str, str]]]] = {
    "window": {
        "energybench/records/window.py": [
            (
                "DeviceEnergy.is_estimate",
                "return is_estimated_source(self.source)",
                "return not is_estimated_source(self.source)",
            ),
            (
                "DeviceEnergy.from_dict",
                "for k, v in d.items() if k in names}",
                "for k, v in d.items() if k not in names}",
            ),
            (
                "DeviceEnergy.from_dict",
                "return cls(**{k: v for k, v in d.items() if k in names})",
                "return cls(**d)",
            ),
            ("CHECKED", '"energy_j", "uncertainty_j", "sources",', '"uncertainty_j", "sources",'),
            ("CHECKED", '"energy_j", "uncertainty_j", "sources",', '"energy_j", "sources",'),
            ("CHECKED", '"energy_j", "uncertainty_j", "sources",', '"energy_j", "uncertainty_j",'),
            (
                "DERIVED",
                '    "measured_energy_j",\n    "measured_uncertainty_j",\n',
                '    "measured_uncertainty_j",\n    "measured_energy_j",\n',
            ),
            ("_LAYOUT", '*DERIVED, "flags", "devices")', '*DERIVED, "devices", "flags")'),
            (
                "CHECKED",
                '"is_shared", "is_simulated", "complete", "gaps")',
                '"is_simulated", "complete", "gaps")',
            ),
            (
                "CHECKED",
                '"is_shared", "is_simulated", "complete", "gaps")',
                '"is_shared", "complete", "gaps")',
            ),
            (
                "CHECKED",
                '"is_shared", "is_simulated", "complete", "gaps")',
                '"is_shared", "is_simulated", "gaps")',
            ),
            (
                "CHECKED",
                '"is_shared", "is_simulated", "complete", "gaps")',
                '"is_shared", "is_simulated", "complete")',
            ),
            (
                "CHECKED",
                '"is_shared", "is_simulated", "complete", "gaps")',
                '"is_shared", "is_simulated", "complete", "gaps", "is_estimate")',
            ),
            ("Window._keep_order", "if not isinstance(data, dict):", "if isinstance(data, dict):"),
            (
                "Window._keep_order",
                "for k, v in data.items() if k not in DERIVED})",
                "for k, v in data.items() if k in DERIVED})",
            ),
            (
                "Window._keep_order",
                'w.__pydantic_private__["_order"] = tuple(data)',
                'w.__pydantic_private__["_order"] = ()',
            ),
            ("Window._keep_order", "for key in CHECKED:", "for key in ():"),
            (
                "Window._keep_order",
                "if key in data and not _same(data[key], w.derived(key)):",
                "if key in data or not _same(data.get(key), w.derived(key)):",
            ),
            (
                "Window._keep_order",
                "if key in data and not _same(data[key], w.derived(key)):",
                "if key in data and _same(data[key], w.derived(key)):",
            ),
            ("Window._keep_order", "raise ValueError(", "raise TypeError("),
            (
                "Window._in_order",
                "stored = [k for k in self._order if k in DERIVED]",
                "stored = [k for k in self._order if k not in DERIVED]",
            ),
            ("Window._in_order", "for k in stored or DERIVED)", "for k in stored)"),
            (
                "Window._in_order",
                "out.update((k, self.derived(k)) for k in stored or DERIVED)",
                "pass",
            ),
            ("Window._in_order", "layout = self._order if stored else _LAYOUT", "layout = _LAYOUT"),
            (
                "Window._in_order",
                "layout = self._order if stored else _LAYOUT",
                "layout = self._order",
            ),
            (
                "Window._in_order",
                "return {**{k: out[k] for k in layout if k in out}, **out}",
                "return {k: out[k] for k in layout if k in out}",
            ),
            (
                "Window.charged",
                "return [d for d in self.devices if d.charged]",
                "return list(self.devices)",
            ),
            (
                "Window.charged",
                "return [d for d in self.devices if d.charged]",
                "return [d for d in self.devices if not d.charged]",
            ),
            ("Window.energy_j", "return self._sum(None)", "return self._sum(False)"),
            ("Window.uncertainty_j", "return self._rss(None)", "return self._rss(False)"),
            ("Window.measured_energy_j", "return self._sum(False)", "return self._sum(None)"),
            ("Window.measured_uncertainty_j", "return self._rss(False)", "return self._rss(None)"),
            ("Window.estimated_energy_j", "return self._sum(True)", "return self._sum(None)"),
            (
                "Window.measured_kinds",
                "{d.kind for d in self.charged if not d.is_estimate and d.energy_j is not None}",
                "{d.kind for d in self.charged if not d.is_estimate}",
            ),
            (
                "Window.measured_kinds",
                "{d.kind for d in self.charged if not d.is_estimate and d.energy_j is not None}",
                "{d.kind for d in self.devices if not d.is_estimate and d.energy_j is not None}",
            ),
            (
                "Window.estimated_kinds",
                "{d.kind for d in self.charged if d.is_estimate and d.energy_j is not None}",
                "{d.kind for d in self.charged if d.is_estimate}",
            ),
            (
                "Window.estimated_kinds",
                "{d.kind for d in self.charged if d.is_estimate and d.energy_j is not None}",
                "{d.kind for d in self.devices if d.is_estimate and d.energy_j is not None}",
            ),
            (
                "Window.sources",
                "return sorted({str(d.source) for d in self.charged})",
                "return sorted({str(d.source) for d in self.devices})",
            ),
            (
                "Window.is_estimate",
                "return any(d.is_estimate and d.energy_j is not None for d in self.charged)",
                "return any(d.is_estimate for d in self.charged)",
            ),
            (
                "Window.is_estimate",
                "return any(d.is_estimate and d.energy_j is not None for d in self.charged)",
                "return any(d.is_estimate and d.energy_j is not None for d in self.devices)",
            ),
            (
                "Window.is_shared",
                "return any(d.shared for d in self.charged)",
                "return any(d.shared for d in self.devices)",
            ),
            (
                "Window.is_shared",
                "return any(d.shared for d in self.charged)",
                "return all(d.shared for d in self.charged)",
            ),
            (
                "Window.is_simulated",
                "return any(d.simulated for d in self.devices)",
                "return any(d.simulated for d in self.charged)",
            ),
            (
                "Window.is_simulated",
                "return any(d.simulated for d in self.devices)",
                "return all(d.simulated for d in self.devices)",
            ),
            (
                "Window.complete",
                "return all(d.complete for d in self.charged)",
                "return all(d.complete for d in self.devices)",
            ),
            (
                "Window.complete",
                "return all(d.complete for d in self.charged)",
                "return any(d.complete for d in self.charged)",
            ),
        ]
    }
}


# --- automatic mutants: every decorated function mutmut skips --------------------------------

_SWAP_BIN: dict[type, type] = {
    ast.Add: ast.Sub,
    ast.Sub: ast.Add,
    ast.Mult: ast.Div,
    ast.Div: ast.Mult,
    ast.FloorDiv: ast.Mult,
    ast.Mod: ast.Div,
    ast.Pow: ast.Mult,
}
_SWAP_CMP: dict[type, type] = {
    ast.Lt: ast.LtE,
    ast.LtE: ast.Lt,
    ast.Gt: ast.GtE,
    ast.GtE: ast.Gt,
    ast.Eq: ast.NotEq,
    ast.NotEq: ast.Eq,
    ast.Is: ast.IsNot,
    ast.IsNot: ast.Is,
    ast.In: ast.NotIn,
    ast.NotIn: ast.In,
}
_MUTMUT_SKIPS_NOT = {"staticmethod", "classmethod"}


def skipped_by_mutmut(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    """True for what mutmut 3.8 leaves alone: a decorator other than one static/classmethod."""
    decs = fn.decorator_list
    lone = len(decs) == 1 and isinstance(decs[0], ast.Name) and decs[0].id in _MUTMUT_SKIPS_NOT
    return bool(decs) and not lone


def _variants(node: ast.AST) -> list[ast.AST]:
    """The mutmut-style one-node replacements of ``node`` (empty when it has none)."""
    out: list[ast.AST] = []

    def swapped(**changes: object) -> ast.AST:
        new = copy.deepcopy(node)
        for k, v in changes.items():
            setattr(new, k, v)
        return new

    if isinstance(node, ast.BinOp | ast.AugAssign) and type(node.op) in _SWAP_BIN:
        out.append(swapped(op=_SWAP_BIN[type(node.op)]()))
    elif isinstance(node, ast.Compare):
        for i, op in enumerate(node.ops):
            if type(op) in _SWAP_CMP:
                ops = list(node.ops)
                ops[i] = _SWAP_CMP[type(op)]()
                out.append(swapped(ops=ops))
    elif isinstance(node, ast.BoolOp):
        out.append(swapped(op=ast.Or() if isinstance(node.op, ast.And) else ast.And()))
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        out.append(copy.deepcopy(node.operand))
    elif isinstance(node, ast.Constant):
        v = node.value
        if isinstance(v, bool):
            out.append(ast.Constant(not v))
        elif isinstance(v, int | float):
            out.append(ast.Constant(v + 1))
        elif isinstance(v, str):
            out.append(ast.Constant(f"XX{v}XX"))
    elif isinstance(node, ast.Assign) and not _is_none(node.value):
        out.append(swapped(value=ast.Constant(None)))
    elif isinstance(node, ast.Return) and node.value is not None:
        if not _is_none(node.value):
            out.append(ast.Return(ast.Constant(None)))
    return out


def _is_none(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and node.value is None


def _excluded(fn: ast.AST) -> set[int]:
    """Ids of nodes not to mutate: docstrings, annotations, decorators, f-string pieces."""
    skip: set[int] = set()
    for node in ast.walk(fn):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr):
            if isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
                skip.add(id(body[0].value))
        subtrees: list[ast.AST | None] = []
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            subtrees += [*node.decorator_list, node.returns, node.args]
        if isinstance(node, ast.AnnAssign):
            subtrees.append(node.annotation)
        if isinstance(node, ast.JoinedStr):
            subtrees += [v for v in node.values if isinstance(v, ast.Constant)]
        for sub in subtrees:
            if sub is not None:
                skip.update(id(n) for n in ast.walk(sub))
    return skip


def _offset(lines: list[bytes], lineno: int, col: int) -> int:
    return sum(len(line) for line in lines[: lineno - 1]) + col


def auto_mutants(source: str, message_lines: list[str]) -> list[tuple[str, int, int, str]]:
    """(where, start, end, new text) for every one-node mutant of the decorated functions.

    ``start``/``end`` are byte offsets into ``source``; a line matching one of
    ``message_lines`` (mutmut's ``do_not_mutate_patterns``) is left alone, as mutmut does.
    """
    tree = ast.parse(source)
    lines = source.encode().splitlines(keepends=True)
    text_lines = source.splitlines()
    patterns = [re.compile(p) for p in message_lines]
    found: list[tuple[str, int, int, str]] = []

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            name = getattr(child, "name", "")
            if isinstance(child, ast.ClassDef):
                visit(child, f"{prefix}{name}.")
            elif isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                if skipped_by_mutmut(child):
                    collect(child, f"{prefix}{name}")

    def collect(fn: ast.FunctionDef | ast.AsyncFunctionDef, where: str) -> None:
        skip = _excluded(fn)
        for node in ast.walk(fn):
            if id(node) in skip or not hasattr(node, "end_col_offset"):
                continue
            line = text_lines[node.lineno - 1]
            if any(p.search(line) for p in patterns):
                continue
            start = _offset(lines, node.lineno, node.col_offset)
            end = _offset(lines, node.end_lineno or node.lineno, node.end_col_offset or 0)
            for new in _variants(node):
                text = ast.unparse(new)
                if isinstance(new, ast.expr):
                    text = f"({text})"
                found.append((f"{where}:{node.lineno}", start, end, text))

    visit(tree, "")
    return found


def run_tests(folder: Path, tests: list[str], timeout_s: float) -> bool:
    """Run ``tests`` in ``folder``; True when they fail or time out (the mutant is killed)."""
    env = os.environ | {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": "."}
    cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests]
    try:
        done = subprocess.run(cmd, cwd=folder, env=env, capture_output=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return True
    return done.returncode != 0


def run_one(
    folder: Path, path: str, mutate: Callable[[str], str], tests: list[str], t: float
) -> bool:
    """Apply one mutant to ``folder/path``, run ``tests``, restore the file; True when killed."""
    target = folder / path
    original = target.read_text()
    target.write_text(mutate(original))
    try:
        return run_tests(folder, tests, t)
    finally:
        target.write_text(original)


def _replace(old: str, new: str, path: str) -> Callable[[str], str]:
    def mutate(text: str) -> str:
        if text.count(old) != 1:
            raise SystemExit(f"{path}: {old!r} occurs {text.count(old)} times, not once")
        return text.replace(old, new)

    return mutate


def _splice(start: int, end: int, new: str) -> Callable[[str], str]:
    def mutate(text: str) -> str:
        raw = text.encode()
        return (raw[:start] + new.encode() + raw[end:]).decode()

    return mutate


def plan(name: str, group: dict, auto: bool) -> list[tuple[str, str, str, Callable[[str], str]]]:
    """(path, where, description, mutate) for the group's hand mutants, then automatic ones."""
    out = [
        (path, where, f"{old!r} -> {new!r}", _replace(old, new, path))
        for path, mutants in MUTANTS.get(name, {}).items()
        for where, old, new in mutants
    ]
    if not auto:
        return out
    message_lines = groups_mutmut().get("do_not_mutate_patterns", [])
    for path in group.get("only_mutate", []):
        source = (ROOT / path).read_text()
        raw = source.encode()
        for where, start, end, new in auto_mutants(source, message_lines):
            was = raw[start:end].decode()
            desc = f"{was!r} -> {new!r}" if len(was) < 70 else f"{was[:60]!r}... -> {new!r}"
            out.append((path, where, desc, _splice(start, end, new)))
    return out


def groups_mutmut() -> dict:
    """The committed ``[tool.mutmut]`` table (for its ``do_not_mutate_patterns``)."""
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mutmut"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("group", choices=sorted(groups()))
    ap.add_argument("--only", nargs="*", type=int, default=[], help="mutant numbers to run")
    ap.add_argument("--no-auto", action="store_true", help="the hand-written mutants only")
    ap.add_argument("--list", action="store_true", help="print the mutants, run nothing")
    ap.add_argument("--timeout", type=float, default=300.0, help="seconds per mutant's tests")
    args = ap.parse_args()
    group = groups()[args.group]
    tests = list(group.get("hand_tests", group["tests"]))
    deselect = group.get("hand_deselect", group.get("deselect"))
    tests += ["-k", deselect] if deselect else []
    mutants = plan(args.group, group, auto=not args.no_auto)
    if args.list:
        for n, (path, where, desc, _) in enumerate(mutants, 1):
            print(f"{n:3d} {path} {where}: {desc}")
        return 0
    folder = Path(f"/tmp/hand-mutants-{args.group}")
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    archive = subprocess.run(["git", "archive", "HEAD"], cwd=ROOT, capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive.stdout, check=True)
    if not args.only and run_tests(folder, tests, args.timeout):
        raise SystemExit(f"the tests fail on the unmutated tree: {' '.join(tests)}")
    killed = total = 0
    for n, (path, where, desc, mutate) in enumerate(mutants, 1):
        if args.only and n not in args.only:
            continue
        dead = run_one(folder, path, mutate, tests, args.timeout)
        total += 1
        killed += dead
        status = "killed" if dead else "SURVIVED"
        print(f"{n:3d} {status:8s} {path} {where}: {desc}", flush=True)
    print(f"{killed} of {total} killed ({100 * killed / total:.1f} %)" if total else "none run")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
