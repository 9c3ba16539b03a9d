"""PDB / mmCIF backbone read and write with biotite: real chains and hand-made awkward files."""

from __future__ import annotations

import gzip
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from structures.data import load_proteins
from structures.proteins.io import BackboneChain, StructureFileError, read_chain, read_chains, write_structure
from structures.proteins.residue_constants import RESTYPE_1TO3, RESTYPES


@pytest.fixture(scope="module")
def chain():
    c = load_proteins()[0]
    return BackboneChain.from_coords(c.coords, c.sequence, b_factors=(np.arange(len(c)) % 50).astype(np.float32),
                                     name=c.name)


@pytest.mark.parametrize("ext", ["pdb", "cif", "bcif"])
def test_roundtrip_coords_sequence_bfactors(chain, tmp_path, ext):
    path = write_structure(tmp_path / f"x.{ext}", chain)
    back = read_chain(path)
    assert back.sequence == chain.sequence and back.chain_id == "A"
    assert np.abs(back.coords - chain.coords).max() < 1e-3 and back.atom_mask.all()
    assert np.allclose(back.b_factors, chain.b_factors)
    assert (back.res_ids == np.arange(1, len(chain) + 1)).all()
    assert not back.chain_breaks().any() and back.standard.all()
    assert back.to_protein_chain().coords.shape == (len(chain), 4, 3)
    assert not list(tmp_path.glob(".*tmp"))  # no temporary files left behind


@pytest.mark.parametrize("ext", ["pdb", "cif"])
def test_multi_model_trajectory_and_multiple_chains(chain, tmp_path, ext):
    traj = BackboneChain.from_coords(np.stack([chain.coords + k for k in range(3)]), chain.sequence)
    path = write_structure(tmp_path / f"t.{ext}", [traj, replace(traj, chain_id="B")])
    chains = read_chains(path, model="all")
    assert [c.chain_id for c in chains] == ["A", "B"]
    assert chains[1].coords.shape == (3, len(chain), 4, 3) and chains[1].n_models == 3
    assert np.abs(chains[1].coords[2] - (chain.coords + 2)).max() < 1e-3
    second = read_chain(path, chain="B", model=2)
    assert np.abs(second.coords - (chain.coords + 1)).max() < 1e-3
    with pytest.raises(StructureFileError, match="model 5"):
        read_chain(path, model=5)
    with pytest.raises(StructureFileError, match="no protein chain 'Z'.*A, B"):
        read_chain(path, chain="Z")


def _line(rec, serial, name, alt, res, chain, resid, icode, xyz, occ, b, el):
    return (f"{rec:<6}{serial:>5} {name:<4}{alt:1}{res:>3} {chain:1}{resid:>4}{icode:1}   "
            f"{xyz[0]:8.3f}{xyz[1]:8.3f}{xyz[2]:8.3f}{occ:6.2f}{b:6.2f}          {el:>2}")


def _awkward_pdb(coords: np.ndarray, seq: str) -> str:
    """12 residues of a real chain with: an MSE HETATM (res 3), an insertion code (res 5 -> 4A),
    two altlocs for CA of res 7 (B has the higher occupancy), no O in res 9, a water, a ligand,
    and a second chain B (residues 1-4)."""
    three = RESTYPE_1TO3
    lines, serial = [], 1
    for chain_id, n_res in (("A", 12), ("B", 4)):
        for i in range(n_res):
            rec, res = "ATOM", three[seq[i]]
            resid, icode = i + 1, ""
            if i == 2:
                rec, res = "HETATM", "MSE"
            if i == 4:
                resid, icode = 4, "A"
            for k, name in enumerate(("N", "CA", "C", "O")):
                if i == 8 and name == "O":
                    continue
                xyz = coords[i, k]
                if i == 6 and name == "CA":
                    lines.append(_line(rec, serial, name, "A", res, chain_id, resid, icode, xyz + 1.0, 0.4, 20.0, "C"))
                    serial += 1
                    lines.append(_line(rec, serial, name, "B", res, chain_id, resid, icode, xyz, 0.6, 10.0, "C"))
                else:
                    lines.append(_line(rec, serial, name, "", res, chain_id, resid, icode, xyz, 1.0, 5.0 + k, name[0]))
                serial += 1
    lines.append(_line("HETATM", serial, "O", "", "HOH", "A", 101, "", np.zeros(3), 1.0, 30.0, "O"))
    lines.append(_line("HETATM", serial + 1, "C1", "", "GOL", "A", 102, "", np.ones(3), 1.0, 30.0, "C"))
    return "\n".join(lines + ["END", ""])


