"""Stability, uniqueness, novelty and S.U.N. (the FlowMM protocol, Miller et al. 2024; docs/protocols.md).

stable_i  = E_hull_i <= threshold (0 eV/atom; MatterGen uses 0.1) and >= 2 elements
hull coverage = share of the samples with >= 2 elements whose chemical system holds a non-elemental
            reference entry; below 100 % the stable rate (and S.U.N.) is an upper bound
unique_i  = stable_i and no earlier stable structure matches it (pymatgen StructureMatcher defaults)
novel_i   = no training structure matches it (StructureMatcher defaults)
S.U.N.    = |{i : stable_i and unique_i and novel_i}| / N

Matching is only tried within the same reduced formula (StructureMatcher never matches across
compositions with its defaults), which makes both searches cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import numpy as np
from tqdm.auto import tqdm

if TYPE_CHECKING:  # pragma: no cover
    from pymatgen.core import Structure


def stable_mask(e_hull: np.ndarray, n_elements: np.ndarray, threshold: float = 0.0) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        return (np.asarray(e_hull, float) <= threshold) & (np.asarray(n_elements) >= 2)


def hull_coverage(covered: np.ndarray, n_elements: np.ndarray) -> dict[str, float | int | bool]:
    """Hull coverage of a set of samples: the share of the samples that can be stable (>= 2 elements)
    whose chemical system holds at least one non-elemental reference entry (``covered``, from
    :meth:`pipeline.crystals.score.hull.ReferenceHull.covers`). An uncovered sample's E_hull is its formation
    energy from the elements, a lower bound, so below 100 % coverage the stable rate is an upper bound."""
    multi = np.asarray(n_elements) >= 2
    n = int(multi.sum())
    k = int((np.asarray(covered, dtype=bool) & multi).sum())
    cov = k / n if n else float("nan")
    return {"hull_coverage": cov, "n_hull_covered": k, "n_hull_coverable": n,
            "stable_rate_is_upper_bound": bool(n and k < n)}


def _by_formula(structures: Sequence["Structure"], idx: Sequence[int]) -> dict[str, list[int]]:
    groups: dict[str, list[int]] = {}
    for i in idx:
        groups.setdefault(structures[i].composition.reduced_formula, []).append(i)
    return groups


def unique_mask(structures: Sequence["Structure"], candidates: np.ndarray, progress: bool = False) -> np.ndarray:
    """True for the first structure (in input order) of each StructureMatcher class among candidates."""
    from pymatgen.analysis.structure_matcher import StructureMatcher

    sm = StructureMatcher()
    out = np.zeros(len(structures), dtype=bool)
    groups = _by_formula(structures, np.flatnonzero(candidates))
    for members in tqdm(groups.values(), desc="uniqueness", disable=not progress, leave=False):
        kept: list[int] = []
        for i in members:
            if not any(sm.fit(structures[i], structures[j]) for j in kept):
                kept.append(i)
                out[i] = True
    return out


def novel_mask(structures: Sequence["Structure"], training: Sequence["Structure"], candidates: np.ndarray,
               progress: bool = False) -> np.ndarray:
    """True where no training structure matches (only candidates are tested; others False)."""
    from pymatgen.analysis.structure_matcher import StructureMatcher

    sm = StructureMatcher()
    train_groups = _by_formula(training, range(len(training)))
    out = np.zeros(len(structures), dtype=bool)
    for i in tqdm(np.flatnonzero(candidates), desc="novelty", disable=not progress, leave=False):
        s = structures[i]
        same = train_groups.get(s.composition.reduced_formula, [])
        out[i] = not any(sm.fit(s, training[j]) for j in same)
    return out
