"""Factorised conditional probability paths on sequences of tokens (KO eq. 1, 2, 27).

States are long tensors ``x`` ``[B, *event]`` (usually ``[B, D]``) with values in [K]; the path
factorises over positions: p_t(x | x1) = prod_i p_t(x^i | x1^i). Every path exposes the per-position
PMF p_t(. | x1^i) and its time derivative, which is all the kinetic-optimal velocity (KO eq. 26) needs.
"""

from __future__ import annotations

from abc import abstractmethod

import torch
from torch import Tensor

from manifolds.base import ProbabilityPath, TimeLike, as_time, expand_time
from manifolds.discrete.schedulers import BetaScheduler, MixtureScheduler


def categorical(probs: Tensor, rng: torch.Generator | None = None) -> Tensor:
    """Draw one index per row of ``probs`` ``[..., K]`` (unnormalised, non-negative) by inverse CDF.

    One uniform per row and a binary search: several times faster on CPU than torch.multinomial.
    """
    cdf = probs.cumsum(-1)  # [..., K]
    u = torch.rand(probs.shape[:-1] + (1,), dtype=cdf.dtype, device=cdf.device, generator=rng)
    idx = torch.searchsorted(cdf, u * cdf[..., -1:], right=True)
    return idx.squeeze(-1).clamp_max(probs.shape[-1] - 1)


def categorical_logits(logits: Tensor, rng: torch.Generator | None = None) -> Tensor:
    """Draw from softmax(``logits``) ``[..., K]`` without normalising (exp of shifted logits, inverse CDF;
    half-precision logits are promoted to float32 so that the CDF stays exact enough)."""
    if logits.dtype in (torch.float16, torch.bfloat16):
        logits = logits.float()
    w = (logits - logits.amax(-1, keepdim=True)).exp_()
    return categorical(w, rng)


class DiscretePath(ProbabilityPath):
    """A factorised conditional path on [K]^event (KO eq. 1): per-position PMFs and their time derivative."""

    vocab_size: int

    @abstractmethod
    def probs(self, z: Tensor, t: TimeLike) -> Tensor:
        """p_t(. | z^i) for every position: ``z`` ``[B, *event]`` -> ``[B, *event, K]``."""

    @abstractmethod
    def dt_probs(self, z: Tensor, t: TimeLike) -> Tensor:
        """d/dt p_t(. | z^i): ``[B, *event, K]`` (rows sum to 0)."""

    def _t(self, z: Tensor, t: TimeLike) -> Tensor:
        """``[B, 1, ..., 1]`` float time broadcasting against ``z`` ``[B, *event]``."""
        return expand_time(as_time(t, z.shape[0], torch.empty((), dtype=torch.get_default_dtype())), z)

    def dt_log_probs(self, z: Tensor, t: TimeLike) -> Tensor:
        """d/dt log p_t(. | z^i) ``[B, *event, K]``; NaN where p_t = 0 exactly (override with a closed form
        where p can underflow)."""
        p, dp = self.probs(z, t), self.dt_probs(z, t)
        return torch.where(p > 0, dp / p.clamp_min(torch.finfo(p.dtype).tiny), torch.full_like(p, float("nan")))

    def derivatives(self, z: Tensor, t: TimeLike) -> tuple[Tensor, Tensor, Tensor]:
        """(p_t, d/dt p_t, d/dt log p_t) per position, each ``[B, *event, K]``, in one pass."""
        return self.probs(z, t), self.dt_probs(z, t), self.dt_log_probs(z, t)

    def sample(self, z: Tensor, t: TimeLike, rng: torch.Generator | None = None) -> Tensor:
        return categorical(self.probs(z, t), rng)

    def dead_state_rate(self, z: Tensor, t: TimeLike) -> Tensor | None:
        """Rate of the direct jump x -> z from states with p_t(x | z) = 0 (where KO eq. 16 has no flux), or None
        for paths without such states in their support's reach. Mixture paths: KO eq. 75's rate."""
        return None

    def log_prob(self, x: Tensor, z: Tensor, t: TimeLike) -> Tensor:
        """log p_t(x | z) = sum_i log p_t(x^i | z^i), ``[B]``."""
        p = self.probs(z, t).gather(-1, x.unsqueeze(-1)).squeeze(-1)
        return p.log().flatten(1).sum(1)

    def dt_log_prob(self, x: Tensor, z: Tensor, t: TimeLike) -> Tensor:
        """d/dt log p_t(x | z) = sum_i dp_t(x^i | z^i) / p_t(x^i | z^i), ``[B]``."""
        p = self.probs(z, t).gather(-1, x.unsqueeze(-1)).squeeze(-1)
        dp = self.dt_probs(z, t).gather(-1, x.unsqueeze(-1)).squeeze(-1)
        return (dp / p).flatten(1).sum(1)


