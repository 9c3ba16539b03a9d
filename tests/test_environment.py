"""The pinned environment: pyproject.toml is the single source of truth; environment.yml mirrors it."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import yaml

from tools.pins import PYPROJECT, normalise, pins

ROOT = Path(__file__).resolve().parents[1]


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
                       "torch-geometric": "2.8.1", "chgnet": "0.4.2", "geomstats": "2.8.0"}.items():
        assert p[name] == want


def test_installed_versions_match_pins() -> None:
    for name, want in pins().items():
        assert version(name).split("+")[0] == want, name


def test_pins_tool_prints_torch_pin() -> None:
    out = subprocess.run([sys.executable, str(ROOT / "tools" / "pins.py"), "torch"],
                         capture_output=True, text=True, check=True).stdout.strip()
    assert out == f"torch=={pins()['torch']}"
    assert PYPROJECT.is_file()
