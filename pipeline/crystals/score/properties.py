"""CDVAE property distances: Wasserstein-1 distance (``scipy.stats.wasserstein_distance``) between
the densities (g/cm^3) and between the numbers of distinct elements of ``n_samples`` (1,000)
valid generated crystals, drawn without replacement, and all reference (test) crystals."""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from pymatgen.core import Structure

N_SAMPLES = 1000


def density(structure: "Structure") -> float:
    return float(structure.density)


def n_elements(structure: "Structure") -> int:
    return len(set(structure.species))


def sample_valid(valid: np.ndarray, n_samples: int = N_SAMPLES, seed: int = 0) -> np.ndarray:
    """Indices of ``n_samples`` valid crystals drawn without replacement (all, if fewer)."""
    idx = np.flatnonzero(np.asarray(valid, bool))
    if len(idx) <= n_samples:
        return idx
    return np.sort(np.random.default_rng(seed).choice(idx, n_samples, replace=False))


def property_wdists(gen_density: Sequence[float], gen_nel: Sequence[int], ref_density: Sequence[float],
                    ref_nel: Sequence[int], sample: np.ndarray) -> dict[str, float]:
    """``{"wdist_density", "wdist_num_elems"}`` over the sampled generated crystals vs the reference."""
    from scipy.stats import wasserstein_distance

    if len(sample) == 0:
        return {"wdist_density": float("nan"), "wdist_num_elems": float("nan")}
    gd = np.asarray(gen_density, float)[sample]
    gn = np.asarray(gen_nel, float)[sample]
    return {"wdist_density": float(wasserstein_distance(gd, np.asarray(ref_density, float))),
            "wdist_num_elems": float(wasserstein_distance(gn, np.asarray(ref_nel, float)))}
