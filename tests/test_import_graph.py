"""The package's import graph: no cycles (imports inside functions count too), and the run
store and the metrics stay leaves that other layers build on."""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "energybench"


def _modules() -> dict[str, Path]:
    out = {}
    for f in ROOT.rglob("*.py"):
        parts = f.relative_to(ROOT.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = f
    return out


def _targets(mod: str, path: Path, node: ast.Import | ast.ImportFrom, mods: set[str]) -> set[str]:
    """The energybench modules one import statement loads (the deepest that exists)."""
    names: list[str] = []
    if isinstance(node, ast.Import):
        names = [a.name for a in node.names]
    else:
        base = node.module or ""
        if node.level:
            pkg = mod.split(".") if path.name == "__init__.py" else mod.split(".")[:-1]
            pkg = pkg[: len(pkg) - node.level + 1]
            base = ".".join([*pkg, base] if base else pkg)
        names = [f"{base}.{a.name}" for a in node.names]
    out = set()
    for name in names:
        while name and name not in mods:
            name = name.rpartition(".")[0]
        if name.startswith("energybench") and name != mod:
            out.add(name)
    return out


def _runtime_imports(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    """Every import statement that can run: at module level or in a function, not in an
    ``if TYPE_CHECKING:`` block (annotations only, never executed)."""
    out: list[ast.Import | ast.ImportFrom] = []
    todo = [tree]
    while todo:
        node = todo.pop()
        if isinstance(node, ast.Import | ast.ImportFrom):
            out.append(node)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            todo.extend(node.orelse)
            continue
        todo.extend(ast.iter_child_nodes(node))
    return out


@functools.cache
def import_graph() -> dict[str, set[str]]:
    """Module -> the energybench modules it imports anywhere in its body (packages excluded:
    importing ``a.b`` runs ``a/__init__``, which is not an edge of ours)."""
    mods = _modules()
    graph: dict[str, set[str]] = {}
    for mod, path in mods.items():
        edges: set[str] = set()
        for node in _runtime_imports(ast.parse(path.read_text(encoding="utf-8"))):
            edges |= _targets(mod, path, node, set(mods))
        graph[mod] = edges
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for w in graph.get(todo.pop(), ()):
            if w not in seen:
                seen.add(w)
                todo.append(w)
    return seen


def test_the_checker_finds_a_cycle_through_a_function_level_import(tmp_path: Path) -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]
    mod = ast.parse("def f():\n    from energybench.serve import scenarios\n")
    (node,) = [n for n in ast.walk(mod) if isinstance(n, ast.ImportFrom)]
    mods = {"energybench.serve", "energybench.serve.scenarios", "x"}
    assert _targets("x", tmp_path / "x.py", node, mods) == {"energybench.serve.scenarios"}
    typed = ast.parse(
        "if TYPE_CHECKING:\n    import a\nelse:\n    import b\ndef f():\n    import c\n"
    )
    assert sorted(n.names[0].name for n in _runtime_imports(typed)) == ["b", "c"]


def test_the_package_has_no_import_cycles() -> None:
    graph = import_graph()
    assert len(graph) > 50 and "energybench.serve.scenarios" in graph
    assert cycles(graph) == []


@pytest.mark.parametrize(
    "leaf",
    ["energybench.records.store", "energybench.records.phases", "energybench.metrics.fullcycle"],
)
def test_the_store_and_the_metrics_import_nothing_else_of_energybench(leaf: str) -> None:
    graph = import_graph()
    allowed = {m for m in graph if m.startswith("energybench.metrics")}
    allowed |= {"energybench.records.check", "energybench.records.types", "energybench.errors"}
    allowed |= {"energybench.records.phases", "energybench.records.safefs"}
    allowed |= {"energybench.records.manifest", "energybench.records.record"}
    allowed |= {"energybench.records.window"}
    # the meter table: whether a source is an estimate is answered there alone
    allowed |= {"energybench.meters.plugins", "energybench.plugins.registry"}
    # the suite schema (declarations, no runtime): a run is read with its typed suite
    allowed |= {m for m in graph if m.startswith("energybench.suite")}
    allowed |= {"energybench.tasks.registry"}
    assert reachable(graph, leaf) <= allowed


def test_the_meter_table_stays_cheap_to_import() -> None:
    """The suite schema validates ``energy.meters`` against the table: the table may import
    only the registry (its meters' modules are lazy ``"module:attr"`` strings)."""
    graph = import_graph()
    assert reachable(graph, "energybench.meters.plugins") <= {
        "energybench.plugins.registry",
        "energybench.errors",  # a leaf: the one user-error base
    }


def _all_imports(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    """Every import statement, ``if TYPE_CHECKING:`` blocks included."""
    return [n for n in ast.walk(tree) if isinstance(n, ast.Import | ast.ImportFrom)]


@functools.cache
def typed_import_graph() -> dict[str, set[str]]:
    """:func:`import_graph` counting ``TYPE_CHECKING`` imports too (annotations are arrows)."""
    mods = _modules()
    return {
        mod: set().union(
            *(_targets(mod, path, n, set(mods)) for n in _all_imports(ast.parse(path.read_text())))
        )
        for mod, path in mods.items()
    }


def test_no_cycle_even_counting_type_checking_imports() -> None:
    assert cycles(typed_import_graph()) == []


RUNTIME = ("train", "compress", "serve", "run")


def test_the_suite_declarations_never_import_the_runtime() -> None:
    """``suite/`` (the schema and its tables of names) validates against registries whose
    entries are lazy: no arrow into training, compression, serving or orchestration, not even
    for annotations."""
    graph = typed_import_graph()
    suite = [m for m in graph if m.startswith("energybench.suite")]
    assert "energybench.suite.backends" in suite and "energybench.suite.policies" in suite
    runtime = tuple(f"energybench.{p}" for p in RUNTIME)
    arrows = sorted((m, t) for m in suite for t in graph[m] if t.startswith(runtime))
    assert arrows == []


def test_the_runtime_check_sees_an_arrow_from_the_suite(tmp_path: Path) -> None:
    """The arrow check is not vacuous: an import of the serving runtime under
    ``TYPE_CHECKING`` in a suite module is an edge."""
    code = "if TYPE_CHECKING:\n    from energybench.serve.backends.core import BACKENDS\n"
    (node,) = _all_imports(ast.parse(code))
    mods = {"energybench.serve.backends.core", "energybench.suite.x"}
    path = tmp_path / "x.py"
    assert _targets("energybench.suite.x", path, node, mods) == {"energybench.serve.backends.core"}
