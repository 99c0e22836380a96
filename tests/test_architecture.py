"""The shape of the package: arrows point down, no import circle, no hub.

Imports are read from the source (every `import` and `from ... import`, at module level or inside
a function: a lazy import is still an arrow), so these tests need no import of genrun itself.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "genrun"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def genrun_imports(path: Path, modules: set[str]) -> set[str]:
    """The genrun modules a file imports (a `from package import name` that names a module counts as that module)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("genrun")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("genrun"):
            for alias in node.names:
                child = f"{node.module}.{alias.name}"
                found.add(child if child in modules else node.module)
    return {name for name in found if name in modules}


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    files = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {name: genrun_imports(path, set(files)) - {name} for name, path in files.items()}


def cycle_through(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle, as the list of modules on it, or None (depth-first search, three colours)."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_the_graph_reader_sees_a_lazy_import_and_finds_a_circle():
    assert cycle_through({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert cycle_through({"a": {"b"}, "b": set()}) is None


def test_no_import_circle_anywhere_in_genrun(graph):
    assert len(graph) > 40
    assert cycle_through(graph) is None


def test_the_engine_imports_no_family(graph):
    engine = {name: deps for name, deps in graph.items() if name.startswith("genrun.engine")}
    assert engine and all(not dep.startswith("genrun.pipelines") for deps in engine.values() for dep in deps), {
        name: sorted(d for d in deps if d.startswith("genrun.pipelines")) for name, deps in engine.items()}


def test_config_and_schema_do_not_import_each_other(graph):
    assert not ({"genrun.schema"} & graph["genrun.config"] and {"genrun.config"} & graph["genrun.schema"])


def test_no_module_is_a_hub():
    """train.py and the pieces it was split into stay small enough to read."""
    for name in ("train", "build", "run_state", "results", "evaluation", "eval_loop", "task"):
        lines = len((PACKAGE / f"{name}.py").read_text().splitlines())
        assert lines <= 250, f"genrun/{name}.py has {lines} lines"
