"""CDVAE coverage (``scripts/eval_utils.py``, ``compute_cov``).

With structure fingerprints s (CrystalNN, [61]) and CompScaler-standardised composition
fingerprints c (Magpie, [132]) of generated crystals g and reference (test) crystals t, and
Euclidean distances d_s, d_c:

    COV-R = |{t : exists g with d_s(g, t) <= delta_s and d_c(g, t) <= delta_c}| / |T|   (per-metric minima, as CDVAE)
    COV-P = |{g : min_t d_s(g, t) <= delta_s and min_t d_c(g, t) <= delta_c}| / N_generated

CDVAE takes the two minima separately (the nearest crystal in structure space need not be the
nearest in composition space); we do the same. Generated crystals without a structure fingerprint
are left out of the distances but stay in COV-P's denominator (all generated).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from pipeline.crystals.score.cdvae_constants import COMP_SCALER_MEANS, COMP_SCALER_STDS, COV_CUTOFFS

if TYPE_CHECKING:  # pragma: no cover
    from pipeline.crystals.score.fingerprints import Fingerprints


def standardize_comp(comp_fp: np.ndarray) -> np.ndarray:
    """CDVAE CompScaler: (x - mean) / std with NaN -> 0. [N, 132] -> [N, 132]."""
    with np.errstate(invalid="ignore", divide="ignore"):
        z = (np.asarray(comp_fp, dtype=np.float64) - np.asarray(COMP_SCALER_MEANS)) / np.asarray(COMP_SCALER_STDS)
    return np.where(np.isnan(z), 0.0, z)


@dataclass
class CoverageResult:
    cov_recall: float
    cov_precision: float
    struct_precision_dist: np.ndarray  # [N_gen] nearest reference in structure space (NaN: no fp)
    comp_precision_dist: np.ndarray  # [N_gen] nearest reference in composition space
    struct_recall_dist: np.ndarray  # [N_ref]
    comp_recall_dist: np.ndarray  # [N_ref]
    struc_cutoff: float
    comp_cutoff: float


def cutoffs_for(dataset: str | None, struc_cutoff: float | None = None,
                comp_cutoff: float | None = None) -> tuple[float, float]:
    """Per-data-set cutoffs (CDVAE COV_Cutoffs), overridable; explicit values win."""
    if struc_cutoff is not None and comp_cutoff is not None:
        return float(struc_cutoff), float(comp_cutoff)
    if dataset not in COV_CUTOFFS:
        raise ValueError(f"no coverage cutoffs for {dataset!r}: known {', '.join(COV_CUTOFFS)}; "
                         "give both cutoffs explicitly (--struc-cutoff, --comp-cutoff)")
    c = COV_CUTOFFS[dataset]
    return (float(struc_cutoff if struc_cutoff is not None else c["struc"]),
            float(comp_cutoff if comp_cutoff is not None else c["comp"]))


def _min_dists(a: np.ndarray, b: np.ndarray, chunk: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    """Row minima [len(a)] and column minima [len(b)] of the Euclidean distance matrix, in blocks."""
    from scipy.spatial.distance import cdist

    row = np.full(len(a), np.inf)
    col = np.full(len(b), np.inf)
    for i in range(0, len(a), chunk):
        d = cdist(a[i:i + chunk], b)
        row[i:i + chunk] = d.min(axis=1)
        col = np.minimum(col, d.min(axis=0))
    return row, col


def coverage(gen: "Fingerprints", ref: "Fingerprints", struc_cutoff: float, comp_cutoff: float,
             n_generated: int | None = None) -> CoverageResult:
    """COV-R and COV-P (module doc) of generated vs reference fingerprints (raw: the composition fingerprints are
    standardised here). Rows with ``struct_ok`` False (no structure fingerprint) are left out of the distances;
    COV-P divides by ``n_generated`` (default: all generated rows)."""
    gen_ok, ref_ok = np.asarray(gen.struct_ok, bool), np.asarray(ref.struct_ok, bool)
    gen_struct, ref_struct = gen.struct, ref.struct
    n_gen = len(gen_struct) if n_generated is None else int(n_generated)
    gs, gc = gen_struct[gen_ok], standardize_comp(gen.comp[gen_ok])
    rs, rc = ref_struct[ref_ok], standardize_comp(ref.comp[ref_ok])
    sp = np.full(len(gen_struct), np.nan)
    cp = np.full(len(gen_struct), np.nan)
    sr = np.full(len(ref_struct), np.nan)
    cr = np.full(len(ref_struct), np.nan)
    if len(gs) and len(rs):
        sp[gen_ok], sr[ref_ok] = _min_dists(gs, rs)
        cp[gen_ok], cr[ref_ok] = _min_dists(gc, rc)
    with np.errstate(invalid="ignore"):
        hit_r = (sr[ref_ok] <= struc_cutoff) & (cr[ref_ok] <= comp_cutoff)
        hit_p = (sp[gen_ok] <= struc_cutoff) & (cp[gen_ok] <= comp_cutoff)
    cov_r = float(np.mean(hit_r)) if len(hit_r) else float("nan")
    cov_p = float(np.sum(hit_p) / n_gen) if n_gen else float("nan")
    return CoverageResult(cov_r, cov_p, sp, cp, sr, cr, float(struc_cutoff), float(comp_cutoff))
