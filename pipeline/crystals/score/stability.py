"""Stability, uniqueness, novelty and S.U.N. (the FlowMM protocol, Miller et al. 2024; docs/protocols.md).

stable_i  = E_hull_i <= threshold (0 eV/atom; MatterGen uses 0.1) and >= 2 elements
hull coverage = share of the samples with >= 2 elements that the hull covers (every element of the sample meets a
            non-elemental compound on the hull facet beneath it: :meth:`ReferenceHull.coverage_gap`); below
            100 % the stable rate (and S.U.N.) is an upper bound
unique_i  = no earlier scored structure matches it (pymatgen StructureMatcher defaults); computed for every
            scored row, stable or not: stability is a column to filter on, not a gate
novel_i   = no training structure matches it (StructureMatcher defaults); every scored row
S.U.N.    = |{i : stable_i, no earlier *stable* structure matches it, and novel_i}| / N

Matching is only tried within the same reduced formula (StructureMatcher never matches across
compositions with its defaults), which makes both searches cheap. One pass of :func:`match_classes` gives
both uniqueness among all rows and among the stable ones (:func:`first_of_class`).
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
    """Hull coverage of a set of samples: the share of the samples that can be stable (>= 2 elements) that
    the hull covers (``covered``, from :meth:`pipeline.crystals.score.hull.ReferenceHull.covers`: every element
    meets a compound on the facet beneath the sample). An uncovered sample's E_hull is, in some direction, a
    formation energy from the elements, a lower bound, so below 100 % coverage the stable rate is an upper bound."""
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


def match_classes(structures: Sequence["Structure"], candidates: np.ndarray, progress: bool = False) -> np.ndarray:
    """[N] int: for each candidate the index of the first candidate (in input order) that it matches (itself when
    none does), -1 for the others. Each structure is compared with the first member of each class so far."""
    from pymatgen.analysis.structure_matcher import StructureMatcher

    sm = StructureMatcher()
    out = np.full(len(structures), -1, dtype=int)
    groups = _by_formula(structures, np.flatnonzero(candidates))
    for members in tqdm(groups.values(), desc="uniqueness", disable=not progress, leave=False):
        firsts: list[int] = []
        for i in members:
            first = next((j for j in firsts if sm.fit(structures[i], structures[j])), None)
            if first is None:
                firsts.append(i)
                first = i
            out[i] = first
    return out


def first_of_class(classes: np.ndarray, subset: np.ndarray) -> np.ndarray:
    """[N] bool: True for the first member (in input order) of each class of :func:`match_classes` within
    ``subset``: uniqueness among those rows."""
    out = np.zeros(len(classes), dtype=bool)
    seen: set[int] = set()
    for i in np.flatnonzero(np.asarray(subset, dtype=bool) & (np.asarray(classes) >= 0)):
        if classes[i] not in seen:
            seen.add(int(classes[i]))
            out[i] = True
    return out


def unique_mask(structures: Sequence["Structure"], candidates: np.ndarray, progress: bool = False) -> np.ndarray:
    """True for the first structure (in input order) of each StructureMatcher class among candidates."""
    return first_of_class(match_classes(structures, candidates, progress), candidates)


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
