"""List the functions of energybench longer than N lines (default 60), longest first.

python tools/long_functions.py [N]
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path


def long_functions(root: Path, limit: int) -> list[tuple[int, str, str]]:
    """(lines, "file:line", name) of each function over ``limit`` lines, longest first."""
    rows = []
    for f in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                n = (node.end_lineno or node.lineno) - node.lineno + 1
                if n > limit:
                    rows.append((n, f"{f}:{node.lineno}", node.name))
    return sorted(rows, reverse=True)


if __name__ == "__main__":
    limit = int(sys.argv[1]) if len(sys.argv) > 1 else 60
    package = Path(__file__).resolve().parents[1] / "energybench"
    for n, where, name in long_functions(package, limit):
        print(f"{n:4d}  {where}  {name}")
