"""`genmatch relax proteins` and ``workflows.proteins.relax`` end to end: a folder of native fragments beside
files that cannot be built (one failed row each), over 2 processes, files that follow the umask, a rerun that
does no work, the same models in memory with 1 process, and bad arguments (exit 2, nothing written)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from helpers import REPO_ROOT
from workflows.cli import main

pytest.importorskip("openmm")
pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def pdb_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from structures.data import load_proteins
    from structures.proteins.inputs import as_backbone_chain
    from structures.proteins.io import write_structure

    d = tmp_path_factory.mktemp("pdbs")
    ds = load_proteins()
    for i in (7, 29):
        c = as_backbone_chain("c", ds[i])
        write_structure(d / f"{c.name}.pdb", replace(c, coords=c.coords[:10], atom_mask=c.atom_mask[:10],
                                                     sequence=c.sequence[:10], res_ids=c.res_ids[:10],
                                                     ins_codes=c.ins_codes[:10], res_names=None))
        if i == 7:
            write_structure(d / "unknown.pdb", replace(c, coords=c.coords[:6], atom_mask=c.atom_mask[:6],
                                                       sequence="AAXAAA", res_ids=c.res_ids[:6],
                                                       ins_codes=c.ins_codes[:6], res_names=None))
            mask = c.atom_mask[:6].copy()
            mask[3, 1] = False  # residue 4 has no CA
            write_structure(d / "no_ca.pdb", replace(c, coords=c.coords[:6], atom_mask=mask,
                                                     sequence=c.sequence[:6], res_ids=c.res_ids[:6],
                                                     ins_codes=c.ins_codes[:6], res_names=None))
    (d / "zz_text.pdb").write_text("this is not a structure\n")
    return d


def _modes(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): stat.S_IMODE(p.stat().st_mode) for p in [root, *root.rglob("*")]}


def _run(argv: list[str], mask: int = 0o022) -> int:
    old = os.umask(mask)
    try:
        return main(argv)
    finally:
        os.umask(old)


def test_relax_proteins_end_to_end_resume_and_the_same_models_in_memory(
        pdb_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    argv = ["relax", "proteins", str(pdb_dir), "--out", str(out), "--workers", "2", "--quiet"]
    assert _run(argv, 0o027) == 0, capsys.readouterr().err
    assert "relaxed 5 proteins: 2 without violations" in capsys.readouterr().out
    t = pd.read_csv(out / "relax_results.csv")
    assert list(t["id"]) == ["1AHO_A", "1BGF_A", "no_ca", "unknown", "zz_text"]
    reasons = dict(zip(t["id"], t["reason"].fillna("")))
    assert list(t["status"]) == ["relaxed", "relaxed", "failed", "failed", "failed"]
    assert "miss" in reasons["no_ca"] and "CA" in reasons["no_ca"]
    assert reasons["unknown"].startswith("unknown residue: UNK")
    assert reasons["zz_text"].startswith("bad input: unreadable")
    ok = t[t["status"] == "relaxed"]
    assert ok["backbone_rmsd"].astype(float).lt(0.5).all()
    assert (ok["energy_after_per_residue"].astype(float) < ok["energy_before_per_residue"].astype(float)).all()
    assert sorted(p.name for p in (out / "relaxed").iterdir()) == ["1AHO_A.pdb", "1BGF_A.pdb"]
    assert pd.read_parquet(out / "relax_results.parquet").shape == t.shape
    s = json.loads((out / "relax_summary.json").read_text())
    assert (s["n"], s["relaxed"], s["failed"], s["n_bad_input"]) == (5, 2, 3, 2)
    assert s["settings"]["stiffness"] == 10.0 and s["settings"]["tolerance"] == 2.39
    for name, bits in _modes(out).items():  # umask 027: group may read, others nothing
        assert bits == (0o750 if (out / name).is_dir() else 0o640), f"{name}: {oct(bits)}"

    # a rerun does no work: the checkpoint and the models are not rewritten
    ckpt = (out / "relax_checkpoint.jsonl").read_bytes()
    stamps = {p.name: p.stat().st_mtime_ns for p in (out / "relaxed").iterdir()}
    assert _run(argv) == 0
    assert (out / "relax_checkpoint.jsonl").read_bytes() == ckpt
    assert {p.name: p.stat().st_mtime_ns for p in (out / "relaxed").iterdir()} == stamps
    pd.testing.assert_frame_equal(pd.read_csv(out / "relax_results.csv"), t)

    # other settings in the same folder are refused before any work
    assert _run([*argv, "--stiffness", "5"]) == 2
    assert "other" in capsys.readouterr().err and (out / "relax_checkpoint.jsonl").read_bytes() == ckpt

    # in memory, one process: the same models, byte for byte
    from workflows import proteins

    mem = proteins.relax(pdb_dir, workers=1, progress=False)
    assert mem.out_dir is None and mem.pdbs[2:] == [None, None, None]
    for name, text in zip(mem.ids[:2], mem.pdbs[:2]):
        assert text == (out / "relaxed" / f"{name}.pdb").read_text()
    np.testing.assert_allclose(mem.table["backbone_rmsd"].astype(float)[:2], t["backbone_rmsd"].astype(float)[:2])


@pytest.mark.parametrize("extra, message", [
    (["--stiffness", "-1"], "--stiffness"), (["--tolerance", "0"], "--tolerance"), (["--ph", "15"], "--ph"),
    (["--max-outer-iterations", "0"], "--max-outer-iterations"), (["--workers", "0"], "--workers"),
    (["--max-iterations", "-3"], "--max-iterations")])
def test_bad_options_exit_2_before_any_output(pdb_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                              extra: list[str], message: str) -> None:
    out = tmp_path / "out"
    assert main(["relax", "proteins", str(pdb_dir), "--out", str(out), *extra]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_a_missing_input_exits_2_and_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert main(["relax", "proteins", str(tmp_path / "nowhere"), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("genmatch: error:") and "nowhere" in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_a_single_file_that_is_not_a_structure_exits_2(pdb_dir: Path, tmp_path: Path) -> None:
    assert main(["relax", "proteins", str(pdb_dir / "zz_text.pdb"), "--out", str(tmp_path / "out")]) == 2
    assert not (tmp_path / "out").exists()


def test_the_python_verb_refuses_unknown_fields_and_bad_values() -> None:
    from structures.errors import InputError
    from workflows import proteins

    with pytest.raises(InputError, match="stifness"):
        proteins.relax([], stifness=1.0)
    with pytest.raises(InputError, match="ProteinRelaxConfig.stiffness"):
        proteins.relax([], stiffness=-1.0)


def test_relax_proteins_help_imports_no_heavy_library() -> None:
    code = ("import sys\nfrom workflows.cli import main\ncode = main(['relax', 'proteins', '--help'])\n"
            "print(code, sorted(m for m in ('torch', 'numpy', 'openmm', 'pdbfixer', 'pandas') if m in sys.modules))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == "0 []"
