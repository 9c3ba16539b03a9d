"""The motif of a motif-scaffolding problem: its residues read from a structure file, and placed into a drawn layout.

:func:`read_motif` reads every motif segment of a :class:`~structures.proteins.contig.ContigSpec` from a PDB /
mmCIF file with the project's readers (:mod:`structures.proteins.io`) and checks
(:func:`structures.proteins.checks.checked`, applied to the motif residues only: the rest of the file may be
incomplete). Motif residues are numbered in contig order (segment after segment, as they appear in the
scaffold), which is the order of :attr:`ContigDraw.motif_index <structures.proteins.contig.ContigDraw>`.

Per motif residue a :class:`Motif` holds the backbone atoms N, CA, C, O as in the file (a missing O is rebuilt
with :func:`~structures.proteins.frames.place_oxygen`), the frames (``rotmats``, ``trans`` = CA; AF2's
Gram-Schmidt, :func:`~structures.proteins.frames.frames_from_atoms`), the amino acids (AF2 order,
:mod:`~structures.proteins.residue_constants`) and the residue ids. :func:`place_motif` puts it into a drawn
layout: per scaffold position a motif residue or free, coordinates centred on the motif's CA centroid (the
centre is kept, to move samples back into the file's frame), the motif mask and the sequence-fixed mask
(positions of ``:seq`` segments whose amino acid is known; an ``UNK`` residue is never sequence-fixed, as in
MotifBench's files where ``UNK`` marks a residue to redesign).

Bad input raises :class:`~structures.errors.InputError`: an unreadable file (as the readers say), an unknown
chain (the chains present are listed), motif residues missing from the file (named, with the residues the file
has there, insertion codes included), and motif residues that are unusable (as the checks say).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from structures.errors import InputError
from structures.proteins.checks import checked
from structures.proteins.contig import ContigDraw, ContigSpec, MotifSegment
from structures.proteins.frames import frames_from_atoms, place_oxygen
from structures.proteins.io import BackboneChain, StructureFileError, read_chains
from structures.proteins.residue_constants import MASK_INDEX, UNK_INDEX, indices_to_sequence, sequence_to_indices

_SHOWN = 5  # residues named in one message at most


@dataclass(frozen=True)
class Motif:
    """The motif residues of ``spec`` read from ``source``, in contig order (n residues in all)."""

    spec: ContigSpec
    source: str
    coords: np.ndarray  # [n, 4, 3] float32, N, CA, C, O in the file's frame (Angstrom)
    rotmats: np.ndarray  # [n, 3, 3] float32, columns e1, e2, e3
    trans: np.ndarray  # [n, 3] float32, = CA
    aatype: np.ndarray  # [n] int64, AF2 order (20 = unknown)
    res_ids: np.ndarray  # [n] int64, author residue numbers
    chain_ids: tuple[str, ...]  # [n]
    sequence_fixed: np.ndarray  # [n] bool: the residue's segment keeps its sequence and its amino acid is known

    def __len__(self) -> int:
        return int(self.aatype.shape[0])

    @property
    def sequence(self) -> str:
        return indices_to_sequence(self.aatype)

    @property
    def ca_centroid(self) -> np.ndarray:  # [3]
        return self.trans.mean(axis=0)

    def segment_slices(self) -> tuple[slice, ...]:
        """Rows of each motif segment, in contig order."""
        out, first = [], 0
        for seg in self.spec.motif_segments:
            out.append(slice(first, first + seg.length))
            first += seg.length
        return tuple(out)


@dataclass(frozen=True)
class MotifPlacement:
    """A motif placed into a drawn layout of L residues; the coordinates are centred on the motif's CA centroid."""

    draw: ContigDraw
    centre: np.ndarray  # [3] the motif's CA centroid in the file's frame (subtracted from every coordinate)
    motif_mask: np.ndarray  # [L] bool
    sequence_fixed: np.ndarray  # [L] bool (a subset of motif_mask)
    coords: np.ndarray  # [L, 4, 3] float32; zeros at free positions
    rotmats: np.ndarray  # [L, 3, 3] float32; identity at free positions
    trans: np.ndarray  # [L, 3] float32; zeros at free positions
    aatype: np.ndarray  # [L] int64; MASK_INDEX (20) at free positions

    def __len__(self) -> int:
        return int(self.motif_mask.shape[0])

    @property
    def motif_index(self) -> np.ndarray:  # [L] int64, -1 = free
        return self.draw.motif_index


def read_motif(path: str | os.PathLike, spec: ContigSpec, argument: str = "--motif") -> Motif:
    """The motif residues of ``spec`` from a PDB / mmCIF file (see the module docstring); ``argument`` names the
    input in messages."""
    path = Path(path).expanduser()
    try:
        chains = {c.chain_id: c for c in read_chains(path)}
    except (StructureFileError, OSError) as exc:
        raise InputError(f"{argument}: {str(exc).splitlines()[0]}") from None
    parts = []
    for seg in spec.motif_segments:
        chain = chains.get(seg.chain)
        if chain is None:
            raise InputError(f"{argument}: {path} has no protein chain {seg.chain!r} (motif segment {seg} of contig "
                             f"{spec}); chains with amino acids: {', '.join(chains)}; fix the contig's chain")
        rows = _segment_rows(chain, seg, f"{argument}: {path}", str(spec))
        parts.append(checked(_subset(chain, rows), f"{argument}: {path}: motif segment {seg}"))
    coords = np.concatenate([_with_oxygen(p) for p in parts]).astype(np.float32)
    frames = frames_from_atoms(torch.from_numpy(coords).double())
    aatype = np.concatenate([sequence_to_indices(p.sequence) for p in parts]).astype(np.int64)
    keep = np.concatenate([np.full(len(p), seg.fix_sequence) for p, seg in zip(parts, spec.motif_segments)])
    return Motif(spec=spec, source=str(path), coords=coords, rotmats=frames.rots.float().numpy(),
                 trans=coords[:, 1].copy(), aatype=aatype,
                 res_ids=np.concatenate([p.res_ids for p in parts]).astype(np.int64),
                 chain_ids=tuple(c for p in parts for c in [p.chain_id] * len(p)),
                 sequence_fixed=keep & (aatype != UNK_INDEX))


