"""The `genmatch` command line: help, info, usage errors (exit 2, one line), honest placeholders."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import REPO_ROOT

from workflows.cli import main

pytestmark = pytest.mark.timeout(600)  # a hang fails (with its stack) instead of stalling CI

ROOT = REPO_ROOT


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run the installed console script in a subprocess (what users run)."""
    exe = Path(sys.executable).with_name("genmatch")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "workflows.cli"]
    return subprocess.run(cmd + list(args), capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, **(env or {})}, timeout=300)


def test_help_lists_subcommands() -> None:
    r = run_cli("--help")
    assert r.returncode == 0
    for sub in ("info", "demo", "generate", "relax", "score", "train"):
        assert sub in r.stdout


@pytest.mark.parametrize("sub", ["info", "demo", "generate", "relax", "score", "train"])
def test_subcommand_help(sub: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([sub, "--help"]) == 0
    assert "usage: genmatch" in capsys.readouterr().out


def test_bad_subcommand_exits_2_with_one_line() -> None:
    r = run_cli("frobnicate")
    assert r.returncode == 2
    assert r.stdout == ""
    assert len(r.stderr.strip().splitlines()) == 1
    assert "Traceback" not in r.stderr and "frobnicate" in r.stderr


def test_bad_option_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", "--no-such-option"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "--no-such-option" in err


def test_no_subcommand_prints_help_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "usage: genmatch" in capsys.readouterr().out


def test_info_json_reports_versions_devices_data() -> None:
    r = run_cli("info", "--json")
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["packages"]["torch"].startswith("2.13.0")
    assert "cuda" in info["devices"]
    assert "chgnet" in info["models"] and "multiflow" in info["models"]
    assert info["models"]["crystals/perov_5"].startswith("shipped")
    assert info["datasets"]["perov_5/val"] == 3787
    assert info["datasets"]["carbon_24/test"] == 2030
    assert info["datasets"]["proteins"] == 3000


def test_info_text_without_data(tmp_path: Path) -> None:
    r = run_cli("info", "--fast", env={"GENMATCH_DATA": str(tmp_path)})
    assert r.returncode == 0, r.stderr
    assert "no data sets found" in r.stdout


def test_missing_data_is_one_line_error(tmp_path: Path) -> None:
    r = run_cli("demo", "--n-crystals", "2", "--n-proteins", "2", "--out", str(tmp_path / "demo"),
                env={"GENMATCH_DATA": str(tmp_path)})
    assert r.returncode == 2  # missing input data is bad input: exit 2, and no output folder is created
    assert not (tmp_path / "demo").exists()
    assert "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert "perov_5" in r.stderr and "CDVAE" in r.stderr


HELP_PATHS = [[], ["info"], ["demo"], ["generate", "crystals"], ["generate", "proteins"], ["relax", "crystals"],
              ["score", "crystals"], ["score", "proteins"], ["train", "crystals"], ["train", "proteins"]]


def test_help_imports_no_heavy_library() -> None:
    """``genmatch [VERB NOUN] --help`` builds the whole command table: it must not import torch, numpy or pymatgen
    (the handlers import them when a command runs), which is what keeps the help under half a second."""
    code = ("import sys\nfrom workflows.cli import main\n"
            f"codes = [main(p + ['--help']) for p in {HELP_PATHS!r}]\n"
            "heavy = sorted(m for m in ('torch', 'numpy', 'pymatgen', 'pandas', 'scipy') if m in sys.modules)\n"
            "print(codes, heavy)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == f"{[0] * len(HELP_PATHS)} []"


def test_the_heavy_import_check_sees_torch() -> None:
    """The check above fails when something on the help path imports torch."""
    code = "import sys\nimport manifolds.discrete as d\nd.sample\nprint('torch' in sys.modules)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert r.stdout.strip() == "True"
