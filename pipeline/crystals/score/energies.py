"""CHGNet energies per atom of many structures (static or relaxed), cached on disk by content hash."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Sequence

import numpy as np

from pipeline.common.cache import DiskCache, resolve_cache_dir
from pipeline.common.hashing import structure_hash
from pipeline.crystals.score.reference_data import energy_layer

if TYPE_CHECKING:  # pragma: no cover
    from pymatgen.core import Structure


def chgnet_energies(structures: Sequence["Structure"], model: str = "0.3.0", relax: bool = False,
                    fmax: float = 0.1, max_steps: int = 1500, batch_size: int = 32,
                    cache_dir: str | os.PathLike | None | bool = None, progress: bool = True) -> np.ndarray:
    """[N] eV/atom: CHGNet energy at the given geometry (``relax=False``) or after batched FIRE
    relaxation (``relax=True``; failed relaxations give NaN). Cache misses only are computed; the
    relaxed Perov-5 val energies of the default hull's settings are shipped
    (:mod:`pipeline.crystals.score.reference_data`) and found first."""
    from pipeline.crystals.relax import BatchedRelaxer, RelaxStatus, load_chgnet

    tag = f"relax-f{fmax}-s{max_steps}" if relax else "static"
    keys = [f"{model}:{tag}:{structure_hash(s)}" for s in structures]
    cdir = resolve_cache_dir(cache_dir)
    cache = DiskCache(cdir, "chgnet_energy_v1", shipped=energy_layer()) if cdir is not None else None
    got = cache.get_json(keys) if cache else {}
    out = np.array([got.get(k, np.nan) if got.get(k) is not None else np.nan for k in keys], dtype=float)
    todo = [i for i, k in enumerate(keys) if k not in got]
    if not todo:
        return out
    m = load_chgnet(model)
    pending: dict[str, float | None] = {}

    def store(j: int, value: float | None) -> None:  # to the cache as they finish: an interrupted run resumes
        out[j] = np.nan if value is None else value
        pending[keys[j]] = value
        if cache and len(pending) >= 32:
            cache.put_json(pending)
            pending.clear()

    if relax:
        BatchedRelaxer(m, fmax=fmax, max_steps=max_steps, batch_size=batch_size).relax(
            [structures[i] for i in todo], progress=progress,
            on_result=lambda r: store(todo[r.index], None if r.status == RelaxStatus.FAILED else float(r.e_final)))
    else:
        from tqdm.auto import tqdm

        for a in tqdm(range(0, len(todo), batch_size), desc="CHGNet energies", disable=not progress, leave=False):
            idx = todo[a:a + batch_size]
            for j, e in zip(idx, _static_batch(m, [structures[i] for i in idx])):
                store(j, e)
    if cache and pending:
        cache.put_json(pending)
    return out


def _static_batch(model, structures: list["Structure"]) -> list[float | None]:  # noqa: ANN001
    """One forward pass for the batch; per structure on failure (a bad one gets None)."""
    try:
        preds = model.predict_structure(structures, task="e", batch_size=len(structures))
        preds = [preds] if isinstance(preds, dict) else preds
        return [float(p["e"]) if np.isfinite(p["e"]) else None for p in preds]
    except Exception:  # noqa: BLE001
        if len(structures) == 1:
            return [None]
        return [v for s in structures for v in _static_batch(model, [s])]