def _segment_rows(chain: BackboneChain, seg: MotifSegment, where: str, contig: str) -> np.ndarray:
    """Rows of ``chain`` holding residues seg.start..seg.end (no insertion codes), in order; else InputError."""
    ids = np.asarray(chain.res_ids)
    ins = np.asarray(chain.ins_codes).astype(str)
    inside = (ids >= seg.start) & (ids <= seg.end)
    inserted = np.flatnonzero(inside & (ins != ""))
    if inserted.size:
        named = ", ".join(f"{chain.chain_id}{ids[i]}{ins[i]}" for i in inserted[:_SHOWN])
        raise InputError(f"{where}: motif segment {seg} of contig {contig} holds residues with insertion codes "
                         f"({named}); contigs number residues without them: renumber the file's chain "
                         f"{chain.chain_id}")
    rows = {int(ids[i]): int(i) for i in np.flatnonzero(inside)}
    if len(rows) < int(inside.sum()):
        twice = sorted(int(r) for r, n in zip(*np.unique(ids[inside], return_counts=True)) if n > 1)
        raise InputError(f"{where}: motif segment {seg} of contig {contig}: chain {chain.chain_id} has residue "
                         f"numbers {_ranges(twice, chain.chain_id)} more than once; renumber the file")
    missing = [r for r in range(seg.start, seg.end + 1) if r not in rows]
    if missing:
        have = _ranges(sorted({int(i) for i in ids}))
        raise InputError(f"{where}: motif segment {seg} of contig {contig}: chain {chain.chain_id} has no residue"
                         f"{'s' if len(missing) > 1 else ''} {_ranges(missing, chain.chain_id)} (it has "
                         f"{have}); fix the contig's residue numbers or give the complete file")
    out = np.array([rows[r] for r in range(seg.start, seg.end + 1)])
    if (np.diff(out) <= 0).any():
        raise InputError(f"{where}: motif segment {seg} of contig {contig}: chain {chain.chain_id} lists these "
                         "residues out of order; renumber the file")
    return out


def _ranges(numbers: list[int], chain: str = "") -> str:
    """'A5, A7-9 and 3 more ranges' for sorted integers."""
    runs: list[tuple[int, int]] = []
    for n in numbers:
        if runs and n == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], n)
        else:
            runs.append((n, n))
    text = [f"{chain}{a}" if a == b else f"{chain}{a}-{b}" for a, b in runs[:_SHOWN]]
    more = f" and {len(runs) - _SHOWN} more ranges" if len(runs) > _SHOWN else ""
    return ", ".join(text) + more


def _subset(chain: BackboneChain, rows: np.ndarray) -> BackboneChain:
    x = chain.coords if chain.coords.ndim == 3 else chain.coords[0]
    return replace(chain, coords=x[rows], atom_mask=chain.atom_mask[rows],
                   sequence="".join(chain.sequence[i] for i in rows), res_ids=np.asarray(chain.res_ids)[rows],
                   ins_codes=np.asarray(chain.ins_codes)[rows],
                   b_factors=None if chain.b_factors is None else chain.b_factors[rows],
                   res_names=tuple(chain.res_names[i] for i in rows))


def _with_oxygen(chain: BackboneChain) -> np.ndarray:
    """[n, 4, 3] backbone atoms with each missing O rebuilt from the residue's N, CA, C and the next N."""
    x = np.array(chain.coords, dtype=np.float64)
    missing = ~np.asarray(chain.atom_mask)[:, 3]
    if missing.any():
        t = torch.from_numpy(x)
        bonded = torch.from_numpy(~np.append(chain.chain_breaks(), True))
        o = place_oxygen(t[:, 0], t[:, 1], t[:, 2], has_next=bonded).numpy()
        x[missing, 3] = o[missing]
    return x


def place_motif(motif: Motif, draw: ContigDraw) -> MotifPlacement:
    """The motif put into ``draw`` (a draw of ``motif.spec``), centred on the motif's CA centroid."""
    if draw.spec != motif.spec:
        raise ValueError(f"the draw is of contig {draw.spec}, the motif of {motif.spec}")
    idx = draw.motif_index
    at = idx >= 0
    L = len(draw)
    centre = motif.ca_centroid.astype(np.float32)
    coords = np.zeros((L, 4, 3), np.float32)
    coords[at] = motif.coords[idx[at]] - centre
    trans = coords[:, 1].copy()
    rotmats = np.tile(np.eye(3, dtype=np.float32), (L, 1, 1))
    rotmats[at] = motif.rotmats[idx[at]]
    aatype = np.full(L, MASK_INDEX, np.int64)
    aatype[at] = motif.aatype[idx[at]]
    fixed = np.zeros(L, bool)
    fixed[at] = motif.sequence_fixed[idx[at]]
    return MotifPlacement(draw=draw, centre=centre, motif_mask=at, sequence_fixed=fixed, coords=coords,
                          rotmats=rotmats, trans=trans, aatype=aatype)
