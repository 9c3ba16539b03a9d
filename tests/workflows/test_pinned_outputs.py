"""Behaviour is unchanged by refactoring (issue 22): for fixed seeds, ``generate crystals`` and ``generate proteins``
with the shipped models write byte-identical files to the runs pinned in ``tests/fixtures/hashes/generate_runs.json``
(SHA-256 of every output file, made before the layout change). Both run in-process on one torch thread."""

from __future__ import annotations

import hashlib
import json
import shlex
from pathlib import Path

import pytest
import torch

from helpers import fixture_path
from workflows.cli import main

PINNED = json.loads(fixture_path("hashes", "generate_runs.json").read_text())


@pytest.fixture()
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def pinned_argv(material: str, out: Path) -> list[str]:
    """The pinned command line (``genmatch generate ... --out OUT``) with OUT replaced by ``out``."""
    argv = shlex.split(PINNED[material]["command"])
    assert argv[:3] == ["genmatch", "generate", material] and argv[-2:] == ["--out", "OUT"]
    return argv[1:-1] + [str(out)]


@pytest.mark.parametrize("material, folder, suffix", [("crystals", "cifs", ".cif"), ("proteins", "pdb", ".pdb")])
def test_generate_writes_the_pinned_files(material: str, folder: str, suffix: str, tmp_path: Path,
                                          one_thread: None, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert main(pinned_argv(material, out)) == 0, capsys.readouterr().err
    want: dict[str, str] = PINNED[material]["files"]
    written = sorted(p.relative_to(out).as_posix() for p in (out / folder).glob(f"*{suffix}"))
    assert written == sorted(k for k in want if k.startswith(f"{folder}/"))  # no structure more, none less
    got = {name: sha256(out / name) for name in want}
    assert got == want
