"""Score protein backbones: geometry, DSSP, designability (or its offline proxies), diversity, novelty.

Three stages, each fanned out with :func:`pipeline.common.parallel.parallel_map` (local processes or a
dask cluster) and cached by content hash in a :class:`pipeline.common.cache.DiskCache` (namespace
``protein_scores``), written as each batch finishes, so an interrupted run resumes and a rerun is read
from the cache:

1. per sample (key: backbone hash + MPNN settings + folding backend identity): geometry, DSSP classes,
   ProteinMPNN designs with their log-likelihoods and recovery against the sample's own sequence, and,
   with a folding backend, scRMSD of each design's fold and of the co-designed sequence's fold;
2. diversity (key: the two backbone hashes): pairwise TM-scores of the designable samples (all samples
   when designability is unavailable), clustered at TM 0.5;
3. novelty (key: backbone hash + reference fingerprint): max TM-score to the reference set
   (:func:`pipeline.proteins.score.tm.novelty_search`, exact).
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from pipeline.common.cache import DiskCache, resolve_cache_dir
from pipeline.common.parallel import ComputeConfig, parallel_map
from pipeline.proteins.score.config import ProteinScoreConfig
from pipeline.proteins.score.inputs import ProteinInput, backbone_hash
from pipeline.proteins.score.reference import ReferenceSpec, load_reference
from pipeline.proteins.score.tm import Trace, diversity, novelty_search, pair_tm
from structures.proteins.io import BackboneChain

CACHE_NAMESPACE = "protein_scores"
SCORER_VERSION = "proteins-1"


@dataclass(frozen=True)
class SampleJob:
    """One backbone to score in a worker (picklable)."""

    key: str
    coords: np.ndarray  # [L, 4, 3]
    atom_mask: np.ndarray  # [L, 4]
    res_ids: np.ndarray  # [L]
    sequence: str
    c_n_breaks: np.ndarray  # [L - 1]
    config: ProteinScoreConfig
    threads: int | None = None


def _cache(cache_dir: str | None) -> DiskCache | None:
    return DiskCache(cache_dir, CACHE_NAMESPACE) if cache_dir else None


def _backend(config: ProteinScoreConfig):
    from pipeline.proteins.score.folding import fold_backend

    return _BACKENDS.setdefault(str(config.esmfold_path()), fold_backend(config.esmfold_path(), config.fold_recycles))


_BACKENDS: dict[str, Any] = {}


def sample_key(chain_hash: str, config: ProteinScoreConfig) -> str:
    """Cache key of a sample's per-sample record."""
    from structures.cache import cache_key

    backend = _backend(config)
    return cache_key([SCORER_VERSION, "sample", chain_hash, repr(asdict(config.mpnn)),
                      backend.identity() if backend is not None else "no-folding", repr(config.scrmsd_threshold)])


def score_sample(job: SampleJob) -> dict[str, Any]:
    """The per-sample record (JSON-able) of one backbone."""
    from pipeline.proteins.score.dssp import assign_dssp
    from pipeline.proteins.score.folding import scrmsd
    from pipeline.proteins.score.geometry import backbone_geometry
    from pipeline.proteins.score.mpnn import design, is_codesigned

    ok = job.atom_mask[:, :3].all(-1)  # residues with N, CA, C
    geo = backbone_geometry(job.coords, job.atom_mask, job.c_n_breaks)
    ss = assign_dssp(job.coords[ok], job.atom_mask[ok])
    own = job.sequence if is_codesigned(job.sequence) else None
    d = design(job.coords, own, job.config.mpnn, job.atom_mask, job.res_ids)
    rec: dict[str, Any] = {**asdict(geo), "helix": ss.helix, "strand": ss.strand, "coil": ss.coil, "dssp": ss.classes,
                           "codesigned": own is not None, "mpnn_sequences": d.sequences,
                           "mpnn_log_likelihoods": d.log_likelihoods,
                           "mpnn_log_likelihood": float(np.mean(d.log_likelihoods)),
                           "codesign_log_likelihood": d.native_log_likelihood,
                           "mpnn_recovery": float(np.mean(d.recovery)) if own else None}
    backend = _backend(job.config)
    if backend is not None:
        seqs = ["".join(np.array(list(s))[ok]) for s in d.sequences]  # residues with a backbone only
        folds = backend.fold(seqs + (["".join(np.array(list(own))[ok])] if own else []))  # [L_ok, 3, 3] each
        target = job.coords[ok]
        rmsds = [scrmsd(target, f) for f in folds[:len(seqs)]]
        best = int(np.argmin(rmsds))
        rec.update(scrmsds=rmsds, scrmsd=rmsds[best], best_sequence=d.sequences[best],
                   designable=bool(rmsds[best] < job.config.scrmsd_threshold))
        if own:
            cs = scrmsd(target, folds[-1])
            rec.update(codesign_scrmsd=cs, codesign_designable=bool(cs < job.config.scrmsd_threshold))
    return rec


