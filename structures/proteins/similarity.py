"""Near-identity grouping of protein chains and a train / validation split on the groups, so near-identical
chains never straddle it (:meth:`structures.proteins.dataset.ProteinDataset.split`).

Groups are connected components of the graph linking two chains when

1. they come from the same entry (PDB id / file), or
2. their k-mer containment |K(a) n K(b)| / min(|K(a)|, |K(b)|) >= threshold (k = 5, threshold 0.3 by
   default). Under ungapped substitution at identity p a k-mer survives with probability p^k, so 0.3 at
   k = 5 links chains of roughly >= 80 % identity (0.95 -> 0.77, 0.9 -> 0.59, 0.8 -> 0.33, 0.5 -> 0.03);
   identical sequences always link.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from structures.proteins.residue_constants import sequence_to_indices


def kmer_matrix(sequences: Sequence[str], k: int = 5):
    """Binary CSR matrix [n, 21^k]: which k-mers (over 20 aa + unknown) each sequence contains."""
    from scipy.sparse import csr_matrix

    rows, cols = [], []
    powers = 21 ** np.arange(k - 1, -1, -1)
    for i, s in enumerate(sequences):
        a = sequence_to_indices(s)  # [L] AF2 order, 20 = unknown
        if len(a) < k:
            continue
        win = np.lib.stride_tricks.sliding_window_view(a, k)  # [L-k+1, k]
        ids = np.unique(win @ powers)
        rows.append(np.full(len(ids), i))
        cols.append(ids)
    r = np.concatenate(rows) if rows else np.zeros(0, np.int64)
    c = np.concatenate(cols) if cols else np.zeros(0, np.int64)
    return csr_matrix((np.ones(len(r), np.int32), (r, c)), shape=(len(sequences), 21**k))


def similarity_groups(sequences: Sequence[str], k: int = 5, threshold: float = 0.3,
                      entries: Sequence[str] | None = None, block: int = 2048) -> np.ndarray:
    """Group label per sequence: connected components of "same entry or k-mer containment >=
    threshold or identical sequence" (see the module docstring). Returns [n] int64."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n = len(sequences)
    x = kmer_matrix(sequences, k)
    counts = np.asarray(x.sum(1)).ravel()
    src, dst = [], []
    xt = x.T.tocsr()
    for lo in range(0, n, block):  # shared-k-mer counts in row blocks (bounded memory)
        s = (x[lo: lo + block] @ xt).tocoo()
        denom = np.minimum(counts[lo + s.row], counts[s.col])
        ok = (denom > 0) & (s.data >= threshold * np.maximum(denom, 1))
        src.append(lo + s.row[ok])
        dst.append(s.col[ok])
    keys: dict[str, int] = {}
    for i, s in enumerate(sequences):  # identical sequences (covers ones shorter than k)
        j = keys.setdefault(s, i)
        src.append(np.array([i]))
        dst.append(np.array([j]))
    if entries is not None:
        first: dict[str, int] = {}
        for i, e in enumerate(entries):
            src.append(np.array([i]))
            dst.append(np.array([first.setdefault(e, i)]))
    r, c = np.concatenate(src), np.concatenate(dst)
    graph = coo_matrix((np.ones(len(r)), (r, c)), shape=(n, n))
    return connected_components(graph, directed=False)[1].astype(np.int64)


def grouped_split(labels: np.ndarray, val_fraction: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, val): whole groups go to validation, in random order, until it holds about
    ``val_fraction`` of the items; no group is on both sides."""
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    labels = np.asarray(labels)
    groups, sizes = np.unique(labels, return_counts=True)
    order = np.random.default_rng(seed).permutation(len(groups))
    target = val_fraction * len(labels)
    val_groups, taken = [], 0
    for g in order:
        if taken >= target:
            break
        if taken + sizes[g] > target * 1.5 + 1 and taken > 0:
            continue  # skip a group that would overshoot a lot; a smaller one may fit
        val_groups.append(groups[g])
        taken += sizes[g]
    is_val = np.isin(labels, val_groups)
    return np.flatnonzero(~is_val), np.flatnonzero(is_val)
