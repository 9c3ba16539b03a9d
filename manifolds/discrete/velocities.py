"""Kinetic-optimal probability velocities (rate matrices) on one position's vocabulary [K] (KO sections 4-5).

Convention: a rate matrix ``u[..., x, z]`` = u_t(x, z) is the rate from state z to state x; a *column*
``u[..., x]`` is u_t(., z) for one current state z. Rate conditions (KO eq. 5): u(x, z) >= 0 for x != z and
sum_x u(x, z) = 0. Everything here is a pure function of the path's PMF ``p`` ``[..., K]`` and its time
derivative ``dp`` ``[..., K]``, so it applies to any path (mixture, metric-induced, user-defined).

Flux family (KO eq. 22-23 with lambda_t(x) = p_t(x)^nu / sum_s p_t(s)^nu, appendix C.3):

    j*(x, z) = [dp(x) lambda(z) - dp(z) lambda(x)]_+        (nu = 1: KO eq. 26; nu = inf: eq. 80)
    j_corr(x, z) = |dp(x) lambda(z) - dp(z) lambda(x)|      (symmetric, divergence-free: KO eq. 35)
    u(x, z) = j(x, z) / p(z) if p(z) > 0 else 0             (KO eq. 16)
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def power_weights(p: Tensor, power: float = 1.0) -> Tensor:
    """lambda(x) = p(x)^nu / sum_s p(s)^nu ``[..., K]``; nu = inf gives delta_{argmax p} (KO eq. 79)."""
    if power == math.inf:
        return torch.nn.functional.one_hot(p.argmax(-1), p.shape[-1]).to(p.dtype)
    if power == 1.0:
        return p / p.sum(-1, keepdim=True)
    if power <= 0:
        raise ValueError(f"power must be positive (KO appendix C.3), got {power}")
    logp = p.clamp_min(0).log()
    w = torch.exp(power * (logp - logp.amax(-1, keepdim=True)))
    return w / w.sum(-1, keepdim=True)


def _antisym(p: Tensor, dp: Tensor, power: float) -> Tensor:
    """a(x, z) = dp(x) lambda(z) - dp(z) lambda(x), ``[..., K(x), K(z)]``."""
    lam = power_weights(p, power)
    return dp.unsqueeze(-1) * lam.unsqueeze(-2) - lam.unsqueeze(-1) * dp.unsqueeze(-2)


def kinetic_optimal_flux(p: Tensor, dp: Tensor, power: float = 1.0) -> Tensor:
    """j*_t(x, z) ``[..., K, K]``: KO eq. 26 (power 1), eq. 78 (power nu), eq. 80 (power inf). Zero diagonal."""
    j = _antisym(p, dp, power).clamp_min(0)
    return j * (1 - torch.eye(p.shape[-1], dtype=p.dtype, device=p.device))


def corrector_flux(p: Tensor, dp: Tensor, power: float = 1.0) -> Tensor:
    """The symmetric probability-preserving flux of KO eq. 35 (same f_t as the kinetic-optimal flux)."""
    j = _antisym(p, dp, power).abs()
    return j * (1 - torch.eye(p.shape[-1], dtype=p.dtype, device=p.device))


def velocity_from_flux(flux: Tensor, p: Tensor) -> Tensor:
    """KO eq. 16: u(x, z) = j(x, z) / p(z) where p(z) > 0, else 0; diagonal set by the rate conditions."""
    pz = p.unsqueeze(-2)  # [..., 1, K(z)]
    u = torch.where(pz > 0, flux / pz.clamp_min(torch.finfo(p.dtype).tiny), torch.zeros_like(flux))
    u = u * (1 - torch.eye(p.shape[-1], dtype=p.dtype, device=p.device))
    return u - torch.diag_embed(u.sum(-2))


def kinetic_optimal_velocity(p: Tensor, dp: Tensor, power: float = 1.0, corrector: float = 0.0) -> Tensor:
    """Full rate matrix u*_t + c u_corr ``[..., K, K]`` for any path (O(K^2); small K, tests, ELBO eq. 36)."""
    flux = kinetic_optimal_flux(p, dp, power)
    if corrector:
        flux = flux + corrector * corrector_flux(p, dp, power)
    return velocity_from_flux(flux, p)


def velocity_column(p: Tensor, dp: Tensor, z: Tensor, power: float = 1.0,
                    corrector: Tensor | float = 0.0, dlogp: Tensor | None = None) -> Tensor:
    """u_t(., z) ``[..., K]`` for the current states ``z`` ``[...]`` in O(K): the column of
    :func:`kinetic_optimal_velocity` (same flux family), with u(z, z) = -sum_{x != z} u(x, z).

    Written without dividing by p(z): u(x, z) = [dp(x) lambda(z) / p(z) - dlogp(z) lambda(x)]_+, which for
    power 1 is KO eq. 28, p(x) [d log p(x) - d log p(z)]_+. Pass the path's analytic ``dlogp`` = d/dt log p
    where p can underflow (metric paths far from x1); where ``dlogp`` is NaN (p(z) = 0 exactly) the column
    is zero (KO eq. 16). ``corrector`` is a scalar or a tensor broadcastable to ``z`` (weight of KO eq. 35).
    """
    if dlogp is None:
        dlogp = torch.where(p > 0, dp / p.clamp_min(torch.finfo(p.dtype).tiny), torch.full_like(p, math.nan))
    lam = power_weights(p, power)
    idx = z.unsqueeze(-1)
    g = dlogp.gather(-1, idx)  # [..., 1] d/dt log p(z)
    live = ~torch.isnan(g)
    g = torch.where(live, g, torch.zeros_like(g))
    if power == 1.0:
        ratio = torch.ones_like(g)  # lambda(z) / p(z)
    else:
        pz = p.gather(-1, idx)
        ratio = torch.where(pz > 0, lam.gather(-1, idx) / pz.clamp_min(torch.finfo(p.dtype).tiny),
                            torch.zeros_like(pz))
    a = dp * ratio - g * lam  # [..., K]: (dp(x) lambda(z) - dp(z) lambda(x)) / p(z)
    u = a.clamp_min(0)
    if not (isinstance(corrector, (int, float)) and corrector == 0):
        c = torch.as_tensor(corrector, dtype=p.dtype, device=p.device)
        u = u + c.reshape(c.shape + (1,) * (u.ndim - c.ndim)) * a.abs()
    u = torch.where(live, u, torch.zeros_like(u)).scatter(-1, idx, 0.0)
    return u.scatter(-1, idx, -u.sum(-1, keepdim=True))


def mixture_velocity_column(z: Tensor, x1: Tensor, rate: Tensor, vocab_size: int) -> Tensor:
    """KO eq. 75: u(x, z | x1) = kappa'_t(x1) / (1 - kappa_t(x1)) (delta_{x1}(x) - delta_z(x)), ``[..., K]``.

    ``rate`` = kappa'/(1 - kappa) at x1, broadcastable to ``z``.
    """
    rate = torch.broadcast_to(rate, z.shape).unsqueeze(-1)
    u = torch.zeros(z.shape + (vocab_size,), dtype=rate.dtype, device=z.device)
    u = u.scatter_add(-1, x1.unsqueeze(-1), rate)
    return u.scatter_add(-1, z.unsqueeze(-1), -rate)


def mixture_marginal_velocity(posterior: Tensor, z: Tensor, token_rate: Tensor) -> Tensor:
    """KO eq. 76: u^i(x, z) = lambda(x) p_{1|t}(x | z) - delta_{z^i}(x) sum_y lambda(y) p_{1|t}(y | z).

    ``posterior`` ``[..., K]`` = p^i_{1|t}(. | z), ``z`` ``[...]`` the current tokens, ``token_rate``
    ``[..., 1 or K]`` = lambda(a) = kappa'_t(a) / (1 - kappa_t(a)). Returns ``[..., K]``.
    """
    flow = token_rate * posterior  # [..., K]
    return flow.scatter_add(-1, z.unsqueeze(-1), -flow.sum(-1, keepdim=True))


def divergence(flux: Tensor) -> Tensor:
    """KO eq. 15: div_x(j) = sum_{z != x} j(z, x) - sum_{z != x} j(x, z), ``[..., K]``."""
    off = flux * (1 - torch.eye(flux.shape[-1], dtype=flux.dtype, device=flux.device))
    return off.sum(-2) - off.sum(-1)
