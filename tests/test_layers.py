"""Imports only go downward: manifolds <- structures <- pipeline <- workflows (README "Layout").

Every module of the four packages is parsed with ``ast`` (nothing is imported), and every import in it, at module
level or inside a function, under ``TYPE_CHECKING`` or not, relative or absolute, as well as
``importlib.import_module("...")`` with a constant name, must name a package of its own layer or one below.
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
