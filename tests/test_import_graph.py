"""The import graph of stemsplit/ and scripts/ has no cycle.

Every module is parsed (not imported), and every import counts: at module level and inside
functions alike, since a lazy import is still a dependency, only a later one. Imports under
``if TYPE_CHECKING:`` never run and are left out. A cycle fails the test with its path printed.
"""
from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _module_names() -> dict[str, Path]:
    """Dotted name -> file, for the package (stemsplit.x.y) and the scripts (run with scripts/ on
    sys.path, so they import each other by file name)."""
    modules = {}
    for path in (REPO / "stemsplit").rglob("*.py"):
        parts = path.relative_to(REPO).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    for path in (REPO / "scripts").glob("*.py"):
        modules[path.stem] = path
    return modules


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    found, stack = [], [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _is_type_checking(node):
            stack.extend(node.orelse)
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
        stack.extend(ast.iter_child_nodes(node))
    return found


def _targets(node: ast.Import | ast.ImportFrom, here: str, is_package: bool, modules: dict[str, Path]) -> set[str]:
    """The project modules one import statement loads: ``from a import b`` is module a.b where
    that is a module, else the module a (b is one of its names)."""
    if isinstance(node, ast.Import):
        return {alias.name for alias in node.names if alias.name in modules}
    base = node.module or ""
    if node.level:  # relative: from the package that holds this module
        package = here.split(".") if is_package else here.split(".")[:-1]
        package = package[: len(package) - (node.level - 1)]
        base = ".".join([*package, base] if base else package)
    out = set()
    for alias in node.names:
        if f"{base}.{alias.name}" in modules:
            out.add(f"{base}.{alias.name}")
        elif base in modules:
            out.add(base)
    return out


def import_graph() -> dict[str, set[str]]:
    modules = _module_names()
    graph = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        edges = set()
        for node in _imports(tree):
            edges |= _targets(node, name, path.name == "__init__.py", modules)
        graph[name] = edges - {name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as a path [a, b, ..., a], or None (depth-first search, iterative)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for start in sorted(graph):
        if state.get(start):
            continue
        path, iters = [start], [iter(sorted(graph[start]))]
        state[start] = 1
        while path:
            nxt = next(iters[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                iters.pop()
            elif state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            elif not state.get(nxt):
                state[nxt] = 1
                path.append(nxt)
                iters.append(iter(sorted(graph.get(nxt, ()))))
    return None


def test_the_import_graph_has_no_cycle():
    graph = import_graph()
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_graph_sees_lazy_and_relative_imports_and_finds_a_cycle():
    """The checker itself: a function-level import closes a cycle, and it is reported."""
    tree = ast.parse("def f():\n    from stemsplit.config import load_config\n")
    modules = {"stemsplit.config": Path("c"), "stemsplit.models": Path("m")}
    (node,) = _imports(tree)
    assert _targets(node, "stemsplit.models", True, modules) == {"stemsplit.config"}
    (rel,) = _imports(ast.parse("from . import config\n"))
    assert _targets(rel, "stemsplit.models", False, {"stemsplit.config": Path("c")}) == {"stemsplit.config"}
    hidden = ast.parse("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import stemsplit.config\n")
    assert [type(n).__name__ for n in _imports(hidden)] == ["ImportFrom"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_the_model_files_take_their_errors_from_stemsplit_errors():
    """config.py loads the models (to check their params): a model file that imports an error
    type from stemsplit.config would tie the two together for nothing. A model file imports
    stemsplit.config only for what only it has (an ensemble reads its members' configs)."""
    import stemsplit.errors as errors

    error_names = {name for name in dir(errors) if name.endswith("Error")}
    offenders = []
    for path in sorted((REPO / "stemsplit" / "models").glob("*.py")):
        for node in _imports(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module == "stemsplit.config":
                offenders += [f"{path.name}: {a.name}" for a in node.names if a.name in error_names]
            if isinstance(node, ast.Import) and any(a.name == "stemsplit.config" for a in node.names):
                offenders.append(f"{path.name}: import stemsplit.config")
    assert offenders == [], "import these from stemsplit.errors: " + ", ".join(offenders)
