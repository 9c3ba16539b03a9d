"""Rattled copies of structures (benchmarks and tests start relaxations from them)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from pymatgen.core import Structure


def rattle(structures: Sequence["Structure"], sigma: float = 0.05, seed: int = 0) -> list["Structure"]:
    """Copies with every atom displaced by N(0, sigma^2) per Cartesian axis (Angstrom), seeded."""
    rng = np.random.default_rng(seed)
    out = []
    for s in structures:
        s = s.copy()
        for i in range(len(s)):
            s.translate_sites([i], rng.normal(0.0, sigma, 3), frac_coords=False, to_unit_cell=True)
        out.append(s)
    return out
