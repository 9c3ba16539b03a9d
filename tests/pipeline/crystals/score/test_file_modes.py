"""Files the team can read (issue 25): every output file of a run gets the user's umask, as ``open`` would
give it (atomic writes start from ``mkstemp``'s 0600), and folders too; a private umask keeps them private."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
import torch

from structures.atomic import atomic_path, atomic_savez, current_umask, file_mode


def _modes(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): stat.S_IMODE(p.stat().st_mode) for p in [root, *root.rglob("*")]}


def _with_umask(mask: int, fn) -> None:  # noqa: ANN001 - any callable
    old = os.umask(mask)
    try:
        assert current_umask() == mask
        fn()
    finally:
        os.umask(old)


def test_current_umask_reads_without_changing_it() -> None:
    def check() -> None:
        assert current_umask() == 0o027 and file_mode() == 0o640
        assert os.umask(0o027) == 0o027  # unchanged by the read

    _with_umask(0o027, check)


@pytest.mark.parametrize("mask", [0o022, 0o077, 0o002])
def test_atomic_writes_get_the_umask(mask: int, tmp_path: Path) -> None:
    import numpy as np

    def write() -> None:
        with atomic_path(tmp_path / "a.txt") as tmp:
            tmp.write_text("x")
        with atomic_path(tmp_path / "b.pt") as tmp:  # a writer that replaces the temporary file
            os.unlink(tmp)
            torch.save({"x": 1}, tmp)
        atomic_savez(tmp_path / "c.npz", x=np.zeros(2))

    _with_umask(mask, write)
    for name in ("a.txt", "b.pt", "c.npz"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o666 & ~mask, name
    assert not list(tmp_path.glob(".*.tmp"))


@pytest.mark.parametrize("mask, file_bits, dir_bits", [(0o022, 0o644, 0o755), (0o077, 0o600, 0o700)])
def test_a_score_run_folder_follows_the_umask(mask: int, file_bits: int, dir_bits: int, tmp_path: Path,
                                              perov_test, capsys: pytest.CaptureFixture[str]) -> None:
    """A real ``score crystals`` run folder (tables, summary, run record, lock, PNG plots): readable by others
    under umask 022, by nobody else under 077."""
    from workflows.cli import main

    good, ref = tmp_path / "good", tmp_path / "ref"
    for folder, structures in ((good, perov_test[:2]), (ref, perov_test[2:5])):
        folder.mkdir()
        for i, s in enumerate(structures):
            (folder / f"s{i}.cif").write_text(s.to(fmt="cif"))
    out = tmp_path / "out"
    argv = ["score", "crystals", str(good), "--reference", str(ref), "--dataset", "perov_5", "--no-cache",
            "--n-samples", "2", "--quiet", "--threads", "1", "--out", str(out)]
    _with_umask(mask, lambda: main(argv) == 0 or pytest.fail(capsys.readouterr().err))
    modes = _modes(out)
    assert {"scores.csv", "scores.parquet", "summary.json", "run.json"} <= set(modes)
    assert any(name.endswith(".png") for name in modes)
    for name, bits in modes.items():
        want = dir_bits if (out / name).is_dir() else file_bits
        assert bits == want, f"{name}: {oct(bits)} != {oct(want)}"
