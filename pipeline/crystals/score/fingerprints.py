"""CDVAE fingerprints (``scripts/compute_metrics.py``, ``Crystal.get_fingerprints``).

- structure: site-averaged ``CrystalNNFingerprint.from_preset("ops")`` [61]; ``None`` when the
  featuriser raises (CDVAE then leaves the crystal out of COV);
- composition: Magpie ``ElementProperty.from_preset("magpie")`` of the cell's element counts [132],
  raw (standardised with the CDVAE CompScaler in :mod:`pipeline.crystals.score.coverage`).

:func:`compute_fingerprints` adds what makes it fast: a content-hash cache on disk (over the shipped
fingerprints of the Perov-5 / Carbon-24 test splits, :mod:`pipeline.crystals.score.reference_data`), composition
fingerprints computed once per composition, and a process / dask fan-out.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Sequence

import numpy as np

from pipeline.common.cache import DiskCache, resolve_cache_dir
from pipeline.common.hashing import structure_hash
from pipeline.common.parallel import parallel_map
from pipeline.crystals.score.reference_data import fingerprint_layer

if TYPE_CHECKING:  # pragma: no cover
    from pymatgen.core import Structure

STRUCT_FP_DIM, COMP_FP_DIM = 61, 132
_CACHE_NS = "cdvae_fp_v1"  # bump when the definition changes


@lru_cache(maxsize=1)
def _featurizers():
    from matminer.featurizers.composition.composite import ElementProperty
    from matminer.featurizers.site.fingerprint import CrystalNNFingerprint

    return CrystalNNFingerprint.from_preset("ops"), ElementProperty.from_preset("magpie")


def structure_fingerprint(structure: "Structure") -> np.ndarray | None:
    """Mean over sites of CrystalNNFingerprint("ops") [61]; None if the featuriser raises."""
    cnn, _ = _featurizers()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            site_fps = [cnn.featurize(structure, i) for i in range(len(structure))]
    except Exception:  # noqa: BLE001 - CDVAE: "counts crystal as invalid"
        return None
    return np.array(site_fps, dtype=np.float64).mean(axis=0)


@lru_cache(maxsize=65536)
def _comp_fp(key: tuple[tuple[str, int], ...]) -> tuple[float, ...]:
    from pymatgen.core import Composition

    _, ep = _featurizers()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return tuple(ep.featurize(Composition(dict(key))))


def composition_fingerprint(structure: "Structure") -> np.ndarray:
    """Magpie ElementProperty of the cell's element counts [132] (not yet standardised)."""
    from pipeline.crystals.score.validity import composition_key

    return np.array(_comp_fp(composition_key(structure)), dtype=np.float64)


@dataclass
class Fingerprints:
    """Fingerprints of N structures; rows of failed structure fingerprints are NaN."""

    struct: np.ndarray  # [N, 61]
    comp: np.ndarray  # [N, 132]
    struct_ok: np.ndarray  # [N] bool, False where CrystalNNFingerprint raised

    def __len__(self) -> int:
        return len(self.struct_ok)


def _fp_chunk(structures: list["Structure"]) -> list[tuple[np.ndarray | None, np.ndarray]]:
    return [(structure_fingerprint(s), composition_fingerprint(s)) for s in structures]


def compute_fingerprints(structures: Sequence["Structure"], workers: int = 1, scheduler: str | None = None,
                         backend: str = "processes", cache_dir: str | os.PathLike | None | bool = None,
                         keys: Sequence[str] | None = None, progress: bool = True,
                         desc: str = "fingerprints") -> Fingerprints:
    """Fingerprints of all ``structures``, reading/writing the disk cache by content hash.

    Only cache misses are computed (deduplicated by hash), fanned out over ``workers`` processes
    (``backend``: "processes" or "dask") or the dask cluster at ``scheduler``.
    """
    n = len(structures)
    keys = list(keys) if keys is not None else [structure_hash(s) for s in structures]
    cdir = resolve_cache_dir(cache_dir)
    cache = DiskCache(cdir, _CACHE_NS, shipped=fingerprint_layer()) if cdir is not None else None
    sfp = np.full((n, STRUCT_FP_DIM), np.nan)
    cfp = np.full((n, COMP_FP_DIM), np.nan)
    ok = np.zeros(n, dtype=bool)
    got_s = cache.get_arrays(f"s:{k}" for k in keys) if cache else {}
    got_c = cache.get_arrays(f"c:{k}" for k in keys) if cache else {}
    todo: dict[str, int] = {}
    for i, k in enumerate(keys):
        if f"s:{k}" in got_s and f"c:{k}" in got_c:
            _fill(i, got_s[f"s:{k}"], got_c[f"c:{k}"], sfp, cfp, ok)
        elif k not in todo:
            todo[k] = i
    if todo:
        order = list(todo)
        res = parallel_map(_fp_chunk, [structures[todo[k]] for k in order], workers=workers,
                           scheduler=scheduler, backend=backend, desc=desc, progress=progress)
        fresh = dict(zip(order, res))
        for i, k in enumerate(keys):
            if k in fresh:
                _fill(i, fresh[k][0], fresh[k][1], sfp, cfp, ok)
        if cache:
            cache.put_arrays({f"s:{k}": v[0] for k, v in fresh.items()})
            cache.put_arrays({f"c:{k}": v[1] for k, v in fresh.items()})
    return Fingerprints(struct=sfp, comp=cfp, struct_ok=ok)


def _fill(i: int, s: np.ndarray | None, c: np.ndarray, sfp: np.ndarray, cfp: np.ndarray, ok: np.ndarray) -> None:
    cfp[i] = c
    if s is not None:
        sfp[i] = s
        ok[i] = True
