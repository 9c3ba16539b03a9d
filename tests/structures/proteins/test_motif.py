"""Motif reading (a real chain of the embedded backbone set written to PDB), placement into drawn layouts, every
refusal with its message, and the RFdiffusion benchmark's problems run on synthetic files."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from structures.data import load_proteins
from structures.errors import InputError
from structures.proteins.contig import MotifSegment, benchmark_problem, benchmark_problems, parse_contig
from structures.proteins.frames import frames_from_atoms
from structures.proteins.io import BackboneChain, write_structure
from structures.proteins.motif import read_motif, place_motif
from structures.proteins.residue_constants import MASK_INDEX, sequence_to_indices

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def chains():
    data = load_proteins()
    return [data[i] for i in range(40)]


@pytest.fixture(scope="module")
def real(chains):
    """Chain 0 of the backbone set with its own residue numbers (1A4I_A, 239 residues from 2), and a decoy chain."""
    c = chains[0]
    first = c.start_resnum
    return BackboneChain.from_coords(c.coords, c.sequence, res_ids=np.arange(first, first + len(c)), name=c.name)


def write(path: Path, *chains: BackboneChain) -> Path:
    return write_structure(path, list(chains))


def test_read_motif_from_a_real_chain(real, chains, tmp_path):
    other = BackboneChain.from_coords(chains[1].coords, chains[1].sequence, chain_id="B")
    path = write(tmp_path / "motif.pdb", real, other)
    spec = parse_contig("5-10/A100-112:seq/4-8/A20-30/0-5/B5-9/3", "40-60")  # not in file order
    motif = read_motif(path, spec)
    rows = np.r_[98:111, 18:29]  # residue r is row r - 2 of chain A
    assert len(motif) == 29 and motif.source == str(path)
    assert np.abs(motif.coords[:24] - real.coords[rows]).max() < 1e-3
    assert np.abs(motif.coords[24:] - chains[1].coords[4:9]).max() < 1e-3
    assert motif.sequence == "".join(real.sequence[i] for i in rows) + chains[1].sequence[4:9]
    assert (motif.aatype == sequence_to_indices(motif.sequence)).all()
    assert list(motif.res_ids) == list(range(100, 113)) + list(range(20, 31)) + list(range(5, 10))
    assert motif.chain_ids == ("A",) * 24 + ("B",) * 5
    assert motif.sequence_fixed.tolist() == [True] * 13 + [False] * 16
    assert [s.stop - s.start for s in motif.segment_slices()] == [13, 11, 5]
    frames = frames_from_atoms(torch.from_numpy(motif.coords).double())
    assert np.allclose(motif.rotmats, frames.rots.numpy(), atol=1e-5) and np.allclose(motif.trans, motif.coords[:, 1])
    r = motif.rotmats.astype(np.float64)
    assert np.allclose(r @ r.transpose(0, 2, 1), np.eye(3), atol=1e-5) and np.allclose(np.linalg.det(r), 1, atol=1e-5)


def test_place_motif_centres_on_the_motif_ca_centroid(real, tmp_path):
    path = write(tmp_path / "motif.pdb", real)
    spec = parse_contig("5-10/A100-112:seq/4-8/A20-30/0-5", "30-40")
    motif = read_motif(path, spec)
    for seed in range(5):
        draw = spec.draw(seed)
        placed = place_motif(motif, draw)
        at = placed.motif_mask
        assert len(placed) == len(draw) and at.sum() == len(motif) and (at == draw.motif_mask).all()
        assert np.allclose(placed.centre, motif.coords[:, 1].mean(0), atol=1e-4)
        assert np.abs(placed.trans[at].mean(0)).max() < 1e-4  # centred on the motif's CA centroid
        assert np.allclose(placed.coords[at] + placed.centre, motif.coords, atol=1e-4)  # a pure translation
        assert np.allclose(placed.rotmats[at], motif.rotmats) and np.allclose(placed.trans, placed.coords[:, 1])
        assert (placed.aatype[at] == motif.aatype).all() and (placed.aatype[~at] == MASK_INDEX).all()
        assert not placed.coords[~at].any() and np.allclose(placed.rotmats[~at], np.eye(3))
        assert (placed.sequence_fixed == (at & np.isin(placed.motif_index, np.arange(13)))).all()
    other = parse_contig("5-10/A100-112/4-8/A20-30/0-5", "30-40")
    with pytest.raises(ValueError, match="the draw is of contig"):
        place_motif(motif, other.draw(0))


def test_a_missing_oxygen_is_rebuilt_and_unknown_residues_are_not_sequence_fixed(real, tmp_path):
    mask = np.ones((len(real), 4), bool)
    mask[[18, 23], 3] = False  # residues 20 and 25
    names = list(real.res_names)
    names[20] = "UNK"  # residue 22
    path = write(tmp_path / "motif.pdb", replace(real, atom_mask=mask, res_names=tuple(names)))
    motif = read_motif(path, parse_contig("A20-30:seq/5"))
    o = motif.coords[[0, 5], 3]
    assert np.linalg.norm(o - real.coords[[18, 23], 3], axis=-1).max() < 0.5  # rebuilt near the true O
    assert np.linalg.norm(o - motif.coords[[0, 5], 2], axis=-1) == pytest.approx(1.231, abs=1e-3)
    assert motif.sequence[2] == "X" and motif.sequence_fixed.tolist() == [True] * 2 + [False] + [True] * 8


def test_bad_motifs_are_refused_with_a_one_line_message(real, tmp_path):
    path = write(tmp_path / "motif.pdb", real)
    (tmp_path / "dir.pdb").mkdir()
    cases = [
        ("10/C5-9/10", path, f"{path} has no protein chain 'C' (motif segment C5-9 of contig 10/C5-9/10); chains "
                             "with amino acids: A"),
        ("10/A230-245/10", path, "chain A has no residues A241-245 (it has 2-240)"),
        ("10/A1-5/10", path, "chain A has no residue A1 (it has 2-240)"),
        ("10/A5-9/10", tmp_path / "absent.pdb", "no such file"),
        ("10/A5-9/10", tmp_path / "dir.pdb", "a folder, not a file"),
    ]
    gap = replace(real, coords=np.delete(real.coords, [8, 9, 10], 0), atom_mask=np.delete(real.atom_mask, [8, 9, 10], 0),
                  sequence=real.sequence[:8] + real.sequence[11:], res_ids=np.delete(real.res_ids, [8, 9, 10]),
                  ins_codes=np.delete(real.ins_codes, [8, 9, 10]), res_names=None)
    cases.append(("10/A5-15/10", write(tmp_path / "gap.pdb", gap), "has no residues A10-12 (it has 2-9, 13-240)"))
    ins = np.array(real.ins_codes)
    ins[10] = "B"
    cases.append(("10/A5-15/10", write(tmp_path / "ins.pdb", replace(real, ins_codes=ins)),
                  "holds residues with insertion codes (A12B)"))
    twice = np.array(real.res_ids)
    twice[10] = 8  # residue 12 renumbered 8 (not next to the other 8)
    cases.append(("10/A5-15/10", write(tmp_path / "twice.pdb", replace(real, res_ids=twice)),
                  "has residue numbers A8 more than once"))
    mask = np.ones((len(real), 4), bool)
    mask[5, 1] = False
    cases.append(("10/A5-15/10", write(tmp_path / "noca.pdb", replace(real, atom_mask=mask)),
                  "motif segment A5-15: chain A residue"))
    names = list(real.res_names)
    names[6] = "DAL"
    cases.append(("10/A5-15/10", write(tmp_path / "dal.pdb", replace(real, res_names=tuple(names))),
                  "residue DAL 8: not a standard amino acid"))
    (tmp_path / "junk.pdb").write_text("this is not a structure\n")
    cases.append(("10/A5-15/10", tmp_path / "junk.pdb", "junk.pdb"))
    for contig, file, message in cases:
        with pytest.raises(InputError) as err:
            read_motif(file, parse_contig(contig))
        assert message in str(err.value) and "\n" not in str(err.value), (contig, str(err.value))
        assert str(err.value).startswith("--motif: "), str(err.value)


def test_a_motif_residue_outside_the_missing_backbone_is_read(real, tmp_path):
    """Only the motif residues are checked: a broken residue elsewhere in the file does not matter."""
    mask = np.ones((len(real), 4), bool)
    mask[100, :3] = False
    motif = read_motif(write(tmp_path / "m.pdb", replace(real, atom_mask=mask)), parse_contig("10/A5-15/10"))
    assert len(motif) == 11


def _synthetic_file(path: Path, segments: tuple[MotifSegment, ...], chains) -> Path:
    """A PDB with, per chain the problem names, real coordinates numbered to cover its motif residues (plus 3 on
    each side), and a decoy chain Z."""
    out = []
    for k, cid in enumerate(dict.fromkeys(s.chain for s in segments)):
        lo = min(s.start for s in segments if s.chain == cid) - 3
        hi = max(s.end for s in segments if s.chain == cid) + 3
        src = next(c for c in chains[k:] if len(c) >= hi - lo + 1)
        n = hi - lo + 1
        out.append(BackboneChain.from_coords(src.coords[:n], src.sequence[:n], chain_id=cid,
                                             res_ids=np.arange(max(lo, 1), max(lo, 1) + n)))
    out.append(BackboneChain.from_coords(chains[-1].coords[:30] + 50.0, chains[-1].sequence[:30], chain_id="Z"))
    return write_structure(path, out)


@pytest.mark.parametrize("name", benchmark_problems())
def test_the_benchmark_problems_run_on_a_synthetic_file(name, chains, tmp_path):
    pdb_id, spec = benchmark_problem(name)
    path = _synthetic_file(tmp_path / f"{pdb_id}.pdb", spec.motif_segments, chains)
    motif = read_motif(path, spec.with_motif_sequence())
    assert len(motif) == spec.motif_length and motif.sequence_fixed.all()
    expected_ids = [r for s in spec.motif_segments for r in range(s.start, s.end + 1)]
    assert motif.res_ids.tolist() == expected_ids
    lo, hi = spec.total_range()
    for seed in range(3):
        placed = place_motif(motif, spec.with_motif_sequence().draw(seed))
        assert lo <= len(placed) <= hi and placed.motif_mask.sum() == spec.motif_length
        assert motif.res_ids[placed.motif_index[placed.motif_mask]].tolist() == expected_ids  # contig order kept
        assert np.abs(placed.trans[placed.motif_mask].mean(0)).max() < 1e-3