class MixturePath(DiscretePath):
    """KO eq. 2: p_t(x | x1) = (1 - kappa_t(x1)) p(x) + kappa_t(x1) delta_{x1}(x), any source p.

    Sampling: keep the data token with probability kappa_t(x1), else draw from the source.
    """

    def __init__(self, source: Tensor, scheduler: MixtureScheduler) -> None:
        if source.ndim != 1 or (source < 0).any() or abs(float(source.sum()) - 1.0) > 1e-5:
            raise ValueError("source must be a probability vector [K] (non-negative, sums to 1)")
        self.source = source.to(torch.get_default_dtype())  # paths adopt the default dtype at construction
        self.vocab_size = source.shape[0]
        self.scheduler = scheduler
        point = (self.source == 1.0).nonzero()
        #: the token of a point-mass source (the mask token), else None.
        self.source_token: int | None = int(point[0, 0]) if point.numel() == 1 else None

    def kappa(self, z: Tensor, t: TimeLike) -> tuple[Tensor, Tensor]:
        """kappa_t(z^i) and d/dt kappa_t(z^i), each broadcastable to ``z`` (``[B, 1..]`` or ``[B, *event]``)."""
        s = self.scheduler(self._t(z, t).to(self.source.dtype))  # [B, 1.., 1 or K]
        if s.kappa.shape[-1] == 1:
            return s.kappa.squeeze(-1), s.dkappa.squeeze(-1)
        idx = z.unsqueeze(-1)
        return (s.kappa.expand(z.shape + (self.vocab_size,)).gather(-1, idx).squeeze(-1),
                s.dkappa.expand(z.shape + (self.vocab_size,)).gather(-1, idx).squeeze(-1))

    def jump_rate(self, z: Tensor, t: TimeLike) -> Tensor:
        """lambda_t(z^i) = kappa'_t(z^i) / (1 - kappa_t(z^i)): the rate of KO eq. 75, broadcastable to ``z``."""
        rate = self.scheduler(self._t(z, t).to(self.source.dtype)).rate  # [B, 1.., 1 or K]
        if rate.shape[-1] == 1:
            return rate.squeeze(-1)
        return rate.expand(z.shape + (self.vocab_size,)).gather(-1, z.unsqueeze(-1)).squeeze(-1)

    def dead_state_rate(self, z: Tensor, t: TimeLike) -> Tensor:
        return self.jump_rate(z, t)

    def token_rates(self, t: Tensor) -> Tensor:
        """lambda_t(a) for every token a: ``t`` ``[B, 1..]`` -> ``[B, 1.., 1 or K]`` (KO eq. 76-77)."""
        return self.scheduler(t.to(self.source.dtype)).rate

    def probs(self, z: Tensor, t: TimeLike) -> Tensor:
        k, _ = self.kappa(z, t)
        k = k.unsqueeze(-1)
        onehot = torch.nn.functional.one_hot(z, self.vocab_size).to(self.source.dtype)
        return (1 - k) * self.source.to(z.device) + k * onehot

    def dt_probs(self, z: Tensor, t: TimeLike) -> Tensor:
        _, dk = self.kappa(z, t)
        onehot = torch.nn.functional.one_hot(z, self.vocab_size).to(self.source.dtype)
        return dk.unsqueeze(-1) * (onehot - self.source.to(z.device))

    def derivatives(self, z: Tensor, t: TimeLike) -> tuple[Tensor, Tensor, Tensor]:
        k, dk = self.kappa(z, t)
        onehot = torch.nn.functional.one_hot(z, self.vocab_size).to(self.source.dtype)
        src = self.source.to(z.device)
        p = (1 - k.unsqueeze(-1)) * src + k.unsqueeze(-1) * onehot
        dp = dk.unsqueeze(-1) * (onehot - src)
        dlogp = torch.where(p > 0, dp / p.clamp_min(torch.finfo(p.dtype).tiny), torch.full_like(p, float("nan")))
        return p, dp, dlogp

    def sample_source(self, z: Tensor, rng: torch.Generator | None = None) -> Tensor:
        if self.source_token is not None:  # mask source: deterministic, consumes no random numbers
            return torch.full_like(z, self.source_token)
        idx = torch.multinomial(self.source.to(z.device), z.numel(), replacement=True, generator=rng)
        return idx.reshape(z.shape)

    def sample(self, z: Tensor, t: TimeLike, rng: torch.Generator | None = None) -> Tensor:
        x0 = self.sample_source(z, rng)
        k, _ = self.kappa(z, t)
        u = torch.rand(z.shape, device=z.device, generator=rng)
        return torch.where(u < 1 - k, x0, z)

    def sample_from(self, x0: Tensor, z: Tensor, t: TimeLike, rng: torch.Generator | None = None) -> Tensor:
        """GM eq. 2 given the source draw ``x0`` [B, *event]: x_t^i = z^i where u^i < kappa_t(z^i), else x_0^i, with
        one uniform u^i per position from ``rng`` (the law of :meth:`sample`, which keeps x_0 where u < 1 - kappa)."""
        k, _ = self.kappa(z, t)  # [B, 1..] or [B, *event]
        u = torch.rand(z.shape, device=z.device, generator=rng)
        return torch.where(u < k.to(z.device), z, x0)


