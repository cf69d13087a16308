"""The import graph of ``kumocore/``, read from the source (function-level and
TYPE_CHECKING imports count: a reader follows them too).

The architecture issue's goal is a graph without circles. Until it is reached, the
modules that are in a circle today are listed here, and no other module may join one:
a new circle, or a module pulled into an old one, fails this test.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "kumocore"

#: Modules in an import circle today (to be untangled by the architecture step).
KNOWN_IN_CIRCLES: frozenset[str] = frozenset()


def _modules(package: Path) -> dict[str, Path]:
    modules = {}
    for path in package.rglob("*.py"):
        parts = list(path.relative_to(package.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def import_graph(package: Path = PACKAGE) -> dict[str, set[str]]:
    modules = _modules(package)
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text())):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*parts, *([node.module] if node.module else [])])
                names = [f"{base}.{alias.name}" for alias in node.names]
                # ``from pkg import submodule`` imports the submodule, like
                # ``import pkg.submodule``; only a name defined in pkg itself is an edge to it.
                defined_in_base = [n for n in names if n not in modules]
                targets = [*([base] if defined_in_base else []), *names]
            for target in targets:
                while target and target not in modules:
                    target = target.rpartition(".")[0]
                if target and target != name:
                    graph[name].add(target)
    return graph


def modules_in_circles(graph: dict[str, set[str]]) -> set[str]:
    """Every module in a strongly connected component of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: set[str] = set()

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.update(component)

    for node in graph:
        if node not in index:
            visit(node)
    return found


def test_no_module_outside_the_known_circles_joins_an_import_circle() -> None:
    new = modules_in_circles(import_graph()) - KNOWN_IN_CIRCLES
    assert not new, f"modules newly in an import circle: {sorted(new)}"


def test_every_known_module_is_still_in_a_circle() -> None:
    """The list only shrinks: a module that left its circle is taken off, so that it
    cannot silently rejoin one."""
    left = KNOWN_IN_CIRCLES - modules_in_circles(import_graph())
    assert not left, f"no longer in an import circle, take off KNOWN_IN_CIRCLES: {sorted(left)}"


def test_the_circle_finder_finds_a_two_module_circle() -> None:
    graph = {"a": {"b"}, "b": {"a"}, "c": {"a"}}
    assert modules_in_circles(graph) == {"a", "b"}


def test_importing_a_submodule_from_its_package_is_an_edge_to_the_submodule_only(
    tmp_path: Path,
) -> None:
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("from pkg import a\nVERSION = 1\n")
    (package / "a.py").write_text("from pkg import b\n")
    (package / "b.py").write_text("from pkg import VERSION\n")
    graph = import_graph(package)
    assert graph == {"pkg": {"pkg.a"}, "pkg.a": {"pkg.b"}, "pkg.b": {"pkg"}}
    assert modules_in_circles(graph) == {"pkg", "pkg.a", "pkg.b"}
