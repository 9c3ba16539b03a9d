"""Content hashes of crystal structures (cache keys).

Two structures share a key exactly when their lattice matrices, species and fractional
coordinates agree after rounding to ``decimals`` places; the order of sites matters (a
permuted structure gets a new key, which only costs a cache miss, never a wrong value).
A sequence of such keys (a whole reference set) is hashed with :func:`structures.cache.cache_key`.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from pymatgen.core import Structure


def structure_hash(structure: "Structure", decimals: int = 8) -> str:
    """SHA-256 (hex, 32 characters) of lattice [3, 3], atomic numbers [N] and frac. coords [N, 3]."""
    h = hashlib.sha256()
    lat = np.round(np.asarray(structure.lattice.matrix, dtype=np.float64), decimals) + 0.0  # no -0.0
    frac = np.round(np.asarray(structure.frac_coords, dtype=np.float64), decimals) + 0.0
    z = np.array([sp.Z for sp in structure.species], dtype=np.int64)
    for arr in (lat, z, frac):
        h.update(np.ascontiguousarray(arr).tobytes())
    return h.hexdigest()[:32]