class MetricPath(DiscretePath):
    """KO eq. 27: p_t(x | x1) = softmax_x(-beta_t d(x, x1)) for a user metric ``distance[a, b] = d(a, b)``.

    d(x, x1) >= 0 with d(x, x1) = 0 iff x = x1; beta_0 = 0 (uniform source) and beta_t -> inf at t = 1
    (delta_{x1}). Its kinetic-optimal velocity is KO eq. 29.
    """

    def __init__(self, distance: Tensor, beta: BetaScheduler) -> None:
        if distance.ndim != 2 or distance.shape[0] != distance.shape[1]:
            raise ValueError(f"distance must be a square matrix [K, K], got {tuple(distance.shape)}")
        if (distance < 0).any() or (distance.diagonal() != 0).any():
            raise ValueError("distance must be non-negative with a zero diagonal (d(x, x) = 0)")
        off = distance + torch.eye(distance.shape[0], dtype=distance.dtype)
        if (off <= 0).any():
            raise ValueError("distance must be positive off the diagonal (d(x, x1) = 0 only when x = x1)")
        self.vocab_size = distance.shape[0]
        self.d_to = distance.t().contiguous().to(torch.get_default_dtype())  # d_to[x1, x] = d(x, x1)
        self.beta = beta

    def _parts(self, z: Tensor, t: TimeLike) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        tt = self._t(z, t).to(self.d_to.dtype)
        done = tt >= 1.0
        beta, dbeta = self.beta(torch.where(done, torch.zeros_like(tt), tt))
        d = self.d_to.to(z.device)[z]  # [B, *event, K]
        p = torch.softmax(-beta.unsqueeze(-1) * d, dim=-1)
        p = torch.where(done.unsqueeze(-1), (d == 0).to(p.dtype), p)
        return p, d, dbeta.unsqueeze(-1), done.unsqueeze(-1)

    def probs(self, z: Tensor, t: TimeLike) -> Tensor:
        return self._parts(z, t)[0]

    def dt_probs(self, z: Tensor, t: TimeLike) -> Tensor:
        """d/dt p = p * (-beta'_t)(d(x, x1) - E_p[d])."""
        p, d, dbeta, done = self._parts(z, t)
        dp = -dbeta * p * (d - (p * d).sum(-1, keepdim=True))
        return torch.where(done, torch.zeros_like(dp), dp)

    def dt_log_probs(self, z: Tensor, t: TimeLike) -> Tensor:
        """d/dt log p = -beta'_t (d(x, x1) - E_p[d]), finite even where p underflows."""
        p, d, dbeta, done = self._parts(z, t)
        dlogp = -dbeta * (d - (p * d).sum(-1, keepdim=True))
        return torch.where(done, torch.zeros_like(dlogp), dlogp)

    def derivatives(self, z: Tensor, t: TimeLike) -> tuple[Tensor, Tensor, Tensor]:
        p, d, dbeta, done = self._parts(z, t)
        dlogp = -dbeta * (d - (p * d).sum(-1, keepdim=True))
        dlogp = torch.where(done, torch.zeros_like(dlogp), dlogp)
        return p, p * dlogp, dlogp

    def sample_source(self, z: Tensor, rng: torch.Generator | None = None) -> Tensor:
        return torch.randint(0, self.vocab_size, z.shape, device=z.device, generator=rng)


