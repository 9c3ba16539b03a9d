"""Clashes and bond violations of an all-atom protein model: the test that ends AlphaFold2's outer relax loop.

Definitions (AlphaFold2's structural violations, Jumper et al. 2021, supplementary 1.9.11 and 1.8.6, with its
relax settings: clash overlap tolerance 1.5 A, violation tolerance factor 12):

- **heavy-atom clash**: two heavy atoms of *different* residues, more than three covalent bonds apart, closer
  than ``r_i + r_j - CLASH_TOLERANCE`` (van der Waals radii :data:`VDW_RADII`, Bondi 1964, as AlphaFold2's
  ``residue_constants``). E.g. C-C < 1.9 A, N-O < 1.57 A, S-S < 2.1 A (a disulfide's SG-SG is a bond, so it
  never counts). AlphaFold2 excludes only the C(i)-N(i+1) peptide bond; excluding every pair within three
  bonds is a superset that only removes pairs whose ideal distances are far above the thresholds anyway.
- **bond violation**: a covalent bond between two heavy atoms whose length differs from the force field's
  equilibrium length ``r0`` (Amber99SB's ``HarmonicBondForce``) by more than ``BOND_TOLERANCE`` = 12 x 0.014 A
  (AlphaFold2's 12 sigma on the peptide C-N bond, sigma 0.014 A, Engh & Huber 1991).
- a **violating residue** holds an atom of a clash or of a bond violation; AlphaFold2 drops the restraints of
  the violating residues in the next outer iteration (``exclude_residues``), and so do we.

The backbone clash count of the scorer (:func:`pipeline.proteins.score.geometry.backbone_geometry`: CA-CA < 3 A
at sequence separation >= 2, backbone heavy atoms < 2 A at separation >= 3) is reported beside it, on the input
backbone and on the relaxed one, so a backbone-only input and its relaxed model are compared by one rule.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: van der Waals radii, Angstrom (Bondi 1964; AlphaFold2 residue_constants.van_der_waals_radius)
VDW_RADII = {"C": 1.7, "N": 1.55, "O": 1.52, "S": 1.8}
CLASH_TOLERANCE = 1.5  # Angstrom, AlphaFold2's clash_overlap_tolerance
BOND_TOLERANCE = 12 * 0.014  # Angstrom, AlphaFold2's violation_tolerance_factor x sigma(C-N)
_MAX_CUTOFF = 2 * max(VDW_RADII.values()) - CLASH_TOLERANCE


@dataclass(frozen=True)
class HeavyAtoms:
    """The heavy atoms of a model. ``xyz`` [N, 3] Angstrom; ``element`` [N] symbols; ``residue`` [N] residue
    index; ``bonds`` [B, 2] indices into these N atoms (heavy-atom covalent bonds); ``r0`` [B] their equilibrium
    lengths, Angstrom."""

    xyz: np.ndarray
    element: np.ndarray
    residue: np.ndarray
    bonds: np.ndarray
    r0: np.ndarray


@dataclass(frozen=True)
class Violations:
    """Counts of one model (module docstring) and the residues involved (sorted residue indices)."""

    clashes: int
    bond_violations: int
    residues: tuple[int, ...]

    @property
    def total(self) -> int:
        return self.clashes + self.bond_violations


def _neighbours_within(bonds: np.ndarray, n: int, depth: int = 3) -> list[set[int]]:
    """For every atom, the atoms at most ``depth`` bonds away (itself included)."""
    adj: list[set[int]] = [set() for _ in range(n)]
    for a, b in bonds:
        adj[int(a)].add(int(b))
        adj[int(b)].add(int(a))
    out = []
    for i in range(n):
        seen, front = {i}, {i}
        for _ in range(depth):
            front = {k for j in front for k in adj[j]} - seen
            seen |= front
        out.append(seen)
    return out


def clash_pairs(atoms: HeavyAtoms) -> np.ndarray:
    """[P, 2] atom index pairs that clash (module docstring)."""
    from scipy.spatial import cKDTree

    if len(atoms.xyz) < 2:
        return np.zeros((0, 2), int)
    pairs = cKDTree(atoms.xyz).query_pairs(_MAX_CUTOFF, output_type="ndarray")  # [P, 2]
    if not len(pairs):
        return np.zeros((0, 2), int)
    pairs = pairs[atoms.residue[pairs[:, 0]] != atoms.residue[pairs[:, 1]]]
    radius = np.array([VDW_RADII.get(e, 1.7) for e in atoms.element])
    d = np.linalg.norm(atoms.xyz[pairs[:, 0]] - atoms.xyz[pairs[:, 1]], axis=-1)
    pairs = pairs[d < radius[pairs[:, 0]] + radius[pairs[:, 1]] - CLASH_TOLERANCE]
    if not len(pairs):
        return pairs
    near = _neighbours_within(atoms.bonds, len(atoms.xyz))
    keep = [int(b) not in near[int(a)] for a, b in pairs]
    return pairs[np.asarray(keep, bool)]


def bond_violation_mask(atoms: HeavyAtoms) -> np.ndarray:
    """[B] bool: heavy-atom bonds with |length - r0| > :data:`BOND_TOLERANCE`."""
    if not len(atoms.bonds):
        return np.zeros(0, bool)
    d = np.linalg.norm(atoms.xyz[atoms.bonds[:, 0]] - atoms.xyz[atoms.bonds[:, 1]], axis=-1)
    return np.abs(d - atoms.r0) > BOND_TOLERANCE


def find_violations(atoms: HeavyAtoms) -> Violations:
    """Clashes, bond violations and the violating residues of a model."""
    clashes = clash_pairs(atoms)
    bad_bonds = atoms.bonds[bond_violation_mask(atoms)] if len(atoms.bonds) else np.zeros((0, 2), int)
    involved = np.concatenate([clashes.reshape(-1), bad_bonds.reshape(-1)]).astype(int)
    residues = tuple(sorted({int(r) for r in atoms.residue[involved]}))
    return Violations(clashes=len(clashes), bond_violations=len(bad_bonds), residues=residues)


def backbone_clashes(coords: np.ndarray, atom_mask: np.ndarray | None = None) -> int:
    """The scorer's backbone clash count of coords [L, 4, 3] (N, CA, C, O; Angstrom; ``atom_mask`` [L, 4] the
    atoms present, default all): CA-CA pairs < 3 A plus backbone heavy-atom pairs < 2 A
    (:mod:`pipeline.proteins.score.geometry`)."""
    from pipeline.proteins.score.geometry import backbone_geometry

    g = backbone_geometry(np.asarray(coords, np.float64), atom_mask)
    return g.n_ca_clashes + g.n_atom_clashes
