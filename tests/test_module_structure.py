"""The pipeline's modules import each other in one direction: no import circle, lazy imports included.

A circle hidden behind a function-level import still couples two stages (issue 11: discovery <->
patch_spec, plan <-> validation); this reads every `import`/`from` of `patchgen/` (any depth, any
indentation, `TYPE_CHECKING` blocks excepted) and fails naming the circle.
"""

import ast
from pathlib import Path


PACKAGE = Path(__file__).resolve().parents[1] / "patchgen"


def _type_checking_lines(tree: ast.Module) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and ast.unparse(node.test).endswith("TYPE_CHECKING"):
            for inner in node.body:
                lines.update(range(inner.lineno, (inner.end_lineno or inner.lineno) + 1))
    return lines


def _imports(path: Path) -> set[str]:
    """Dotted `patchgen.*` modules `path` imports at run time (whole modules, not names in them)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skipped = _type_checking_lines(tree)
    found: set[str] = set()
    for node in ast.walk(tree):
        if getattr(node, "lineno", None) in skipped:
            continue
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.startswith("patchgen."):
                found.add(node.module)
            elif node.module == "patchgen":
                found.update(f"patchgen.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("patchgen."))
    return found


def _module_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        graph[name] = _imports(path)
    return {name: {dep for dep in deps if dep in graph and dep != name} for name, deps in graph.items()}


def _circles(graph: dict[str, set[str]]) -> list[list[str]]:
    circles: list[list[str]] = []

    def walk(node: str, path: list[str]) -> None:
        for dep in sorted(graph[node]):
            if dep == path[0]:
                circles.append([*path, dep])
            elif dep not in path and dep > path[0]:  # each circle once, from its smallest module
                walk(dep, [*path, dep])

    for start in sorted(graph):
        walk(start, [start])
    return circles


def test_graph_reader_sees_the_real_imports():
    graph = _module_graph()
    assert "patchgen.dsl.patch_spec" in graph["patchgen.load.discovery"]
    assert "patchgen.dsl.layout" in graph["patchgen.dsl.patch_spec"]


def test_circle_finder_finds_a_circle():
    assert _circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]


def test_no_import_circle_in_patchgen():
    circles = _circles(_module_graph())
    assert not circles, "import circles: " + "; ".join(" -> ".join(circle) for circle in circles)
