"""Predictor guidance for factorised CTMCs (Nisonoff et al. 2024, "Unlocking guidance for discrete state-space
diffusion and flow models").

Conditioning the marginal CTMC of a path on an observation y gives again a CTMC whose rates are those of the
unconditional one reweighted by a likelihood ratio (Nisonoff et al. 2024, eq. 6-7):

    R^y_t(x, x') = R_t(x, x') p(y | x', t) / p(y | x, t),      x' != x,

where p(y | x, t) = E[p(y | X_1) | X_t = x] is the likelihood of y given the *noisy* state. Its marginals are
exactly p_t(x | y), so a sampler run with these rates samples p(x | y) at t = 1. With a guidance strength gamma
the ratio is raised to the power gamma (p(y | x, t)^gamma: sharper targets for gamma > 1).

Our generators change one position at a time (KO eq. 7-8), so the neighbours x' of x are x^{i <- a}: position i
set to token a. A :class:`Guidance` returns, for every (i, a), log p(y | x^{i <- a}, t) - log p(y | x, t) times
gamma (0 off the candidate set), ``[B, *event, K]``; the sampler multiplies the off-diagonal marginal rates by its
exponential (:func:`guided_rates`).

* :class:`PredictorGuidance` ``method="exact"`` evaluates a predictor at every candidate neighbour (cost: one
  predictor call per candidate (i, a): for small spaces, or to check the first-order form);
  ``method="first_order"`` (Nisonoff et al. 2024, section 4.2, "TAG") uses one gradient of log p(y | x, t) with
  respect to the one-hot encoding of x: log p(y | x^{i <- a}) - log p(y | x) ~ g[i, a] - g[i, x^i].
* :class:`PresenceGuidance`: y = "each required token appears at least once among the given positions". Its
  likelihood is computed from the model's own factorised posterior p^i_{1|t} (KO eq. 10) by inclusion-exclusion,
  P(y | x) = sum_{S subset R} (-1)^|S| prod_i (1 - sum_{r in S} p^i_{1|t}(r | x)); the neighbour x^{i <- a}
  replaces position i's factor by 1 - [a in S]. This treats the positions as independent given x_t (exact when
  the data law factorises over positions, an approximation otherwise).
* :func:`combine` multiplies likelihoods (adds log ratios): several targets at once.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

import torch
from torch import Tensor

#: log p(y | x, t): ``x`` ``[N, *event]`` long (or, for first-order guidance, a float one-hot ``[N, *event, K]``),
#: ``t`` ``[N]`` -> ``[N]``
LogLikelihood = Callable[[Tensor, Tensor], Tensor]

#: the largest |log ratio| applied (a likelihood of exactly 0 would otherwise give inf * 0 = nan in the rates)
MAX_LOG_RATIO = 50.0


class Guidance(Protocol):
    """What the sampler asks of a guidance term."""

    def log_ratios(self, x: Tensor, t: Tensor, probs: Tensor, candidates: Tensor) -> Tensor:
        """gamma (log p(y | x^{i <- a}, t) - log p(y | x, t)) ``[B, *event, K]`` where ``candidates`` (else 0).

        ``x`` ``[B, *event]`` the current state, ``t`` ``[B]``, ``probs`` ``[B, *event, K]`` the model's factorised
        posterior p^i_{1|t}(. | x), ``candidates`` ``[B, *event, K]`` bool: the neighbours with a positive rate."""
        ...


def guided_rates(rates: Tensor, x: Tensor, log_ratio: Tensor) -> Tensor:
    """Nisonoff et al. 2024 eq. 7 on a factorised CTMC: off-diagonal rates ``[B, *event, K]`` times
    exp(``log_ratio``), the diagonal re-set so that each column sums to zero."""
    off = rates.scatter(-1, x.unsqueeze(-1), 0.0).clamp_min(0)
    off = off * log_ratio.clamp(-MAX_LOG_RATIO, MAX_LOG_RATIO).exp()
    return off.scatter(-1, x.unsqueeze(-1), -off.sum(-1, keepdim=True))


def guided_logits(logits: Tensor, x: Tensor, log_ratio: Tensor) -> Tensor:
    """The posterior draw of a step ending at t = 1 under guidance: p^i_{1|t}(a | x) p(y | x^{i <- a}) / p(y | x)
    per position (a single-position approximation of p(x_1 | x_t, y), like the factorised posterior itself),
    as logits ``[B, *event, K]``."""
    return logits + log_ratio.clamp(-MAX_LOG_RATIO, MAX_LOG_RATIO).to(logits.dtype)


@dataclass(frozen=True)
class PredictorGuidance:
    """Guidance by a predictor's likelihood p(y | x, t) (:data:`LogLikelihood`).

    ``method="exact"``: ``log_likelihood`` is evaluated on every candidate neighbour, ``chunk`` states per call.
    ``method="first_order"``: ``log_likelihood`` must accept a float one-hot ``[N, *event, K]`` and be
    differentiable in it; one gradient per call.
    """

    log_likelihood: LogLikelihood
    strength: float = 1.0
    method: Literal["exact", "first_order"] = "first_order"
    chunk: int = 4096

    def __post_init__(self) -> None:
        if self.method not in ("exact", "first_order"):
            raise ValueError(f"method must be 'exact' or 'first_order', got {self.method!r}")
        if not self.strength > 0:
            raise ValueError(f"guidance strength must be positive, got {self.strength}")
        if self.chunk < 1:
            raise ValueError(f"chunk must be >= 1, got {self.chunk}")

    def log_ratios(self, x: Tensor, t: Tensor, probs: Tensor, candidates: Tensor) -> Tensor:
        if self.method == "first_order":
            ratio = self._first_order(x, t, probs.shape[-1])
        else:
            ratio = self._exact(x, t, candidates)
        return self.strength * torch.where(candidates, ratio, torch.zeros_like(ratio))

    def _first_order(self, x: Tensor, t: Tensor, K: int) -> Tensor:
        """g[i, a] - g[i, x^i] with g = d log p(y | e, t) / d e at the one-hot e of x (Nisonoff et al. sec. 4.2)."""
        with torch.enable_grad():
            onehot = torch.nn.functional.one_hot(x, K).to(torch.get_default_dtype()).requires_grad_(True)
            ll = self.log_likelihood(onehot, t)  # [B]
            (grad,) = torch.autograd.grad(ll.sum(), onehot)  # [B, *event, K]
        return (grad - grad.gather(-1, x.unsqueeze(-1))).detach()

    def _exact(self, x: Tensor, t: Tensor, candidates: Tensor) -> Tensor:
        """log p(y | x^{i <- a}, t) - log p(y | x, t) at every candidate, by evaluating each neighbour."""
        B = x.shape[0]
        flat = x.reshape(B, -1)  # [B, D]
        base = self.log_likelihood(x, t)  # [B]
        ratio = torch.zeros(candidates.shape, dtype=base.dtype, device=x.device)
        idx = candidates.reshape(B, flat.shape[1], -1).nonzero()  # [N, 3]: (b, i, a)
        out = ratio.view(B, flat.shape[1], -1)
        for start in range(0, idx.shape[0], self.chunk):
            b, i, a = idx[start:start + self.chunk].unbind(-1)
            nb = flat[b].clone()  # [n, D]
            nb[torch.arange(nb.shape[0], device=x.device), i] = a
            ll = self.log_likelihood(nb.reshape((-1,) + x.shape[1:]), t[b])  # [n]
            out[b, i, a] = (ll - base[b]).to(out.dtype)
        return ratio


@dataclass(frozen=True)
class PresenceGuidance:
    """y = every token of ``required`` appears at least once among ``positions`` (``[*event]`` bool), with the
    likelihood of the factorised posterior (module doc; inclusion-exclusion over the 2^|R| subsets of
    ``required``, so keep |R| small)."""

    required: tuple[int, ...]
    positions: Tensor
    strength: float = 1.0

    def __post_init__(self) -> None:
        if not self.required:
            raise ValueError("PresenceGuidance needs at least one required token")
        if len(self.required) > 10:
            raise ValueError(f"at most 10 required tokens (2^|R| subsets), got {len(self.required)}")
        if not self.strength > 0:
            raise ValueError(f"guidance strength must be positive, got {self.strength}")

    def log_ratios(self, x: Tensor, t: Tensor, probs: Tensor, candidates: Tensor) -> Tensor:
        B, K = x.shape[0], probs.shape[-1]
        pos = self.positions.to(x.device).reshape(-1)  # [D]
        q = probs.reshape(B, pos.shape[0], K)[:, pos].double()  # [B, P, K] posteriors at the positions
        req = torch.tensor(self.required, device=x.device)
        base = torch.zeros(B, dtype=torch.float64, device=x.device)  # P(y | x)
        nb = torch.zeros(B, q.shape[1], K, dtype=torch.float64, device=x.device)  # P(y | x^{i <- a})
        for size in range(len(self.required) + 1):
            for subset in itertools.combinations(range(len(self.required)), size):
                sign = (-1.0) ** size
                in_s = torch.zeros(K, dtype=torch.float64, device=x.device)
                in_s[req[list(subset)]] = 1.0
                factor = (1 - (q * in_s).sum(-1)).clamp_min(0)  # [B, P]: P(x1^i not in S)
                base += sign * factor.prod(-1)
                nb += sign * _exclusive_prod(factor).unsqueeze(-1) * (1 - in_s)  # [B, P, K]
        lr = nb.clamp_min(0).log() - base.clamp_min(0).log()[:, None, None]  # [B, P, K]
        lr = torch.nan_to_num(lr, nan=0.0, posinf=MAX_LOG_RATIO, neginf=-MAX_LOG_RATIO)
        full = torch.zeros(B, pos.shape[0], K, dtype=probs.dtype, device=x.device)
        full[:, pos] = lr.to(probs.dtype)
        full = full.reshape(probs.shape)
        return self.strength * torch.where(candidates, full, torch.zeros_like(full))


def _exclusive_prod(f: Tensor) -> Tensor:
    """prod_{j != i} f_j for every i along the last dimension, without division: ``[B, P]`` -> ``[B, P]``."""
    ones = torch.ones_like(f[..., :1])
    left = torch.cumprod(torch.cat([ones, f[..., :-1]], -1), -1)
    right = torch.flip(torch.cumprod(torch.cat([ones, torch.flip(f[..., 1:], [-1])], -1), -1), [-1])
    return left * right


@dataclass(frozen=True)
class CombinedGuidance:
    """The product of several likelihoods: the sum of their log ratios."""

    parts: tuple[Guidance, ...]

    def log_ratios(self, x: Tensor, t: Tensor, probs: Tensor, candidates: Tensor) -> Tensor:
        return sum((g.log_ratios(x, t, probs, candidates) for g in self.parts), torch.zeros_like(probs))


def combine(*guidances: Guidance | None) -> Guidance | None:
    """One guidance from several (None entries dropped; None if none is left)."""
    parts: Sequence[Guidance] = [g for g in guidances if g is not None]
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else CombinedGuidance(tuple(parts))
