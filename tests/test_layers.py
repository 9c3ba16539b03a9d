"""Imports only go downward: manifolds <- structures <- pipeline <- workflows (README "Layout").

Every module of the four packages is parsed with ``ast`` (nothing is imported), and every import in it, at module
level or inside a function, under ``TYPE_CHECKING`` or not, relative or absolute, as well as
``importlib.import_module("...")`` with a constant name, must name a package of its own layer or one below.

Further (issue 22): no module of the four packages, tools/ or benchmarks/ over 400 lines, no function there over
8 parameters, and no import cycle among the modules of the four packages (module-level imports only).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ("manifolds", "structures", "pipeline", "workflows")  # lowest first
RANK = {name: i for i, name in enumerate(LAYERS)}


def modules(layer: str) -> list[Path]:
    return sorted(p for p in (ROOT / layer).rglob("*.py") if "__pycache__" not in p.parts)


def package_of(path: Path) -> list[str]:
    """The package that relative imports of a module file start from: pipeline/crystals/score/hull.py and
    pipeline/crystals/score/__init__.py -> ["pipeline", "score"]."""
    return list(path.relative_to(ROOT).parts[:-1])


def imported_names(path: Path) -> list[tuple[int, str]]:
    """(line, absolute dotted name) of every import in the file."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    pkg = package_of(path)
    out: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                base = pkg[: len(pkg) - (node.level - 1)]
                out.append((node.lineno, ".".join(base + ([node.module] if node.module else []))))
            elif node.module:
                out.append((node.lineno, node.module))
        elif (isinstance(node, ast.Call) and isinstance(node.func, (ast.Attribute, ast.Name))
              and (node.func.attr if isinstance(node.func, ast.Attribute) else node.func.id) == "import_module"
              and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            out.append((node.lineno, node.args[0].value))
    return out


def upward_imports(layer: str) -> list[str]:
    bad = []
    for path in modules(layer):
        for line, name in imported_names(path):
            top = name.split(".")[0]
            if top in RANK and RANK[top] > RANK[layer]:
                bad.append(f"{path.relative_to(ROOT)}:{line} imports {name}")
    return bad


@pytest.mark.parametrize("layer", LAYERS)
def test_no_upward_imports(layer: str) -> None:
    assert modules(layer), f"no modules found under {layer}/"
    assert upward_imports(layer) == []


def test_the_check_sees_upward_imports(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The scanner itself: absolute, relative, in-function and import_module forms are all caught."""
    fake = tmp_path / "structures"
    (fake / "sub").mkdir(parents=True)
    (fake / "__init__.py").write_text("")
    (fake / "sub" / "__init__.py").write_text("from ..pipeline import x\n")  # resolves to structures.pipeline: fine
    (fake / "a.py").write_text("import numpy\nfrom manifolds import so3\nfrom pipeline.common import io\n")
    (fake / "b.py").write_text("def f():\n    import workflows.cli\n    import importlib\n"
                               "    return importlib.import_module('pipeline.crystals.score')\n")
    monkeypatch.setitem(globals(), "ROOT", tmp_path)
    assert upward_imports("structures") == ["structures/a.py:3 imports pipeline.common",
                                            "structures/b.py:2 imports workflows.cli",
                                            "structures/b.py:4 imports pipeline.crystals.score"]


# ------------------------------------------------------------------------------ sizes, widths and import cycles
# README "Layout" and issue 22: no module over 400 lines, no function over 8 parameters, no import cycle.

SIZED = LAYERS + ("tools", "benchmarks")  # the folders whose modules the size and width limits cover
MAX_LINES = 400
MAX_PARAMETERS = 8


def long_modules(folders: tuple[str, ...] = SIZED, limit: int = MAX_LINES) -> list[str]:
    """``path: N lines`` of every module over ``limit`` lines."""
    out = []
    for folder in folders:
        for path in modules(folder):
            n = len(path.read_text(encoding="utf-8").splitlines())
            if n > limit:
                out.append(f"{path.relative_to(ROOT)}: {n} lines")
    return out


def parameter_count(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """Positional (incl. positional-only) and keyword-only parameters, without ``self`` / ``cls`` and without
    ``*args`` / ``**kwargs``."""
    a = node.args
    positional = [p.arg for p in a.posonlyargs + a.args]
    if positional and positional[0] in ("self", "cls"):
        positional = positional[1:]
    return len(positional) + len(a.kwonlyargs)


def wide_functions(folders: tuple[str, ...] = SIZED, limit: int = MAX_PARAMETERS) -> list[str]:
    """``path:line name(N parameters)`` of every function or method with more than ``limit`` parameters."""
    out = []
    for folder in folders:
        for path in modules(folder):
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            for node in ast.walk(tree):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and parameter_count(node) > limit:
                    out.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} "
                               f"({parameter_count(node)} parameters)")
    return out


def module_name(path: Path) -> str:
    """pipeline/crystals/flow.py -> pipeline.crystals.flow; pipeline/crystals/__init__.py -> pipeline.crystals."""
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def module_level_imports(tree: ast.Module) -> list[ast.Import | ast.ImportFrom]:
    """The imports that run when the module is imported: its top-level statements and those nested in top-level
    ``if`` / ``try`` / ``with`` blocks, but not ``if TYPE_CHECKING:`` (never run) and nothing inside a function
    or class body (imports in functions are deliberate lazy imports)."""
    out: list[ast.Import | ast.ImportFrom] = []
    todo: list[ast.stmt] = list(tree.body)
    while todo:
        node = todo.pop(0)
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            out.append(node)
        elif isinstance(node, ast.If):
            todo += node.orelse if _is_type_checking(node.test) else node.body + node.orelse
        elif isinstance(node, ast.Try):
            todo += node.body + node.orelse + node.finalbody + [s for h in node.handlers for s in h.body]
        elif isinstance(node, ast.With):
            todo += node.body
    return out


def import_graph() -> dict[str, set[str]]:
    """module -> the modules of the four packages it imports at module level. ``from a.b import c`` is an edge to
    the module a.b.c when that is a module or package, else to a.b (its ``__init__``)."""
    files = {module_name(p): p for layer in LAYERS for p in modules(layer)}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        pkg = package_of(path)
        edges: set[str] = set()
        for node in module_level_imports(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                base = (".".join(pkg[: len(pkg) - (node.level - 1)] + ([node.module] if node.module else []))
                        if node.level else node.module or "")
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in files else base for a in node.names]
            edges |= {t for t in targets if t in files and t != name}
        graph[name] = edges
    return graph


def import_cycles(graph: dict[str, set[str]]) -> list[str]:
    """Every cycle a depth-first search meets (one per back edge), as ``a -> b -> a``."""
    state: dict[str, int] = {}  # 1: on the current path, 2: finished
    stack: list[str] = []
    cycles: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append(" -> ".join(stack[stack.index(nxt):] + [nxt]))
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    return cycles


def test_no_module_over_400_lines() -> None:
    long = long_modules()
    assert long == [], "modules over 400 lines:\n" + "\n".join(long)


def test_no_function_over_8_parameters() -> None:
    wide = wide_functions()
    assert wide == [], "functions over 8 parameters:\n" + "\n".join(wide)


def test_no_import_cycle() -> None:
    graph = import_graph()
    assert len(graph) > 100 and graph["pipeline.crystals.generate"] >= {"manifolds.discrete", "pipeline.crystals.flow"}
    cycles = import_cycles(graph)
    assert cycles == [], "import cycles (module-level imports):\n" + "\n".join(cycles)


def test_the_checks_see_long_modules_wide_functions_and_cycles(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                               ) -> None:
    """The scanners themselves, on a fake tree: a cycle through ``from . import``, a lazy import and a
    TYPE_CHECKING import that close no cycle, a 401-line module and a 9-parameter function."""
    fake = tmp_path / "structures"
    (fake / "sub").mkdir(parents=True)
    (fake / "__init__.py").write_text("")
    (fake / "sub" / "__init__.py").write_text("from . import c\n")  # structures.sub -> structures.sub.c
    (fake / "a.py").write_text("from structures.sub import c\nfrom typing import TYPE_CHECKING\n"
                               "if TYPE_CHECKING:\n    from structures import b\n")
    (fake / "b.py").write_text("import structures.a\n\n\ndef lazy():\n    from structures.sub import c\n")
    (fake / "sub" / "c.py").write_text("try:\n    from ..b import lazy\nexcept ImportError:\n    pass\n"
                                       "\n\nclass K:\n    def ok(self, a, b, c, d, e, f, g, h, *args, **kw): ...\n"
                                       "    def wide(cls, a, b, c, d, e, f, g, h, *, i=0): ...\n"
                                       + "\n" * 392)
    monkeypatch.setitem(globals(), "ROOT", tmp_path)
    graph = import_graph()
    assert graph == {"structures": set(), "structures.sub": {"structures.sub.c"}, "structures.a": {"structures.sub.c"},
                     "structures.b": {"structures.a"}, "structures.sub.c": {"structures.b"}}
    assert import_cycles(graph) == ["structures.a -> structures.sub.c -> structures.b -> structures.a"]
    assert import_cycles({k: v - {"structures.a"} for k, v in graph.items()}) == []
    assert long_modules(("structures",)) == ["structures/sub/c.py: 401 lines"]
    assert wide_functions(("structures",)) == ["structures/sub/c.py:9 wide (9 parameters)"]
