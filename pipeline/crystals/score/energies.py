"""CHGNet energies per atom of many structures (static or relaxed), cached on disk by content hash; energies
read back by id from a relax run's table."""

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


def read_energies(path: str | os.PathLike, ids: Sequence[str]) -> np.ndarray:
    """[len(ids)] energies per atom by id from a ``relax_results`` CSV/Parquet (``e_final_per_atom``; a failed
    relaxation gives NaN).

    Raises :class:`~structures.errors.InputError` when the file is missing, unreadable, lacks the columns or an id.
    """
    import io
    from pathlib import Path

    import pandas as pd

    from structures.errors import InputError

    p = Path(path)
    if not p.is_file():
        raise InputError(f"CrystalScoreConfig.energies: energies file not found: {p}; give the relax_results.csv of "
                         "'genmatch relax crystals'")
    try:
        if p.suffix == ".parquet":  # from bytes: pyarrow cannot open a path that is not valid UTF-8
            df = pd.read_parquet(io.BytesIO(p.read_bytes()))
        else:
            df = pd.read_csv(p)
    except Exception as exc:  # noqa: BLE001 - pandas / pyarrow raise many types for unreadable files
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        raise InputError(f"{p}: cannot read the energies table ({type(exc).__name__}: {first})") from None
    col = next((c for c in ("e_final_per_atom", "energy_per_atom") if c in df.columns), None)
    if "id" not in df.columns or col is None:
        raise InputError(f"{p}: needs columns 'id' and 'e_final_per_atom' (a relax_results file)")
    try:
        values = pd.to_numeric(df[col], errors="raise").astype(float)
    except (TypeError, ValueError):
        raise InputError(f"{p}: column {col!r} holds values that are not numbers") from None
    if "status" in df.columns:
        values[df["status"].astype(str) == "failed"] = np.nan
    m = dict(zip(df["id"].astype(str), values))
    missing = [i for i in ids if i not in m]
    if missing:
        raise InputError(f"{p}: no energy for {len(missing)} structures (e.g. {missing[0]!r}); ids must "
                         "match the input file names")
    return np.array([m[i] for i in ids], dtype=float)
