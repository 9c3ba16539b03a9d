"""Pieces of ``benchmarks/csp.py`` (crystal structure prediction, the DiffCSP / FlowMM protocol): the seeded test
subsets, generation from a test crystal's composition, matching against the true structure, CHGNet ranking.

Matching (DiffCSP Table 1; FlowMM ``old_eval/reconstruction_metrics.py``): a sample counts only when it decodes, is
structurally valid (CDVAE: no two atoms closer than 0.5 A, volume >= 0.1 A^3) and compositionally valid (SMACT; the
composition is the test crystal's, so a test crystal that SMACT rejects can never be matched); it matches when
``StructureMatcher(stol=0.5, angle_tol=10, ltol=0.3).get_rms_dist(sample, truth)`` is not None, and its RMSE is that
call's first value (the RMS site displacement normalised by (V / n)^(1/3)). With k samples per crystal, the crystal
is matched when any of them is, with the smallest RMSE.
"""

from __future__ import annotations

import inspect
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

#: the DiffCSP / FlowMM matcher tolerances
MATCHER = {"stol": 0.5, "angle_tol": 10.0, "ltol": 0.3}


def subsets(n_total: int, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The reported and the tuning subset of a split of ``n_total`` crystals, both of ``n`` indices and disjoint
    when 2 n <= n_total: one seeded permutation of 0..n_total-1, the reported crystals from its start, the tuning
    crystals from its end."""
    perm = np.random.default_rng(seed).permutation(n_total)
    return np.sort(perm[:n]), np.sort(perm[::-1][:n])


@dataclass
class Generated:
    """``samples[i][j]``: the j-th of k samples for test crystal i (a Structure, or a falsy DecodeFailure)."""

    samples: list[list[Any]]
    seconds: float  # wall time of the generation (decoding included)
    tokens: Any = None  # [n k, L] tokens, crystal-major


def composition_template(model: Any, structures: Sequence[Any], rng: Any = None) -> tuple[Any, Any, Any]:
    """The CTMC start of structure prediction without the public conditioning API (direct path): the test crystals'
    tokens (:func:`structures.crystals.tokens.encode_batch`) with the 6 lattice tokens and the 3 coordinate tokens of
    each atom set to MASK (a model with metric coordinates: uniform on the ring, its path's source), element tokens
    and padding kept. Returns ``x_init`` ``[B, 6 + 4A]``, ``fixed`` (elements and padding) and the atom mask ``[B, A]``.
    """
    import torch

    from pipeline.crystals.flow import FRAC_OFFSET, N_RING
    from structures.crystals.tokens import MASK, TokenKind, encode_batch, position_kinds

    batch = encode_batch(list(structures), max_atoms=max(len(s) for s in structures)).to_torch()
    kinds = torch.from_numpy(position_kinds(batch.max_atoms))  # [L]
    element = (kinds == int(TokenKind.ELEMENT))[None] & batch.token_mask  # [B, L]
    free = batch.token_mask & ~element
    x0 = torch.where(free, torch.full_like(batch.tokens, MASK), batch.tokens)
    if model.coords.metric:
        coord = (kinds == int(TokenKind.FRAC))[None] & batch.token_mask
        x0 = torch.where(coord, torch.randint(0, N_RING, x0.shape, generator=rng) + FRAC_OFFSET, x0)
    return x0, ~free, batch.atom_mask


def sample_composition_direct(model: Any, structures: Sequence[Any], config: Any, rng: Any = None) -> Any:
    """Sample one token sequence per structure with its element tokens revealed and fixed (direct path: the KO
    sampler of :func:`pipeline.crystals.generate.sample_tokens` from :func:`composition_template`): ``[B, L]``."""
    import torch

    from manifolds.discrete import DiscreteGenerator, sample
    from manifolds.discrete.sampler import tempered
    from manifolds.samplers import time_grid
    from pipeline.crystals.flow import make_path, model_time

    x0, fixed, atom_mask = composition_template(model, structures, rng)
    scheduler = config.scheduler or model.scheduler
    generator = DiscreteGenerator(make_path(scheduler, model.coords), corrector=config.corrector)

    def posterior(x: Any, t: Any) -> Any:
        return model.posterior(x, model_time(t, model.scheduler, scheduler), atom_mask).float()

    # the sampler takes the revealed positions as ``condition`` (a mask or a Conditioning); older: ``fixed``
    keep = {"condition": fixed} if "condition" in inspect.signature(sample).parameters else {"fixed": fixed}
    with torch.no_grad():
        return sample(generator, tempered(posterior, config.temperature), x0, time_grid(config.steps), rng=rng,
                      **keep)


def generate_direct(model: Any, truths: Sequence[Any], k: int, config: Any, batch_size: int = 250) -> Generated:
    """k samples per test crystal by :func:`sample_composition_direct`, in batches (batch b seeded from
    ``config.seed`` and b); decoded."""
    import torch

    from structures.crystals.tokens import decode_batch

    rows = [s for s in truths for _ in range(k)]  # crystal-major: crystal i's samples are rows i k .. i k + k - 1
    t0 = time.perf_counter()
    out: list[Any] = []
    toks = []
    for b, start in enumerate(range(0, len(rows), batch_size)):
        rng = torch.Generator().manual_seed(int(np.random.SeedSequence([config.seed, b]).generate_state(1)[0]))
        chunk = rows[start:start + batch_size]
        n_max = max(len(s) for s in chunk)
        tok = sample_composition_direct(model, chunk, config, rng)
        toks.append(tok[:, : 6 + 4 * n_max])
        out.extend(decode_batch(tok.cpu()).structures())
    seconds = time.perf_counter() - t0
    return Generated([out[i * k:(i + 1) * k] for i in range(len(truths))], seconds)


def valid_sample(s: Any) -> bool:
    """Decoded, CDVAE structurally valid and SMACT compositionally valid (the protocol's ``Crystal.valid``)."""
    from pipeline.crystals.score.validity import (
        compositional_validity,
        structural_validity,
    )

    return bool(s) and structural_validity(s) and compositional_validity(s)


def rms_matrix(samples: list[list[Any]], truths: Sequence[Any]) -> np.ndarray:
    """``[n, k]`` RMSE of sample j of crystal i against truth i; NaN where it is invalid or does not match."""
    from pymatgen.analysis.structure_matcher import StructureMatcher

    matcher = StructureMatcher(**MATCHER)
    out = np.full((len(samples), max((len(r) for r in samples), default=0)), np.nan)
    for i, (row, truth) in enumerate(zip(samples, truths)):
        for j, s in enumerate(row):
            out[i, j] = match_rms(matcher, s, truth)
    return out


def match_rms(matcher: Any, sample: Any, truth: Any) -> float:
    """The protocol's RMSE of one sample, NaN when it is invalid or does not match (or the matcher fails)."""
    if sample is None or not valid_sample(sample):
        return float("nan")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            r = matcher.get_rms_dist(sample, truth)
    except Exception:  # noqa: BLE001 - as the reference evaluation: a matcher error is no match
        return float("nan")
    return float("nan") if r is None else float(r[0])


def summarize(rms: np.ndarray, k: int | None = None) -> dict[str, Any]:
    """Match rate (share of crystals with a match among their first ``k`` samples) and mean best RMSE over the
    matched crystals."""
    sub = rms if k is None else rms[:, :k]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        best = np.nanmin(np.where(np.isnan(sub), np.inf, sub), axis=1) if sub.size else np.zeros(0)
    hit = np.isfinite(best)
    return {"match_rate": float(hit.mean()) if len(hit) else 0.0,
            "rmse": float(best[hit].mean()) if hit.any() else None, "n_matched": int(hit.sum()),
            "n_crystals": len(hit)}


def pick_rows(rms: np.ndarray, choice: np.ndarray) -> np.ndarray:
    """``[n, 1]``: the RMSE of the chosen sample of each crystal (``choice`` ``[n]``, -1: none chosen -> NaN)."""
    out = np.full((rms.shape[0], 1), np.nan)
    ok = choice >= 0
    out[ok, 0] = rms[np.flatnonzero(ok), choice[ok]]
    return out


def lowest_energy(energies: np.ndarray, samples: list[list[Any]]) -> np.ndarray:
    """``[n]``: per crystal, the index of the valid sample with the lowest energy per atom (-1 when none)."""
    e = np.array(energies, dtype=float)
    for i, row in enumerate(samples):
        for j, s in enumerate(row):
            if not (s and valid_sample(s)):
                e[i, j] = np.nan
    out = np.full(len(samples), -1)
    has = np.isfinite(e).any(1)
    out[has] = np.nanargmin(np.where(np.isfinite(e[has]), e[has], np.inf), axis=1)
    return out


def flat_valid(samples: list[list[Any]]) -> tuple[list[tuple[int, int]], list[Any]]:
    """The (crystal, sample) positions and structures of the valid samples, in order."""
    pos = [(i, j) for i, row in enumerate(samples) for j, s in enumerate(row) if s and valid_sample(s)]
    return pos, [samples[i][j] for i, j in pos]


def chgnet_static(samples: list[list[Any]], batch_size: int = 64) -> np.ndarray:
    """``[n, k]`` CHGNet energy per atom at the generated geometry (NaN for invalid samples); nothing is cached to
    disk (:func:`pipeline.crystals.score.energies.chgnet_energies` with ``cache_dir=False``)."""
    from pipeline.crystals.score.energies import chgnet_energies

    pos, flat = flat_valid(samples)
    out = np.full((len(samples), max(len(r) for r in samples)), np.nan)
    if flat:
        e = chgnet_energies(flat, batch_size=batch_size, cache_dir=False, progress=False)
        for (i, j), v in zip(pos, e):
            out[i, j] = v
    return out


def chgnet_relaxed(samples: list[list[Any]], max_steps: int, batch_size: int = 64) -> tuple[list[list[Any]], np.ndarray]:
    """A short CHGNet relaxation (batched FIRE on the Frechet cell filter, fmax 0.1, at most ``max_steps`` steps;
    :class:`pipeline.crystals.relax.BatchedRelaxer`) of every valid sample: the relaxed structures (None where
    invalid or failed) and ``[n, k]`` final energies per atom."""
    from pipeline.crystals.relax import BatchedRelaxer, RelaxStatus

    pos, flat = flat_valid(samples)
    k = max(len(r) for r in samples)
    out: list[list[Any]] = [[None] * k for _ in samples]
    energy = np.full((len(samples), k), np.nan)
    if flat:
        for r in BatchedRelaxer(fmax=0.1, max_steps=max_steps, batch_size=batch_size).relax(flat, progress=False):
            if r.status != RelaxStatus.FAILED and r.structure is not None:
                i, j = pos[r.index]
                out[i][j], energy[i, j] = r.structure, r.e_final
    return out, energy


def training_overlap(truths: Sequence[Any], training: Sequence[Any], match: bool = True) -> list[str]:
    """Per test crystal, what the model's training split holds of it: ``"same_structure"`` (a training crystal of
    the same composition matches it under the protocol's matcher), ``"same_composition"`` (only other polymorphs),
    or ``"new"``. With ``match=False`` only the compositions are compared (``"same_composition"`` or ``"new"``)."""
    from pymatgen.analysis.structure_matcher import StructureMatcher

    by_comp: dict[str, list[Any]] = {}
    for s in training:
        by_comp.setdefault(s.composition.formula, []).append(s)
    matcher = StructureMatcher(**MATCHER)
    out = []
    for t in truths:
        same = by_comp.get(t.composition.formula, [])
        if not same:
            out.append("new")
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            hit = match and any(matcher.fit(t, s) for s in same)
        out.append("same_structure" if hit else "same_composition")
    return out
