"""Exact oracles for finite data sets of token sequences (the reference of the tests, GM Prop. 1).

A finite data distribution q = sum_m q_m delta_{z_m} has the exact posterior
p(z_m | x_t) proportional to q_m prod_i p_t(x^i | z_m^i), hence the exact factorised posterior
p^i_{1|t} and the exact marginal generator. With few positions D and tokens K, the marginal p_t over all
K^D states is enumerable, so sampled distributions can be compared with it in total variation.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from manifolds.base import TimeLike, as_time
from manifolds.discrete.generator import support_posterior
from manifolds.discrete.paths import DiscretePath


@dataclass(frozen=True)
class FiniteData:
    """q = sum_m probs[m] delta_{support[m]}: ``support`` ``[M, D]`` long, ``probs`` ``[M]`` (sums to 1)."""

    support: Tensor
    probs: Tensor

    def __post_init__(self) -> None:
        if self.support.ndim != 2 or self.probs.shape != (self.support.shape[0],):
            raise ValueError("support must be [M, D] and probs [M]")
        if abs(float(self.probs.sum()) - 1.0) > 1e-6:
            raise ValueError("probs must sum to 1")


def token_likelihoods(path: DiscretePath, x: Tensor, t: TimeLike) -> Tensor:
    """p_t(x^i | a) for every data token a: ``x`` ``[B, D]`` -> ``[B, D, K(a)]``."""
    K = path.vocab_size
    tt = as_time(t, x.shape[0], torch.empty(()))
    tokens = torch.arange(K, device=x.device)
    if bool((tt == tt[0]).all()):  # one time for the batch: one [K(a), K(x)] table
        table = path.probs(tokens.unsqueeze(0), tt[:1])[0]  # [K(a), K(x)]
        return table.t()[x]  # [B, D, K(a)]
    table = path.probs(tokens.expand(x.shape[0], K), tt)  # [B, K(a), K(x)]
    return table.gather(-1, x.unsqueeze(1).expand(-1, K, -1)).transpose(1, 2)  # [B, D, K(a)]


def posterior_weights(path: DiscretePath, data: FiniteData, x: Tensor, t: TimeLike) -> Tensor:
    """p(z_m | x_t) ``[B, M]`` (Bayes over the support)."""
    lik = token_likelihoods(path, x, t).log()  # [B, D, K]
    D = x.shape[1]
    per = lik[:, torch.arange(D), data.support]  # [B, M, D]
    return torch.softmax(data.probs.log() + per.sum(-1), dim=-1)


def factorised_posterior(path: DiscretePath, data: FiniteData, x: Tensor, t: TimeLike) -> Tensor:
    """Exact p^i_{1|t}(a | x) ``[B, D, K]`` (KO eq. 10)."""
    return support_posterior(data.support, posterior_weights(path, data, x, t), path.vocab_size)


def posterior_logits_fn(path: DiscretePath, data: FiniteData):
    """The exact posterior as a sampler model: ``(x, t) -> logits`` ``[B, D, K]`` (-inf where impossible)."""
    def fn(x: Tensor, t: Tensor) -> Tensor:
        return factorised_posterior(path, data, x, t).log()
    return fn


def all_states(vocab_size: int, length: int) -> Tensor:
    """Every sequence in [K]^D, ``[K^D, D]``, in the order of :func:`state_index`."""
    grids = torch.meshgrid(*[torch.arange(vocab_size)] * length, indexing="ij")
    return torch.stack([g.reshape(-1) for g in grids], dim=-1)


def state_index(x: Tensor, vocab_size: int) -> Tensor:
    """Flat index of each sequence ``[B, D]`` -> ``[B]`` (row-major, matching :func:`all_states`)."""
    powers = vocab_size ** torch.arange(x.shape[1] - 1, -1, -1, device=x.device)
    return (x * powers).sum(-1)


def marginal_probs(path: DiscretePath, data: FiniteData, t: float) -> Tensor:
    """Exact p_t(x) = sum_m q_m prod_i p_t(x^i | z_m^i) over all K^D states ``[K^D]`` (KO eq. 1)."""
    K, D = path.vocab_size, data.support.shape[1]
    states = all_states(K, D)
    lik = token_likelihoods(path, states, t)  # [S, D, K]
    per = lik[:, torch.arange(D), data.support]  # [S, M, D]
    return (per.prod(-1) * data.probs).sum(-1)


def total_variation(samples: Tensor, probs: Tensor, vocab_size: int) -> float:
    """TV between the empirical law of ``samples`` ``[N, D]`` and ``probs`` over all states ``[K^D]``."""
    counts = torch.bincount(state_index(samples, vocab_size), minlength=probs.numel()).to(probs.dtype)
    return 0.5 * float((counts / samples.shape[0] - probs).abs().sum())


def log_likelihood(data: FiniteData, x: Tensor) -> Tensor:
    """log q(x) ``[B]`` (-inf off the support)."""
    match = (x.unsqueeze(1) == data.support.unsqueeze(0)).all(-1).to(data.probs.dtype)  # [B, M]
    return (match * data.probs).sum(-1).log()
