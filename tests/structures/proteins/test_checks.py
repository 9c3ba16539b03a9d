"""The protein structure checks (issue 25): non-regular files never opened, coordinates finite and in a physical
box, complete backbones, non-standard residues mapped or refused by name, and safe sample ids."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from protein_files import SEQ, backbone, finishes, pdb_lines, rename, set_x, special_entries, write

from structures.data import ProteinChain
from structures.errors import InputError
from structures.ids import MAX_ID, safe_id
from structures.proteins.checks import check_chain, checked, file_problem
from structures.proteins.dataset import ChainFilter, ProteinDataset
from structures.proteins.inputs import as_backbone_chain, read_backbones, read_fasta, structure_files
from structures.proteins.io import BackboneChain, StructureFileError, read_chain

# ---------------------------------------------------------------------------------------------- files


def test_file_problem_names_every_kind_of_non_regular_file(tmp_path: Path) -> None:
    paths = special_entries(tmp_path / "f")
    (tmp_path / "ok.pdb").write_text("x")
    assert file_problem(tmp_path / "ok.pdb") is None
    assert "broken symbolic link" in file_problem(paths["dangling"])
    assert "symbolic link loop" in file_problem(paths["loop"])
    assert "fifo" in file_problem(paths["fifo"])
    assert "folder" in file_problem(paths["dir"])
    assert "cannot access" in file_problem(tmp_path / "absent.pdb")


def test_readers_refuse_non_regular_files_without_opening_them(tmp_path: Path) -> None:
    paths = special_entries(tmp_path / "f")
    with pytest.raises(StructureFileError, match="fifo"):
        finishes(lambda: read_chain(paths["fifo"]))
    with pytest.raises(StructureFileError, match="folder"):
        finishes(lambda: read_chain(paths["dir"]))
    os.mkfifo(tmp_path / "in.fasta")
    with pytest.raises(InputError, match="sequence_in: .*in.fasta is a fifo"):
        finishes(lambda: read_fasta(tmp_path / "in.fasta", "sequence_in"))
    with pytest.raises(InputError, match="does not exist"):
        read_fasta(tmp_path / "absent.fasta")
    assert structure_files(tmp_path / "f") == []
    assert [p.name for p in structure_files(tmp_path / "f", special=True)] == [
        "dangling.pdb", "dir.pdb", "fifo.pdb", "loop.pdb"]
    with pytest.raises(InputError, match="structure_in: .*dangling.pdb: a broken symbolic link"):
        finishes(lambda: read_backbones(tmp_path / "f", "structure_in"))


# ---------------------------------------------------------------------------------------------- chains


def test_a_good_chain_passes(tmp_path: Path) -> None:
    chain = read_chain(write(tmp_path / "good.pdb", pdb_lines(tmp_path)))
    assert check_chain(chain).problem is None and check_chain(chain).notes == ()
    assert checked(chain, "x") is chain


@pytest.mark.parametrize("field, text", [("     nan", "residue PHE 5: non-finite"),
                                         ("12345678", "residue PHE 5: a coordinate of 1.23e\\+07 Angstrom")])
def test_non_finite_and_overflowing_coordinates_are_refused_by_residue(tmp_path: Path, field: str, text: str) -> None:
    chain = read_chain(write(tmp_path / "bad.pdb", set_x(pdb_lines(tmp_path), 5, "CA", field)))
    assert len(chain) == len(SEQ)
    with pytest.raises(InputError, match=f"bad.pdb: chain A {text}"):
        checked(chain, str(tmp_path / "bad.pdb"))


def test_non_finite_coordinates_given_in_python_are_refused() -> None:
    x = backbone()
    x[3, 0, 1] = np.nan
    chain = as_backbone_chain("c", ProteinChain(name="p", coords=x, sequence=SEQ, dssp="-" * len(SEQ)))
    assert "residue GLU 4: non-finite" in check_chain(chain).problem
    x[3, 0, 1] = np.inf
    assert "non-finite" in check_chain(BackboneChain.from_coords(x, SEQ)).problem
    x[3, 0, 1] = -2e4
    assert "outside +-9999" in check_chain(BackboneChain.from_coords(x, SEQ)).problem


def test_missing_backbone_atoms_name_the_residues(tmp_path: Path) -> None:
    lines = [line for line in pdb_lines(tmp_path)
             if not (line.startswith("ATOM") and line[12:16].strip() == "CA" and int(line[22:26]) in (3, 5))]
    chain = read_chain(write(tmp_path / "noca.pdb", lines))
    assert check_chain(chain).problem == "chain A residues ASP 3, PHE 5 miss CA atoms; give a complete backbone"
    no_o = [line for line in pdb_lines(tmp_path) if not (line.startswith("ATOM") and line[12:16].strip() == "O")]
    assert check_chain(read_chain(write(tmp_path / "no_o.pdb", no_o))).problem is None  # O is rebuilt where needed


def test_modified_residues_are_mapped_and_said(tmp_path: Path) -> None:
    lines = rename(pdb_lines(tmp_path), "CYS", "MSE")
    chain = read_chain(write(tmp_path / "mse.pdb", lines))
    assert len(chain) == len(SEQ) and chain.sequence[1] == "M"
    verdict = check_chain(chain)
    assert verdict.problem is None and verdict.notes == ("chain A: MSE read as MET (1 residue)",)
    with pytest.warns(UserWarning, match="mse.pdb: chain A: MSE read as MET"):
        checked(chain, "mse.pdb")


@pytest.mark.parametrize("name, hetatm", [("XYZ", True), ("DAL", False)])
def test_other_residues_are_kept_in_place_and_refused_by_name(tmp_path: Path, name: str, hetatm: bool) -> None:
    chain = read_chain(write(tmp_path / "x.pdb", rename(pdb_lines(tmp_path), "GLU", name, hetatm)))
    assert len(chain) == len(SEQ) and chain.res_names[3] == name  # not silently dropped from the middle
    assert check_chain(chain).problem.startswith(f"chain A residue {name} 4: not a standard amino acid")


def test_unknown_residue_type_is_kept() -> None:
    assert check_chain(BackboneChain.from_coords(backbone(4), "XXGX")).problem is None


def test_read_backbones_checks_every_chain_and_names_it_safely(tmp_path: Path) -> None:
    folder = tmp_path / "t"
    folder.mkdir()
    write(folder / "a b.pdb", pdb_lines(tmp_path))
    [chain] = read_backbones(folder, "structure_in")
    assert chain.name.startswith("a_b_A-") and chain.name == safe_id("a b_A")
    write(folder / "z.pdb", set_x(pdb_lines(tmp_path), 2, "N", "     nan"))
    with pytest.raises(InputError, match="structure_in: .*z.pdb: chain A residue CYS 2: non-finite"):
        read_backbones(folder, "structure_in")


def test_training_folders_reject_bad_files_and_chains(tmp_path: Path) -> None:
    folder = tmp_path / "train"
    special_entries(folder)
    write(folder / "good.pdb", pdb_lines(tmp_path))
    write(folder / "nan.pdb", set_x(pdb_lines(tmp_path), 2, "N", "     nan"))
    write(Path(os.fsdecode(os.path.join(os.fsencode(folder), b"t\xe9st.pdb"))), pdb_lines(tmp_path))
    ds = finishes(lambda: ProteinDataset.from_directory(folder, ChainFilter(min_length=1), progress=False,
                                                        cache=tmp_path / "cache"))
    assert len(ds) == 2 and all(str(i).isascii() for i in ds.backbones.pdb_id)
    assert "non-finite" in ds.rejected["nan_A"] and "fifo" in ds.rejected["fifo.pdb"]
    assert {"dangling.pdb", "loop.pdb", "dir.pdb"} <= set(ds.rejected)


# ---------------------------------------------------------------------------------------------- ids


def test_safe_ids() -> None:
    assert safe_id("1abc_A") == "1abc_A" and safe_id("x.y+z-1") == "x.y+z-1"
    bad = os.fsdecode(b"caf\xe9")  # a file name that is not valid UTF-8 (surrogate escape)
    for name in [bad, "café", "a/b", "a b", ".hidden", "-rf", "CON", "x" * 200, "", "a:b", "end."]:
        ident = safe_id(name)
        assert ident.isascii() and len(ident) <= MAX_ID and ident[0] not in ".-" and not ident.endswith(".")
        assert ident != name and ident.split(".")[0].upper() != "CON" and "/" not in ident
        ident.encode("utf-8")
    assert safe_id("a b") != safe_id("a_b") and safe_id("a:b") != safe_id("a/b")
    assert safe_id(bad) == safe_id(bad)  # the same on every run


def test_fasta_names_become_safe_ids(tmp_path: Path) -> None:
    (tmp_path / "s.fasta").write_text(">ok\nACD\n>../../evil name\nKLM\n")
    [(a, _), (b, _)] = read_fasta(tmp_path / "s.fasta")
    assert a == "ok" and "/" not in b and b.startswith("_._.._evil-")
