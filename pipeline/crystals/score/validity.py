"""CDVAE validity (Xie et al. 2022, ``scripts/eval_utils.py``; docs/protocols.md).

- structural: every periodic interatomic distance >= 0.5 A and cell volume >= 0.1 A^3;
- compositional: SMACT charge neutrality + Pauling electronegativity test on the gcd-reduced
  counts, single elements and all-metal compositions valid, with the ``smact14`` oxidation states
  (the set the published numbers used; smact 4.x's default set disagrees on ~7 % of compositions).
"""

from __future__ import annotations

import warnings
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from pymatgen.core import Structure

STRUCT_CUTOFF = 0.5  # Angstrom
MIN_VOLUME = 0.1  # Angstrom^3


def structural_validity(structure: "Structure", cutoff: float = STRUCT_CUTOFF) -> bool:
    """CDVAE ``structure_validity``: min off-diagonal minimum-image distance >= cutoff, volume >= 0.1."""
    n = len(structure)
    d = np.array(structure.distance_matrix, dtype=float) + np.diag(np.ones(n) * (cutoff + 10.0))
    if d.min() < cutoff or structure.volume < MIN_VOLUME:
        return False
    return True


def composition_key(structure: "Structure") -> tuple[tuple[str, int], ...]:
    """Integer element counts of the cell, sorted by symbol (the input of SMACT validity)."""
    counts: dict[str, int] = {}
    for sp in structure.species:
        counts[sp.symbol] = counts.get(sp.symbol, 0) + 1
    return tuple(sorted(counts.items()))


@lru_cache(maxsize=65536)
def _smact_valid(key: tuple[tuple[str, int], ...], oxidation_states_set: str) -> bool:
    from pymatgen.core import Composition
    from smact.screening import smact_validity

    with warnings.catch_warnings():  # "No Pauling electronegativity for Ar" etc. (noble gases)
        warnings.simplefilter("ignore")
        return bool(smact_validity(Composition(dict(key)), use_pauling_test=True, include_alloys=True,
                                   oxidation_states_set=oxidation_states_set))


def compositional_validity(structure: "Structure", oxidation_states_set: str = "smact14") -> bool:
    """SMACT validity of the cell composition (CDVAE ``smact_validity``; cached by composition)."""
    return _smact_valid(composition_key(structure), oxidation_states_set)