def test_awkward_pdb_altloc_insertion_hetatm_missing_o(tmp_path):
    c = load_proteins()[0]
    seq = c.sequence[:12]
    path = tmp_path / "awkward.pdb"
    path.write_text(_awkward_pdb(c.coords, seq))
    chains = read_chains(path)
    assert [x.chain_id for x in chains] == ["A", "B"] and len(chains[1]) == 4
    a = chains[0]
    assert len(a) == 12  # water and ligand dropped, 4 and 4A are two residues
    assert a.sequence == seq[:2] + "M" + seq[3:]
    assert a.res_names[2] == "MSE" and not a.standard[2] and a.standard[[0, 1, 3]].all()
    assert a.res_ids[3:6].tolist() == [4, 4, 6] and a.ins_codes[3:6].tolist() == ["", "A", ""]
    assert np.allclose(a.coords[6, 1], c.coords[6, 1], atol=1e-3)  # altloc B (occupancy 0.6) wins
    assert a.b_factors[6, 1] == pytest.approx(10.0)
    assert not a.atom_mask[8, 3] and a.atom_mask.sum() == 12 * 4 - 1 and (a.coords[8, 3] == 0).all()
    assert not a.chain_breaks().any()  # numbering gap 4A -> 6 but peptide bonds intact
    assert read_chain(path, altloc="first").coords[6, 1] == pytest.approx(c.coords[6, 1] + 1.0, abs=1e-3)
    no_het = read_chain(path, include_hetero=False)
    assert len(no_het) == 11 and "MSE" not in no_het.res_names
    # mmCIF of the same content, gzipped, reads identically
    cif = write_structure(tmp_path / "awkward.cif", chains)
    gz = tmp_path / "awkward.cif.gz"
    gz.write_bytes(gzip.compress(cif.read_bytes()))
    again = read_chains(gz)
    assert again[0].sequence == a.sequence and np.allclose(again[0].coords, a.coords, atol=1e-3)
    assert (again[0].atom_mask == a.atom_mask).all() and again[0].ins_codes[4] == "A"


def test_clear_errors_for_unusable_files(tmp_path, chain):
    with pytest.raises(StructureFileError, match="no such file"):
        read_chain(tmp_path / "missing.pdb")
    (tmp_path / "x.xyz").write_text("1\n\nC 0 0 0\n")
    with pytest.raises(StructureFileError, match="unknown structure format"):
        read_chain(tmp_path / "x.xyz")
    (tmp_path / "empty.pdb").write_text("")
    with pytest.raises(StructureFileError, match="empty.pdb"):
        read_chain(tmp_path / "empty.pdb")
    (tmp_path / "junk.cif").write_text("this is not a cif file\n")
    with pytest.raises(StructureFileError, match="junk.cif"):
        read_chain(tmp_path / "junk.cif")
    water = _line("HETATM", 1, "O", "", "HOH", "A", 1, "", np.zeros(3), 1.0, 0.0, "O")
    (tmp_path / "water.pdb").write_text(water + "\nEND\n")
    with pytest.raises(StructureFileError, match="no amino-acid"):
        read_chain(tmp_path / "water.pdb")
    # a failed write leaves the previous file untouched and no temporary file
    target = write_structure(tmp_path / "keep.pdb", chain)
    before = target.read_bytes()
    with pytest.raises(StructureFileError, match="mmCIF"):
        write_structure(target, replace(chain, coords=chain.coords * 1000))
    assert target.read_bytes() == before and not list(tmp_path.glob(".*tmp"))
    with pytest.raises(ValueError, match="NaN"):
        write_structure(tmp_path / "nan.pdb", replace(chain, coords=np.full_like(chain.coords, np.nan)))


@settings(max_examples=20, deadline=None)
@given(L=st.integers(1, 25), seed=st.integers(0, 2**31 - 1), chain_id=st.sampled_from(list("ABXZ")),
       ext=st.sampled_from(["pdb", "cif"]))
def test_random_backbones_roundtrip(tmp_path_factory, L, seed, chain_id, ext):
    """Any coordinates PDB can hold, any standard sequence and B-factors survive a write + read."""
    rng = np.random.default_rng(seed)
    coords = rng.uniform(-999.0, 999.0, (L, 4, 3)).astype(np.float32)
    seq = "".join(rng.choice(list(RESTYPES), L))
    bf = rng.uniform(0, 99.0, L).astype(np.float32)
    c = BackboneChain.from_coords(coords, seq, chain_id=chain_id, b_factors=bf)
    path = write_structure(tmp_path_factory.mktemp("rt") / f"r.{ext}", c)
    back = read_chain(path, chain=chain_id)
    assert back.sequence == seq and len(back) == L
    assert np.abs(back.coords - coords).max() <= 1e-3 + 1e-4
    assert np.abs(back.b_factors - bf[:, None]).max() <= 0.01
