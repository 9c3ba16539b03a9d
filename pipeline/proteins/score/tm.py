"""Diversity and novelty with TM-align (tmtools), clustering with scipy.

- TM-score of a pair: TM-align of the CA traces; ``tm_norm_chain1`` is normalised by the first chain.
  Pairwise (diversity) similarity is symmetric: the mean of the two normalisations.
- Diversity: all-vs-all TM-scores, average-linkage clustering on 1 - TM cut at 1 - 0.5 (TM >= 0.5
  joins: the MaxCluster ``-C 2 -Tm 0.5`` equivalent of multijump), reported as clusters / samples and the
  mean pairwise TM-score.
- Novelty of a sample: 1 - max over the reference set of the TM-score normalised by the *sample*
  (GM / MultiFlow: foldseek's exhaustive search against the PDB). The search is exhaustive up to an
  **exact** bound: TM normalised by L_q is a sum of at most min(L_q, L_r) terms <= 1 divided by L_q, so a
  reference with min(L_q, L_r) / L_q <= the best score so far cannot raise the maximum and is skipped.
  References are visited nearest length first, which finds high scores early. The maximum is the same
  as that of the plain loop over all references (tested, and ``metrics_equal`` in the benchmark).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np


@dataclass(frozen=True)
class Trace:
    """A CA trace for TM-align: ca [L, 3] float64 and a one-letter sequence (only labels the alignment)."""

    ca: np.ndarray
    sequence: str


@dataclass(frozen=True)
class NoveltyHit:
    """Best reference hit of one sample: max TM (normalised by the sample), which reference, how many
    TM-align calls the exact bound left (``n_aligned``) out of ``n_reference``."""

    max_tm: float
    best_index: int
    n_aligned: int
    n_reference: int


def _seq(t: Trace) -> str:
    s = t.sequence if len(t.sequence) == len(t.ca) else "A" * len(t.ca)
    return "".join(a if a.isalpha() and a.isupper() else "X" for a in s)


def tm_align(a: Trace, b: Trace) -> tuple[float, float]:
    """(TM normalised by a, TM normalised by b) of the TM-align alignment of a onto b."""
    import tmtools

    r = tmtools.tm_align(np.ascontiguousarray(a.ca, np.float64), np.ascontiguousarray(b.ca, np.float64),
                         _seq(a), _seq(b))
    return float(r.tm_norm_chain1), float(r.tm_norm_chain2)


def pair_tm(a: Trace, b: Trace) -> float:
    """Symmetric pairwise TM-score: the mean of the two normalisations."""
    x, y = tm_align(a, b)
    return 0.5 * (x + y)


def novelty_search(query: Trace, references: Sequence[Trace], ref_lengths: np.ndarray | None = None,
                   exclude: int | None = None) -> NoveltyHit:
    """Max TM-score (normalised by ``query``) over ``references``, exhaustive up to the exact length bound
    (module docstring). ``exclude``: a reference index to leave out (the query itself)."""
    lq = len(query.ca)
    lengths = np.array([len(r.ca) for r in references]) if ref_lengths is None else np.asarray(ref_lengths)
    order = np.lexsort((np.arange(len(lengths)), np.abs(lengths - lq)))  # nearest length first, then index
    bound = np.minimum(lengths, lq) / max(lq, 1)  # [R] upper bound of each reference's TM
    best, best_i, n = -1.0, -1, 0
    for i in order:
        if i == exclude or bound[i] <= best:
            continue
        tm, _ = tm_align(query, references[i])
        n += 1
        if tm > best or (tm == best and i < best_i):
            best, best_i = tm, int(i)
    n_ref = len(references) - (exclude is not None and 0 <= exclude < len(references))
    return NoveltyHit(max(best, 0.0), best_i, n, n_ref)


def novelty_plain(query: Trace, references: Sequence[Trace]) -> float:
    """The plain reference: max TM over every reference, no bound (for tests and the benchmark)."""
    return max(tm_align(query, r)[0] for r in references)


def cluster(tm: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Average-linkage clusters of a symmetric TM matrix [N, N] cut at TM ``threshold``; labels [N] from 0."""
    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.spatial.distance import squareform

    n = len(tm)
    if n == 0:
        return np.zeros(0, int)
    if n == 1:
        return np.zeros(1, int)
    d = 1.0 - np.asarray(tm, np.float64)
    d = 0.5 * (d + d.T)
    np.fill_diagonal(d, 0.0)
    z = linkage(squareform(np.clip(d, 0.0, None), checks=False), method="average")
    return fcluster(z, t=1.0 - threshold, criterion="distance") - 1


@dataclass(frozen=True)
class Diversity:
    """Clusters of a sample set and its mean pairwise TM-score."""

    n: int
    n_clusters: int
    cluster_fraction: float  # clusters / samples
    mean_pairwise_tm: float
    labels: np.ndarray  # [n]


def diversity(tm: np.ndarray, threshold: float = 0.5) -> Diversity:
    """Diversity of a symmetric pairwise TM matrix [N, N]."""
    n = len(tm)
    labels = cluster(tm, threshold)
    iu = np.triu_indices(n, 1)
    k = int(labels.max() + 1) if n else 0
    return Diversity(n, k, k / n if n else float("nan"), float(tm[iu].mean()) if n > 1 else float("nan"), labels)