def _score_chunk(jobs: list[SampleJob]) -> list[dict[str, Any]]:
    if jobs and jobs[0].threads:
        import torch

        torch.set_num_threads(jobs[0].threads)
    return [score_sample(j) for j in jobs]


@dataclass(frozen=True)
class PairJob:
    key: str
    a: Trace
    b: Trace


def _pair_chunk(jobs: list[PairJob]) -> list[float]:
    return [pair_tm(j.a, j.b) for j in jobs]


@dataclass(frozen=True)
class NoveltyJob:
    key: str
    query: Trace
    reference: ReferenceSpec


def _novelty_chunk(jobs: list[NoveltyJob]) -> list[dict[str, Any]]:
    out = []
    for j in jobs:
        ref = load_reference(j.reference)
        hit = novelty_search(j.query, ref.traces, ref.lengths)
        out.append({"max_tm": hit.max_tm, "best_index": hit.best_index,
                    "best_name": ref.names[hit.best_index] if hit.best_index >= 0 else "",
                    "n_aligned": hit.n_aligned, "n_reference": hit.n_reference})
    return out


def _cached_map(fn, jobs: list, compute: ComputeConfig, desc: str, n_batches: int = 10) -> list:
    """Results of ``fn`` over jobs: cached ones are read, the rest computed in parallel in up to ``n_batches``
    batches, each written to the cache by this process as it finishes (workers never open the SQLite file:
    a connection must not cross a fork), so an interrupted run loses at most one batch."""
    import math

    from tqdm.auto import tqdm

    cache = _cache(str(resolve_cache_dir(compute.cache_dir) or "") or None)
    hits = cache.get_json([j.key for j in jobs]) if cache is not None else {}
    todo = [j for j in jobs if j.key not in hits]
    size = max(16 * max(1, compute.workers), math.ceil(len(todo) / n_batches))
    bar = tqdm(total=len(todo), desc=desc, disable=not compute.progress or not todo, leave=False)
    for k in range(0, len(todo), size):
        batch = todo[k:k + size]
        new = parallel_map(fn, batch, workers=compute.workers, scheduler=compute.dask_scheduler,
                           backend=compute.backend, progress=False)
        done = {j.key: r for j, r in zip(batch, new)}
        if cache is not None:
            cache.put_json(done)
        hits.update(done)
        bar.update(len(batch))
    bar.close()
    return [hits[j.key] for j in jobs]


def trace_of(chain: BackboneChain) -> Trace:
    ok = chain.backbone_complete
    x = chain.coords if chain.coords.ndim == 3 else chain.coords[0]
    return Trace(x[ok, 1].astype(np.float64), "".join(np.array(list(chain.sequence))[ok]))


def score_samples(inp: ProteinInput, config: ProteinScoreConfig, compute: ComputeConfig,
                  threads: int | None = None) -> list[dict[str, Any]]:
    """Stage 1 for every usable chain of ``inp`` (in the order of :meth:`ProteinInput.usable`)."""
    jobs = []
    for i in inp.usable():
        c = inp.chains[i]
        x = c.coords if c.coords.ndim == 3 else c.coords[0]
        jobs.append(SampleJob(sample_key(backbone_hash(c), config), np.asarray(x, np.float32), c.atom_mask,
                              np.asarray(c.res_ids), c.sequence, c.chain_breaks(), config, threads))
    return _cached_map(_score_chunk, jobs, compute, "designs")


def pairwise_tm(traces: list[Trace], hashes: list[str], compute: ComputeConfig) -> np.ndarray:
    """Symmetric TM matrix [N, N] (diagonal 1); each pair aligned once, in hash order (deterministic)."""
    from structures.cache import cache_key

    n = len(traces)
    jobs, where = [], []
    for i, j in itertools.combinations(range(n), 2):
        a, b = (i, j) if hashes[i] <= hashes[j] else (j, i)
        jobs.append(PairJob(cache_key([SCORER_VERSION, "pair", hashes[a], hashes[b]]), traces[a], traces[b]))
        where.append((i, j))
    tm = np.eye(n)
    for (i, j), v in zip(where, _cached_map(_pair_chunk, jobs, compute, "TM-align pairs")):
        tm[i, j] = tm[j, i] = v
    return tm


def novelty(traces: list[Trace], hashes: list[str], spec: ReferenceSpec, compute: ComputeConfig) -> list[dict]:
    """Stage 3: the best reference hit of every trace."""
    from structures.cache import cache_key

    jobs = [NoveltyJob(cache_key([SCORER_VERSION, "novelty", h, spec.key]), t, spec) for t, h in zip(traces, hashes)]
    return _cached_map(_novelty_chunk, jobs, compute, "novelty (TM-align)")


__all__ = ["score_samples", "pairwise_tm", "novelty", "diversity", "trace_of", "SampleJob"]
