"""Backbone geometry checks: length, radius of gyration, CA-CA outliers, chain breaks, clashes.

Definitions (documented here because protocols differ):

- radius of gyration: root mean square distance of the CA atoms from their centroid (Angstrom);
- consecutive CA-CA distance of a trans peptide: 3.80 Angstrom. A *chain break* is a consecutive pair
  with CA-CA > ``BREAK_CA_CA`` (4.2 A) or, when the file has them, C(i)-N(i+1) > 2.0 A
  (:meth:`structures.proteins.io.BackboneChain.chain_breaks`); a *CA-CA outlier* is any other pair with
  |d - 3.80| > ``CA_CA_TOL`` (0.25 A; a cis peptide at ~2.9 A is one);
- clashes: CA-CA closer than ``CLASH_CA`` (3.0 A) between residues at least 2 apart (the "CA steric
  clash" of FrameDiff-style checks), and backbone heavy atoms (N, CA, C, O) closer than ``CLASH_ATOM``
  (2.0 A; helix N-O hydrogen bonds are ~2.9 A) between residues at least 3 apart.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CA_CA = 3.80
CA_CA_TOL = 0.25
BREAK_CA_CA = 4.2
CLASH_CA = 3.0
CLASH_ATOM = 2.0


@dataclass(frozen=True)
class Geometry:
    """Geometry of one backbone (see the module docstring)."""

    length: int
    radius_of_gyration: float
    ca_ca_mean: float
    n_ca_ca_outliers: int
    n_chain_breaks: int
    n_ca_clashes: int
    n_atom_clashes: int


def radius_of_gyration(ca: np.ndarray) -> float:
    """ca [L, 3] -> Rg (Angstrom)."""
    c = ca - ca.mean(0)
    return float(np.sqrt((c * c).sum(-1).mean())) if len(ca) else float("nan")


def _close_pairs(x: np.ndarray, cutoff: float, min_sep: int, res: np.ndarray) -> int:
    """Pairs of points [N, 3] closer than ``cutoff`` whose residues ``res`` [N] differ by >= ``min_sep``."""
    from scipy.spatial import cKDTree

    if len(x) < 2:
        return 0
    pairs = cKDTree(x).query_pairs(cutoff, output_type="ndarray")  # [P, 2]
    if not len(pairs):
        return 0
    return int((np.abs(res[pairs[:, 0]] - res[pairs[:, 1]]) >= min_sep).sum())


def backbone_geometry(coords: np.ndarray, atom_mask: np.ndarray | None = None,
                      c_n_breaks: np.ndarray | None = None) -> Geometry:
    """Geometry of coords [L, 4, 3] (N, CA, C, O; Angstrom). ``atom_mask`` [L, 4] marks present atoms
    (default all); ``c_n_breaks`` [L - 1] bool: C-N breaks read from the file (optional)."""
    L = len(coords)
    mask = np.ones((L, 4), bool) if atom_mask is None else np.asarray(atom_mask, bool)
    ca = coords[:, 1]  # [L, 3]
    has_ca = mask[:, 1]
    d = np.linalg.norm(ca[1:] - ca[:-1], axis=-1)  # [L - 1]
    pair_ok = has_ca[1:] & has_ca[:-1]
    breaks = (d > BREAK_CA_CA) | ~pair_ok
    if c_n_breaks is not None and len(c_n_breaks) == len(d):
        breaks |= np.asarray(c_n_breaks, bool) & mask[1:, 0] & mask[:-1, 2]
    outliers = ~breaks & (np.abs(d - CA_CA) > CA_CA_TOL)
    res = np.repeat(np.arange(L), 4).reshape(L, 4)  # [L, 4] residue of each atom
    atoms = coords[mask]  # [N, 3]
    return Geometry(
        length=L,
        radius_of_gyration=radius_of_gyration(ca[has_ca]),
        ca_ca_mean=float(d[~breaks].mean()) if (~breaks).any() else float("nan"),
        n_ca_ca_outliers=int(outliers.sum()),
        n_chain_breaks=int(breaks.sum()),
        n_ca_clashes=_close_pairs(ca[has_ca], CLASH_CA, 2, np.arange(L)[has_ca]),
        n_atom_clashes=_close_pairs(atoms, CLASH_ATOM, 3, res[mask]),
    )
