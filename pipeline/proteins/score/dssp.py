"""Secondary structure with DSSP (pydssp) and MultiFlow's simplified classes.

pydssp (a simplified DSSP: backbone H-bond energy of Kabsch & Sander, alpha helices and beta ladders)
assigns each residue ``H`` (helix), ``E`` (strand) or ``-`` (coil) from N, CA, C, O. Full 8-state DSSP
labels are mapped to the same three classes as MultiFlow does (docs/protocols.md): helix =
H, G, I; strand = E, B; coil = everything else. Missing carbonyl O atoms are placed from the backbone
(:func:`structures.proteins.frames.place_oxygen`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

HELIX_8 = "HGI"
STRAND_8 = "EB"


@dataclass(frozen=True)
class SecondaryStructure:
    """Per-residue classes (string of H / E / C) and their fractions."""

    classes: str
    helix: float
    strand: float
    coil: float


def to_three_classes(labels: str) -> str:
    """8-state DSSP (or pydssp's H/E/-) -> MultiFlow's simplified H / E / C."""
    return "".join("H" if a in HELIX_8 else "E" if a in STRAND_8 else "C" for a in labels)


def _with_oxygen(coords: np.ndarray, atom_mask: np.ndarray | None) -> np.ndarray:
    """coords [L, 4, 3] with any missing O placed from N, CA, C (and the next N)."""
    if atom_mask is None or atom_mask[:, 3].all():
        return coords
    import torch

    from structures.proteins.frames import place_oxygen

    x = torch.as_tensor(coords, dtype=torch.float64)
    o = place_oxygen(x[:, 0], x[:, 1], x[:, 2]).numpy()  # [L, 3]
    out = coords.copy()
    out[~atom_mask[:, 3], 3] = o[~atom_mask[:, 3]]
    return out


def assign_dssp(coords: np.ndarray, atom_mask: np.ndarray | None = None) -> SecondaryStructure:
    """coords [L, 4, 3] (N, CA, C, O, Angstrom) -> DSSP classes and helix / strand / coil fractions."""
    import pydssp

    L = len(coords)
    if L == 0:
        return SecondaryStructure("", float("nan"), float("nan"), float("nan"))
    x = _with_oxygen(np.asarray(coords, dtype=np.float64), atom_mask)
    c3 = pydssp.assign(x, out_type="c3")  # [L] of 'H', 'E', '-'
    classes = to_three_classes("".join(str(a) for a in c3))
    return SecondaryStructure(classes, classes.count("H") / L, classes.count("E") / L, classes.count("C") / L)


def agreement(predicted: str, reference_8state: str) -> float:
    """Share of residues whose 3-class label equals that of the reference 8-state DSSP string."""
    ref = to_three_classes(reference_8state)
    if len(ref) != len(predicted) or not ref:
        raise ValueError(f"label strings differ in length: {len(predicted)} vs {len(ref)}")
    return float(np.mean(np.frombuffer(predicted.encode(), np.uint8) == np.frombuffer(ref.encode(), np.uint8)))
