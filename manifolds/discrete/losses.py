"""Training and evaluation objectives for factorised discrete flow matching (KO eq. 11, 36, 37).

``logits`` ``[B, *event, K]`` parameterise the posterior p^theta_{1|t}(. | x_t); ``x1`` and ``xt`` are
``[B, *event]`` tokens. Every loss returns one value per batch element ``[B]`` (summed over positions).
"""

from __future__ import annotations

import torch
from torch import Tensor

from manifolds.base import TimeLike, as_time, expand_time
from manifolds.discrete.generator import DiscreteGenerator
from manifolds.discrete.paths import MixturePath
from manifolds.discrete.sampler import PosteriorFn


def _masked_sum(v: Tensor, mask: Tensor | None) -> Tensor:
    if mask is not None:
        v = v * mask.to(v.dtype)
    return v.flatten(1).sum(1)


def cross_entropy(logits: Tensor, x1: Tensor, mask: Tensor | None = None) -> Tensor:
    """KO eq. 11: -sum_i log p^theta_{1|t}(x1^i | x_t), ``[B]``; ``mask`` selects the positions that count."""
    logp = torch.log_softmax(logits, -1).gather(-1, x1.unsqueeze(-1)).squeeze(-1)
    return _masked_sum(-logp, mask)


def mixture_elbo_integrand(logits: Tensor, x1: Tensor, xt: Tensor, path: MixturePath, t: TimeLike,
                           token_rate: Tensor | None = None, mask: Tensor | None = None) -> Tensor:
    """The integrand of the mixture-path ELBO, KO eq. 37, ``[B]``:

        sum_i lambda(x_t^i) p(x_t^i) - sum_y lambda(y) p(y) + (1 - delta_{x1^i}(x_t^i)) lambda(x1^i)(1 + log p(x1^i))

    with p = p^theta_{1|t}(. | x_t) and lambda(a) = kappa'_t(a) / (1 - kappa_t(a)). ``token_rate``
    ``[B, 1.., 1 or K]`` overrides lambda (the change of variables of KO appendix E.1 passes 1 / (1 - kappa)).
    """
    if token_rate is None:
        token_rate = path.token_rates(expand_time(as_time(t, x1.shape[0], logits), x1))
    lam = torch.broadcast_to(token_rate, logits.shape)  # [B, *event, K]
    logp = torch.log_softmax(logits, -1)
    p = logp.exp()
    at = lambda v, idx: v.gather(-1, idx.unsqueeze(-1)).squeeze(-1)  # noqa: E731
    moved = at(lam, x1) * (1 + at(logp, x1))
    moved = torch.where(xt != x1, moved, torch.zeros_like(moved))  # (no 0 * inf where x_t^i = x1^i)
    val = at(lam, xt) * at(p, xt) - (lam * p).sum(-1) + moved
    return _masked_sum(val, mask)


def general_elbo_integrand(generator: DiscreteGenerator, logits: Tensor, x1: Tensor, xt: Tensor,
                           t: TimeLike, mask: Tensor | None = None) -> Tensor:
    """The integrand of the ELBO for any path and velocity, KO eq. 36, ``[B]`` (O(K^2) per position):

        sum_i u^i(x_t^i, x_t) - u(x_t^i, x_t^i | x1^i)
              + sum_{y != x_t^i} u(y, x_t^i | x1^i) log(u^i(y, x_t) / u(y, x_t^i | x1^i))

    with the model's marginal velocity u^i (KO eq. 9) and the conditional one of ``generator``.
    """
    marg = generator.marginal_rates(xt, t, torch.softmax(logits, -1))  # [B, *event, K]
    cond = generator.rates(xt, x1, t)
    at = lambda v: v.gather(-1, xt.unsqueeze(-1)).squeeze(-1)  # noqa: E731
    off = torch.ones_like(cond).scatter(-1, xt.unsqueeze(-1), 0.0)
    pos = (cond > 0) & (off > 0)
    ratio = torch.where(pos, marg.clamp_min(0) / torch.where(pos, cond, torch.ones_like(cond)), torch.ones_like(cond))
    kl = torch.where(pos, cond * ratio.log(), torch.zeros_like(cond)).sum(-1)
    return _masked_sum(at(marg) - at(cond) + kl, mask)


def _stratified(n: int, batch: int, hi: float, rng: torch.Generator | None) -> Tensor:
    """n stratified points on [0, hi] per batch element, (j + u_b) hi / n (KO eq. 109): ``[n, B]`` float64."""
    u = torch.rand(batch, generator=rng, dtype=torch.float64)
    return (torch.arange(n, dtype=torch.float64)[:, None] + u) * hi / n


@torch.no_grad()
def mixture_elbo(posterior: PosteriorFn, x1: Tensor, path: MixturePath, n_points: int = 64, *,
                 change_of_variables: bool | None = None, eps: float = 1e-4,
                 rng: torch.Generator | None = None) -> Tensor:
    """Monte-Carlo estimate of the ELBO lower bound on log p^theta_1(x1) (KO eq. 37), ``[B]``.

    Stratified times on [0, 1 - eps]; with ``change_of_variables`` (default: whenever the scheduler is
    token-independent) the integral runs over kappa in [0, 1 - eps] instead (KO appendix E.1), which
    replaces lambda = kappa' / (1 - kappa) by 1 / (1 - kappa) and spreads the points evenly in noise level.
    """
    sched = path.scheduler
    if change_of_variables is None:
        change_of_variables = sched.token_independent
    if change_of_variables and not sched.token_independent:
        raise ValueError("KO appendix E.1's change of variables needs a token-independent scheduler")
    B = x1.shape[0]
    total = torch.zeros(B, dtype=torch.get_default_dtype(), device=x1.device)
    dtype = torch.get_default_dtype()
    for s in _stratified(n_points, B, 1.0 - eps, rng).to(x1.device):  # s: [B]
        if change_of_variables:
            t = sched.inverse(s).to(dtype)
            rate = (1.0 / (1.0 - s)).to(dtype).reshape((B,) + (1,) * x1.ndim)  # [B, 1.., 1]
        else:
            t, rate = s.to(dtype), None
        xt = path.sample(x1, t, rng)
        total += mixture_elbo_integrand(posterior(xt, t), x1, xt, path, t, token_rate=rate)
    return total * (1.0 - eps) / n_points


@torch.no_grad()
def general_elbo(generator: DiscreteGenerator, posterior: PosteriorFn, x1: Tensor, n_points: int = 64, *,
                 eps: float = 1e-4, rng: torch.Generator | None = None) -> Tensor:
    """Monte-Carlo estimate of the general ELBO (KO eq. 36) for any path and velocity, ``[B]`` (small K)."""
    B = x1.shape[0]
    total = torch.zeros(B, dtype=torch.get_default_dtype(), device=x1.device)
    for s in _stratified(n_points, B, 1.0 - eps, rng).to(x1.device):
        t = s.to(torch.get_default_dtype())
        xt = generator.path.sample(x1, t, rng)
        total += general_elbo_integrand(generator, posterior(xt, t), x1, xt, t)
    return total * (1.0 - eps) / n_points
