"""Protein backbone frames <-> backbone atoms (torch, batched over any leading dimensions).

A residue frame is a rigid transform T = (R, t) with R in SO(3) and t = CA, built from N, CA, C by
Gram-Schmidt exactly as AlphaFold 2 (Jumper et al. 2021, suppl. Algorithm 21 ``rigidFrom3Points``
with x1 = N, x2 = CA, x3 = C; OpenFold / MultiFlow ``Rigid.from_3_points``)::

    v1 = C - CA,  v2 = N - CA
    e1 = v1 / |v1|
    u2 = v2 - (e1 . v2) e1,   e2 = u2 / |u2|
    e3 = e1 x e2
    R  = [e1 e2 e3]  (columns),  t = CA

so that a point p_local in the residue frame sits at ``R p_local + t``.

Idealised backbone (AlphaFold ``residue_constants.rigid_group_atom_positions``, ALA backbone,
the geometry MultiFlow uses for every residue), in the frame above::

    N  = (-0.525, 1.363, 0.000)   CA = (0, 0, 0)   C = (1.526, 0.000, 0.000)

i.e. N-CA 1.460 Angstrom, CA-C 1.526 Angstrom, N-CA-C 111.0 degrees.

Carbonyl O (MultiFlow / FrameFlow ``adjust_oxygen_pos``): O_i lies in the peptide plane on the
bisector of the two bonds leaving C_i, at 1.231 Angstrom::

    O_i = C_i + 1.231 * normalize( unit(C_i - CA_i) + unit(C_i - N_{i+1}) )

For the C-terminal residue, and for any residue whose successor is missing or across a chain
break, the next N is unknown; the fallback puts O in the N-CA-C plane of residue i on the same
bisector construction with N_i in place of N_{i+1} (psi = 180 degrees-like placement).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

IDEAL_N = (-0.525, 1.363, 0.0)
IDEAL_CA = (0.0, 0.0, 0.0)
IDEAL_C = (1.526, 0.0, 0.0)
C_O_BOND = 1.231  # Angstrom (AlphaFold residue_constants, ALA)
EPS = 1e-8


@dataclass
class Frames:
    """Rigid residue frames: ``rots`` [..., 3, 3] (columns e1, e2, e3), ``trans`` [..., 3] (CA)."""

    rots: torch.Tensor  # [..., 3, 3]
    trans: torch.Tensor  # [..., 3]

    def apply(self, local: torch.Tensor) -> torch.Tensor:
        """Local points [..., 3] -> global ``R p + t`` (broadcast over the frame's batch)."""
        return torch.einsum("...ij,...j->...i", self.rots, local) + self.trans

    def invert_apply(self, points: torch.Tensor) -> torch.Tensor:
        """Global points [..., 3] -> local ``R^T (p - t)``."""
        return torch.einsum("...ji,...j->...i", self.rots, points - self.trans)


def _normalize(v: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    return v / torch.linalg.norm(v, dim=-1, keepdim=True).clamp_min(eps)


def frames_from_backbone(n: torch.Tensor, ca: torch.Tensor, c: torch.Tensor, eps: float = EPS) -> Frames:
    """Gram-Schmidt frames from N, CA, C (AF2 Alg. 21). Inputs [..., 3]; returns [..., 3, 3] / [..., 3].

    Degenerate (collinear or missing, all-zero) atoms give a finite but meaningless frame; mask
    such residues with the residue mask.
    """
    e1 = _normalize(c - ca, eps)  # [..., 3]
    v2 = n - ca
    u2 = v2 - (e1 * v2).sum(-1, keepdim=True) * e1
    e2 = _normalize(u2, eps)
    e3 = torch.linalg.cross(e1, e2, dim=-1)
    return Frames(rots=torch.stack([e1, e2, e3], dim=-1), trans=ca)


def frames_from_atoms(atoms: torch.Tensor) -> Frames:
    """Frames from backbone atoms [..., L, >=3, 3] in the order N, CA, C (, O)."""
    return frames_from_backbone(atoms[..., 0, :], atoms[..., 1, :], atoms[..., 2, :])


def ideal_backbone_local(dtype: torch.dtype = torch.float32, device: torch.device | str | None = None) -> torch.Tensor:
    """[3, 3] idealised N, CA, C in the residue frame."""
    return torch.tensor([IDEAL_N, IDEAL_CA, IDEAL_C], dtype=dtype, device=device)


def place_oxygen(n: torch.Tensor, ca: torch.Tensor, c: torch.Tensor, next_n: torch.Tensor | None = None,
                 has_next: torch.Tensor | None = None) -> torch.Tensor:
    """Carbonyl O of every residue (see module docstring). Inputs [..., L, 3].

    Args:
        next_n: N of residue i+1 per residue [..., L, 3]; default: ``n`` shifted by one along L.
        has_next: [..., L] bool, residue i+1 exists and is bonded to i; default: all but the last.
    Returns:
        [..., L, 3] O positions.
    """
    if next_n is None:
        next_n = torch.cat([n[..., 1:, :], n[..., -1:, :]], dim=-2)
    if has_next is None:
        has_next = torch.ones(n.shape[:-1], dtype=torch.bool, device=n.device)
        has_next[..., -1] = False
    partner = torch.where(has_next[..., None], next_n, n)  # fallback: own N, in the N-CA-C plane
    direction = _normalize(_normalize(c - ca) + _normalize(c - partner))
    return c + C_O_BOND * direction


def backbone_from_frames(frames: Frames, mask: torch.Tensor | None = None,
                         chain_break: torch.Tensor | None = None) -> torch.Tensor:
    """Idealised backbone atoms N, CA, C, O from frames.

    Args:
        frames: rots [..., L, 3, 3], trans [..., L, 3].
        mask: [..., L] bool, residues that exist (O of the residue before a missing one falls back).
        chain_break: [..., L] bool, True where residue i is *not* bonded to residue i+1.
    Returns:
        [..., L, 4, 3] atoms N, CA, C, O (masked residues hold their idealised atoms anyway).
    """
    local = ideal_backbone_local(frames.trans.dtype, frames.trans.device)  # [3, 3]
    ncac = torch.einsum("...ij,aj->...ai", frames.rots, local) + frames.trans[..., None, :]  # [..., L, 3, 3]
    n, ca, c = ncac.unbind(-2)
    has_next = torch.ones(n.shape[:-1], dtype=torch.bool, device=n.device)
    has_next[..., -1] = False
    if mask is not None:
        nxt = torch.cat([mask[..., 1:], torch.zeros_like(mask[..., :1])], dim=-1)
        has_next = has_next & mask.bool() & nxt.bool()
    if chain_break is not None:
        has_next = has_next & ~chain_break.bool()
    o = place_oxygen(n, ca, c, has_next=has_next)
    return torch.stack([n, ca, c, o], dim=-2)


def chain_breaks(atoms: torch.Tensor, max_c_n: float = 2.0) -> torch.Tensor:
    """[..., L] bool: residue i is not peptide-bonded to i+1 (C_i-N_{i+1} > ``max_c_n`` Angstrom).

    The last residue is always True (nothing follows it).
    """
    c_n = torch.linalg.norm(atoms[..., 1:, 0, :] - atoms[..., :-1, 2, :], dim=-1)  # [..., L-1]
    last = torch.ones(c_n.shape[:-1] + (1,), dtype=torch.bool, device=atoms.device)
    return torch.cat([c_n > max_c_n, last], dim=-1)


@dataclass
class BackboneRoundTrip:
    """Per-atom RMSD and max deviation (Angstrom) of atoms rebuilt from frames vs the input."""

    rmsd: dict[str, float]
    max_dev: dict[str, float]
    n_residues: int


def backbone_roundtrip_error(atoms: torch.Tensor, mask: torch.Tensor | None = None) -> BackboneRoundTrip:
    """atoms [..., L, 4, 3] (N, CA, C, O) -> frames -> idealised atoms; per-atom-type errors.

    Chain breaks are detected from the input (C-N > 2 Angstrom) and get the O fallback.
    """
    atoms = atoms.to(torch.float64)
    if mask is None:
        mask = torch.ones(atoms.shape[:-2], dtype=torch.bool)
    rebuilt = backbone_from_frames(frames_from_atoms(atoms), mask=mask, chain_break=chain_breaks(atoms))
    d = torch.linalg.norm(rebuilt - atoms, dim=-1)[mask]  # [R, 4]
    names = ("N", "CA", "C", "O")
    return BackboneRoundTrip(
        rmsd={k: float(d[:, i].pow(2).mean().sqrt()) for i, k in enumerate(names)},
        max_dev={k: float(d[:, i].max()) for i, k in enumerate(names)},
        n_residues=int(d.shape[0]),
    )
