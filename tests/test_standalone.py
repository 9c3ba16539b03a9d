"""The repository stands alone (issue 22).

(a) No file of the repository points outside it: no tracked (or new, not ignored) text file mentions the folders
    of the shared workspace beside the repository or its reference notes; fixtures, the changelog and this test
    are the exceptions.
(b) ``pip wheel .`` of the working tree packages the embedded data (``structures/embedded``) and the shipped
    models (``pipeline/models``) as package data.
(c) That wheel, installed into a folder of its own, generates crystals and proteins from an unrelated working
    directory with no module loaded from the repository (slow).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
OUTSIDE = ("../" + "shared", "shared/" + "data", "shared/" + "reference", "REFERENCE" + ".md")  # split: no self-hit
EXEMPT_PREFIXES = ("tests/fixtures/",)
EXEMPT_FILES = ("CHANGELOG.md", "tests/test_standalone.py")
PACKAGE_DATA = ["structures/embedded/crystals/perov_5/val.csv.xz", "structures/embedded/crystals/perov_5/test.csv.xz",
                "structures/embedded/crystals/carbon_24/val.csv.xz",
                "structures/embedded/crystals/carbon_24/test.csv.xz",
                "structures/embedded/mp/2023-02-07-mp-elemental-reference-entries.json.gz",
                "structures/embedded/proteins/promod3_backbones.npz",
                "structures/embedded/proteins/rfdiffusion_benchmark.json"]
MODELS = ["perov_5_small", "carbon_24_small", "protein_small", "perov_5_predictor", "perov_5_judge"]


def repository_files() -> list[str]:
    """Tracked files and new files git does not ignore, that exist in the working tree (repository-relative)."""
    out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                         capture_output=True, check=True).stdout
    return sorted({f for f in out.decode().split("\0") if f and (ROOT / f).is_file()})


def mentions_outside(files: list[str], root: Path = ROOT) -> list[str]:
    """``path:line: text`` of every line of a text file that names a place outside the repository."""
    hits = []
    for name in files:
        if name.startswith(EXEMPT_PREFIXES) or name in EXEMPT_FILES:
            continue
        data = (root / name).read_bytes()
        if b"\0" in data:
            continue  # binary
        for k, line in enumerate(data.decode("utf-8", errors="replace").splitlines(), 1):
            if any(p in line for p in OUTSIDE):
                hits.append(f"{name}:{k}: {line.strip()[:120]}")
    return hits


def test_no_file_points_outside_the_repository() -> None:
    files = repository_files()
    assert "README.md" in files and "structures/data.py" in files  # the listing is the repository's
    hits = mentions_outside(files)
    assert hits == [], "files that point outside the repository:\n" + "\n".join(hits)


def test_the_scanner_sees_mentions(tmp_path: Path) -> None:
    (tmp_path / "tests" / "fixtures").mkdir(parents=True)
    (tmp_path / "a.py").write_text('DATA = Path("..") / "shared" / "data"\nx = 1  # see ../shared/reference\n')
    (tmp_path / "b.md").write_text("see REFERENCE.md\n")
    (tmp_path / "c.bin").write_bytes(b"\0../shared")
    (tmp_path / "tests" / "fixtures" / "README.md").write_text("from ../shared/reference\n")
    (tmp_path / "CHANGELOG.md").write_text("moved from ../shared/data\n")
    files = ["a.py", "b.md", "c.bin", "tests/fixtures/README.md", "CHANGELOG.md"]
    assert mentions_outside(files, tmp_path) == ["a.py:2: x = 1  # see ../shared/reference", "b.md:1: see REFERENCE.md"]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A wheel of a copy of the working tree (its tracked and new files), built offline with the venv's
    setuptools; the copy keeps the build's scratch folders out of the repository."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    for name in repository_files():
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, src / name)
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                        "--disable-pip-version-check", "-q", "-w", str(tmp / "dist"), str(src)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    (path,) = (tmp / "dist").glob("genmatch-*.whl")
    return path


def test_the_wheel_holds_the_embedded_data_and_the_shipped_models(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    missing = [n for n in PACKAGE_DATA if n not in names]
    missing += [f"pipeline/models/{m}.{ext}" for m in MODELS for ext in ("safetensors", "json")
                if f"pipeline/models/{m}.{ext}" not in names]
    assert missing == []
    assert {n for n in names if n.startswith("pipeline/models/") and n.endswith(".safetensors")} == {
        f"pipeline/models/{m}.safetensors" for m in MODELS}
    # the packaged bytes are the repository's
    with zipfile.ZipFile(wheel) as z:
        for n in PACKAGE_DATA[:1] + ["pipeline/models/protein_small.safetensors"]:
            assert z.read(n) == (ROOT / n).read_bytes(), n


PACKAGES = ("manifolds", "structures", "pipeline", "workflows")
CHILD = """
import json, sys
from workflows.cli import main
rc = main(sys.argv[1:])
names = {packages!r}
files = {{n: getattr(m, "__file__", None) or "" for n, m in list(sys.modules.items()) if n.split(".")[0] in names}}
print(json.dumps({{"rc": rc, "from_repo": sorted(f for f in files.values() if f.startswith({repo!r})),
                  "from_site": len([f for f in files.values() if f.startswith({site!r})])}}))
"""


@pytest.mark.slow
@pytest.mark.parametrize("argv, folder, suffix, n", [
    (["generate", "crystals", "-n", "4", "--steps", "5"], "cifs", ".cif", 4),
    (["generate", "proteins", "--lengths", "50", "--per-length", "2", "--steps", "5"], "pdb", ".pdb", 2)])
def test_the_installed_wheel_generates_from_any_folder(wheel: Path, argv: list[str], folder: str, suffix: str,
                                                       n: int, tmp_path: Path) -> None:
    """``pip install --target`` of the wheel; run from a folder outside the repository with ``python -S`` (no
    site-packages, so no editable-install hook) and only the installed copy plus the venv's third-party
    packages on the path: the shipped models and the embedded data must come from the installed copy."""
    site = tmp_path / "site"
    r = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "-q",
                        "--disable-pip-version-check", "--target", str(site), str(wheel)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    work = tmp_path / "work"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GENMATCH_", "PYTHON"))}
    env.update(PYTHONPATH=os.pathsep.join([str(site), sysconfig.get_paths()["purelib"]]),
               GENMATCH_CACHE=str(tmp_path / "cache"), OMP_NUM_THREADS="1")
    code = CHILD.format(packages=PACKAGES, repo=str(ROOT) + os.sep, site=str(site) + os.sep)
    out = work / "out"
    r = subprocess.run([sys.executable, "-S", "-c", code, *argv, "--quiet", "--threads", "1", "--out", str(out)],
                       cwd=work, env=env, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    report = json.loads(r.stdout.strip().splitlines()[-1])
    assert report["rc"] == 0 and report["from_repo"] == [] and report["from_site"] > 20, report
    assert len(list((out / folder).glob(f"*{suffix}"))) == n
