"""Round-trip fidelity of the crystal tokenizer: decode(encode(s)) against s.

Errors are measured against the canonical (Niggli, wrapped) cell that was encoded:

- lattice length error: max |a - a_decoded| over a, b, c (Angstrom);
- angle error: max |alpha - alpha_decoded| (degrees);
- site error: max over sites of |f L - f' L'| (Angstrom), where L, L' are the lattice matrices
  built from the original and decoded parameters in the same standard orientation and f' is the
  decoded fractional coordinate unwrapped to the image nearest f. This is the displacement of
  each atom caused by quantising both the cell and its coordinates.

A structure "matches" when pymatgen's ``StructureMatcher()`` (default tolerances ltol 0.2,
stol 0.3, angle_tol 5) fits the decoded structure to the original one. The default matcher first
reduces both to primitive cells; a data-set cell that is a supercell of a smaller primitive cell
(common in Carbon-24) loses that exact translational symmetry when quantised, so its primitive
reduction differs and the default match fails although every atom is within ~0.02 of its place.
``n_matched_same_cell`` therefore also counts structures that match with ``primitive_cell=False``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from structures.crystals.tokens import Cell, EncodeError, Rounding, canonicalize, decode_batch

if TYPE_CHECKING:  # pragma: no cover
    from pymatgen.core import Structure


def lattice_matrices(params: np.ndarray) -> np.ndarray:
    """[B, 6] (a, b, c, alpha, beta, gamma) -> [B, 3, 3] row-vector lattice matrices in pymatgen's
    ``Lattice.from_parameters`` orientation (c along z, vectorised)."""
    a, b, c = params[:, 0], params[:, 1], params[:, 2]
    al, be, ga = (np.radians(params[:, k]) for k in (3, 4, 5))
    cos_gs = np.clip((np.cos(al) * np.cos(be) - np.cos(ga)) / (np.sin(al) * np.sin(be)), -1.0, 1.0)
    sin_gs = np.sqrt(1.0 - cos_gs**2)
    zero = np.zeros_like(a)
    va = np.stack([a * np.sin(be), zero, a * np.cos(be)], -1)
    vb = np.stack([-b * np.sin(al) * cos_gs, b * np.sin(al) * sin_gs, b * np.cos(al)], -1)
    vc = np.stack([zero, zero, c], -1)
    return np.stack([va, vb, vc], axis=1)


@dataclass
class RoundTripReport:
    """Summary of decode(encode(s)) over a set of structures."""

    n: int
    n_encoded: int
    n_decoded: int
    n_matched: int
    match_rate: float  # matched / n (un-encodable structures count as failures)
    n_matched_same_cell: int  # matched by the default matcher or by StructureMatcher(primitive_cell=False)
    max_length_error: float  # Angstrom
    max_angle_error: float  # degrees
    max_site_error: float  # Angstrom
    mean_site_error: float  # Angstrom, mean over all sites
    max_matcher_rms: float  # StructureMatcher normalised rms of matched pairs
    rounding: str
    cell: str
    unmatched: list[int] = field(default_factory=list)  # indices of structures that failed
    encode_errors: dict[int, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["unmatched"] = d["unmatched"][:50]
        d["encode_errors"] = {str(k): v for k, v in list(d["encode_errors"].items())[:20]}
        return d


def roundtrip_report(structures: Sequence["Structure"], rounding: Rounding = "nearest", cell: Cell = "niggli",
                     max_atoms: int | None = None, progress: bool = False) -> RoundTripReport:
    """Encode, decode and compare every structure (see the module docstring for the metrics)."""
    from pymatgen.analysis.structure_matcher import StructureMatcher

    keep, errors = [], {}
    for i, s in enumerate(structures):  # find the un-encodable ones first, one by one
        try:
            canonicalize([s], max_atoms, cell, rounding)
            keep.append(i)
        except EncodeError as exc:
            errors[i] = str(exc)
    subset = [structures[i] for i in keep]
    canon, batch = canonicalize(subset, max_atoms, cell, rounding)
    dec = decode_batch(batch.tokens)
    mask = canon.atomic_numbers > 0
    len_err = np.abs(canon.lattice_params[:, :3] - dec.lattice_params[:, :3])
    ang_err = np.abs(canon.lattice_params[:, 3:] - dec.lattice_params[:, 3:])
    d = dec.frac - canon.frac
    f_dec = canon.frac + (d - np.round(d))  # nearest periodic image of the decoded site
    x = np.einsum("bai,bij->baj", canon.frac, lattice_matrices(canon.lattice_params))
    x_dec = np.einsum("bai,bij->baj", f_dec, lattice_matrices(dec.lattice_params))
    site_err = np.linalg.norm(x - x_dec, axis=-1)[mask]

    matcher, same_cell = StructureMatcher(), StructureMatcher(primitive_cell=False)
    matched, matched_same_cell, rms_max, unmatched = 0, 0, 0.0, [i for i in errors]
    it = range(len(subset))
    if progress:
        from tqdm import tqdm

        it = tqdm(it, desc="StructureMatcher", unit="structure")
    for j in it:
        s_dec = dec.structure(j)
        ok = bool(dec.valid[j]) and matcher.fit(subset[j], s_dec)
        if ok:
            matched += 1
            rms = matcher.get_rms_dist(subset[j], s_dec)
            if rms is not None:
                rms_max = max(rms_max, float(rms[0]))
        else:
            unmatched.append(keep[j])
            matched_same_cell += int(bool(dec.valid[j]) and bool(same_cell.fit(subset[j], s_dec)))
    n = len(structures)
    return RoundTripReport(
        n=n, n_encoded=len(subset), n_decoded=int(dec.valid.sum()), n_matched=matched,
        match_rate=matched / n if n else float("nan"), n_matched_same_cell=matched + matched_same_cell,
        max_length_error=float(len_err.max()) if len(subset) else 0.0,
        max_angle_error=float(ang_err.max()) if len(subset) else 0.0,
        max_site_error=float(site_err.max()) if site_err.size else 0.0,
        mean_site_error=float(site_err.mean()) if site_err.size else 0.0,
        max_matcher_rms=rms_max, rounding=rounding, cell=cell,
        unmatched=sorted(unmatched), encode_errors=errors,
    )
