"""Source distributions p(x) on a vocabulary [K] for discrete paths (KO section 2 and eq. 38).

Each function returns a probability vector ``[K]`` (float, sums to 1). Sources are factorised over
positions: p(x) = prod_i p(x^i).
"""

from __future__ import annotations

import torch
from torch import Tensor


def mask_source(vocab_size: int, mask_token: int, dtype: torch.dtype = torch.float32) -> Tensor:
    """delta_m: all mass on the mask token ``m`` (the masked construction, KO eq. 2 with p = delta_m)."""
    if not 0 <= mask_token < vocab_size:
        raise ValueError(f"mask_token {mask_token} is outside the vocabulary [0, {vocab_size}); "
                         "pass the index of the mask token")
    p = torch.zeros(vocab_size, dtype=dtype)
    p[mask_token] = 1.0
    return p


def uniform_source(vocab_size: int, dtype: torch.dtype = torch.float32) -> Tensor:
    """p(x) = 1 / K."""
    if vocab_size < 1:
        raise ValueError(f"vocab_size must be >= 1, got {vocab_size}")
    return torch.full((vocab_size,), 1.0 / vocab_size, dtype=dtype)


def token_statistics(tokens: Tensor, vocab_size: int, floor: float = 1e-12) -> Tensor:
    """p_stats(x): relative frequency of each token in ``tokens`` (any shape, long), floored at ``floor``
    (so that log p_stats is finite for tokens never seen) and renormalised, ``[K]``."""
    counts = torch.bincount(tokens.reshape(-1).long(), minlength=vocab_size).to(torch.float64)
    if counts.numel() != vocab_size:
        raise ValueError(f"tokens contain values >= vocab_size {vocab_size}")
    p = (counts / counts.sum()).clamp_min(floor)
    return (p / p.sum()).float()


def data_statistics_source(p_stats: Tensor, beta0: float) -> Tensor:
    """KO eq. 38: p(x) = softmax(-beta0 * log p_stats(x)).

    Sign convention as in KO's text: beta0 = -1 recovers the data statistics, beta0 = 0 the uniform
    source, beta0 -> +inf the uniform distribution on the least frequent tokens (mask-like).
    ``p_stats`` ``[K]`` must be positive (see :func:`token_statistics`).
    """
    if p_stats.ndim != 1 or (p_stats <= 0).any():
        raise ValueError("p_stats must be a positive vector [K]; floor unseen tokens (token_statistics does)")
    return torch.softmax(-beta0 * torch.log(p_stats.double()), dim=-1).to(p_stats.dtype)