def ring_distance(k: int) -> Tensor:
    """``[k, k]`` distance on the cyclic group Z_k, normalised to [0, 1]:
    d(a, b) = min(|a - b|, k - |a - b|) / (k // 2).

    A metric for :class:`MetricPath` on periodic ordinal tokens (e.g. fractional coordinates on a grid, where
    0.99 and 0.00 are neighbours).
    """
    if k < 2:
        raise ValueError(f"a ring needs at least 2 tokens, got {k}")
    i = torch.arange(k)
    diff = (i[:, None] - i[None, :]).abs()
    return torch.minimum(diff, k - diff).to(torch.get_default_dtype()) / (k // 2)


class BlockPath(DiscretePath):
    """A path on [K] whose law depends on the kind of x1 (GM Prop. 4 applied per token kind):

        p_t(x | x1) = inner_t(x - offset | x1 - offset)   if x1 is in the block [offset, offset + K_in),
                      outer_t(x | x1)                        otherwise.

    Each branch is a conditional path with p_1 = delta_{x1}, so the whole is one; a position whose data
    tokens all lie in the block (or all outside it) follows one branch, and the kinetic-optimal velocity
    (KO eq. 26) of the whole is that of the branch (eq. 75 on a mixture, eq. 29 on a metric path). The
    source depends on the kind: e.g. MASK for lattice and element tokens (outer mixture path) and the
    uniform distribution over the block for fractional coordinates (inner metric path, beta_0 = 0).
    """

    def __init__(self, outer: DiscretePath, inner: DiscretePath, offset: int) -> None:
        if not 0 <= offset <= outer.vocab_size - inner.vocab_size:
            raise ValueError(f"block [{offset}, {offset + inner.vocab_size}) is not inside [0, {outer.vocab_size})")
        self.outer, self.inner, self.offset = outer, inner, int(offset)
        self.vocab_size = outer.vocab_size

    def in_block(self, z: Tensor) -> Tensor:
        """``[B, *event]`` bool: data tokens that follow the inner path."""
        return (z >= self.offset) & (z < self.offset + self.inner.vocab_size)

    def local(self, z: Tensor) -> Tensor:
        """Block-local ids (clamped into the block: meaningful where :meth:`in_block`)."""
        return (z - self.offset).clamp(0, self.inner.vocab_size - 1)

    def _embed(self, z: Tensor, inner: Tensor, outer: Tensor) -> Tensor:
        """Inner ``[..., K_in]`` values placed in the block of ``[..., K]``, outer values where z is outside."""
        full = torch.zeros_like(outer)
        full[..., self.offset:self.offset + self.inner.vocab_size] = inner.to(outer.dtype)
        return torch.where(self.in_block(z).unsqueeze(-1), full, outer)

    def probs(self, z: Tensor, t: TimeLike) -> Tensor:
        return self._embed(z, self.inner.probs(self.local(z), t), self.outer.probs(z, t))

    def dt_probs(self, z: Tensor, t: TimeLike) -> Tensor:
        return self._embed(z, self.inner.dt_probs(self.local(z), t), self.outer.dt_probs(z, t))

    def derivatives(self, z: Tensor, t: TimeLike) -> tuple[Tensor, Tensor, Tensor]:
        p_in, dp_in, dlogp_in = self.inner.derivatives(self.local(z), t)
        p_out, dp_out, dlogp_out = self.outer.derivatives(z, t)
        nan = torch.full_like(dlogp_out, float("nan"))  # outside the block p = 0: no d log p
        full = nan.clone()
        full[..., self.offset:self.offset + self.inner.vocab_size] = dlogp_in.to(nan.dtype)
        dlogp = torch.where(self.in_block(z).unsqueeze(-1), full, dlogp_out)
        return self._embed(z, p_in, p_out), self._embed(z, dp_in, dp_out), dlogp

    def dead_state_rate(self, z: Tensor, t: TimeLike) -> Tensor | None:
        rate = self.outer.dead_state_rate(z, t)
        if rate is None:
            return None
        inner = self.inner.dead_state_rate(self.local(z), t)
        inner = torch.zeros_like(rate) if inner is None else inner
        return torch.where(self.in_block(z), torch.broadcast_to(inner, z.shape), torch.broadcast_to(rate, z.shape))

    def sample(self, z: Tensor, t: TimeLike, rng: torch.Generator | None = None) -> Tensor:
        inner = self.inner.sample(self.local(z), t, rng) + self.offset
        return torch.where(self.in_block(z), inner, self.outer.sample(z, t, rng))

    def sample_source(self, z: Tensor, rng: torch.Generator | None = None) -> Tensor:
        inner = self.inner.sample_source(self.local(z), rng) + self.offset
        return torch.where(self.in_block(z), inner, self.outer.sample_source(z, rng))
