"""Exact-oracle harness: for a finite data set {z_1..z_M} with weights pi_m, the posterior
p(z_m | x_t) = pi_m p_t(x_t | z_m) / sum_k pi_k p_t(x_t | z_k) is exact, hence so is the marginal generator
(GM Prop. 1). Simulating it must reproduce p_t, and at t = 1 the data. Also: distances to compare samples with
targets (1-D Wasserstein, energy distance, nearest-data-point geodesic distance on SO(3)).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from manifolds.base import ConditionalGenerator, ProbabilityPath, TimeLike, as_time
from manifolds import so3
from manifolds.samplers import MoveFn, StepFn, VelocityFn

__all__ = ["ExactOracle", "ks_statistic", "cdf_from_density", "KS_CRIT_1PCT", "wasserstein1_1d", "wasserstein1_to_cdf", "energy_distance", "nearest_angle",
           "gaussian_mixture_cdf", "tent_mixture_sigma2", "tent_mixture_cdf"]


def _batch(x: Any) -> int:
    return (x[0] if isinstance(x, tuple) else x).shape[0]


def _expand(x: Tensor, m: int) -> Tensor:
    b = x.shape[0]
    return x.unsqueeze(1).expand((b, m) + tuple(x.shape[1:])).reshape((b * m,) + tuple(x.shape[1:]))


def _tile(s: Tensor, b: int) -> Tensor:
    m = s.shape[0]
    return s.unsqueeze(0).expand((b, m) + tuple(s.shape[1:])).reshape((b * m,) + tuple(s.shape[1:]))


@dataclass
class ExactOracle:
    """Exact posterior and marginal generators for the data set ``support`` (a tensor [M, *event] or a tuple of them
    for product spaces) with prior weights ``prior`` [M] (uniform when omitted)."""

    path: ProbabilityPath
    support: Any
    prior: Tensor | None = None

    @property
    def num_points(self) -> int:
        return _batch(self.support)

    def _log_prior(self, like: Tensor) -> Tensor:
        m = self.num_points
        if self.prior is None:
            return torch.full((m,), -math.log(m), dtype=like.dtype, device=like.device)
        return torch.log(self.prior.to(like.dtype) / self.prior.sum())

    def posterior(self, x: Any, t: TimeLike) -> Tensor:
        """p(z_m | x_t) [B, M]. Rows where no data point has positive density (numerically) fall back to the prior."""
        b, m = _batch(x), self.num_points
        ref = x[0] if isinstance(x, tuple) else x
        tt = as_time(t, b, ref).repeat_interleave(m)
        if isinstance(x, tuple):
            xe = tuple(_expand(xi, m) for xi in x)
            ze = tuple(_tile(si, b) for si in self.support)
        else:
            xe, ze = _expand(x, m), _tile(self.support, b)
        logp = self.path.log_prob(xe, ze, tt).reshape(b, m) + self._log_prior(ref)
        dead = ~torch.isfinite(logp.max(1).values)
        if bool(dead.any()):
            # x lies outside the support of every p_t(. | z_m) (a discretisation error next to a hard support edge,
            # e.g. the geodesic SO(3) path from Haar noise): attach it to the nearest data point.
            near = self._nearest(xe, ze, b, m)
            logp = torch.where(dead[:, None], torch.where(near, 0.0, -math.inf), logp)
        return torch.softmax(logp, dim=1)

    def _nearest(self, xe: Any, ze: Any, b: int, m: int) -> Tensor:
        spaces = [p.space for p in self.path.paths] if isinstance(xe, tuple) else [self.path.space]
        xs, zs = (xe, ze) if isinstance(xe, tuple) else ((xe,), (ze,))
        dist = sum(sp.distance(xi, zi).reshape(b * m, -1).pow(2).sum(1) for sp, xi, zi in zip(spaces, xs, zs))
        idx = dist.reshape(b, m).argmin(1)
        return torch.nn.functional.one_hot(idx, m).bool()

    def step_fn(self, generator: ConditionalGenerator) -> StepFn:
        """Euler step of the exact marginal generator."""
        def step(x: Any, t: float, h: float, rng: torch.Generator | None = None) -> Any:
            return generator.marginal_step(x, t, h, self.support, self.posterior(x, t), rng)
        return step

    def velocity_fn(self, flow: Any) -> VelocityFn:
        """Exact marginal velocity of a :class:`~manifolds.generators.FlowGenerator`."""
        return lambda x, t: flow.marginal_velocity(x, t, self.support, self.posterior(x, t))

    @staticmethod
    def move_fn(flow: Any) -> MoveFn:
        return flow.move

    def sample_data(self, n: int, rng: torch.Generator | None = None) -> tuple[Any, Tensor]:
        """n draws z ~ data (and their indices)."""
        p = torch.ones(self.num_points, dtype=torch.float64) if self.prior is None else self.prior.double()
        idx = torch.multinomial(p / p.sum(), n, replacement=True, generator=rng)
        if isinstance(self.support, tuple):
            return tuple(s[idx] for s in self.support), idx
        return self.support[idx], idx

    def sample_marginal(self, n: int, t: TimeLike, rng: torch.Generator | None = None) -> Any:
        """x ~ p_t = E_z p_t(. | z)."""
        z, _ = self.sample_data(n, rng)
        return self.path.sample(z, t, rng)


# --------------------------------------------------------------------------------------------------- distances


KS_CRIT_1PCT = 1.63  # sqrt(n) * D_n at the 1 % level (Kolmogorov distribution)


def ks_statistic(sample: Tensor, cdf: Any) -> float:
    """One-sample Kolmogorov-Smirnov statistic sup |F_n - F| of a 1-D sample against a CDF (a callable on tensors)."""
    x = torch.sort(sample.reshape(-1).double()).values
    n = x.numel()
    f = cdf(x)
    i = torch.arange(1, n + 1, dtype=torch.float64, device=x.device)
    return float(torch.maximum((i / n - f).abs(), (f - (i - 1) / n).abs()).max())


def cdf_from_density(grid: Tensor, density: Tensor) -> Any:
    """CDF (normalised cumulative trapezoid, linear interpolation) of a 1-D density tabulated on an increasing grid."""
    grid, density = grid.double(), density.double().clamp_min(0.0)
    cum = torch.cat([torch.zeros(1, dtype=torch.float64), torch.cumulative_trapezoid(density, grid)])
    cum = cum / cum[-1]
    last = grid.numel() - 1

    def cdf(x: Tensor) -> Tensor:
        xc = x.double().clamp(float(grid[0]), float(grid[-1]))
        idx = torch.searchsorted(grid, xc).clamp(1, last)
        w = (xc - grid[idx - 1]) / (grid[idx] - grid[idx - 1])
        return cum[idx - 1] + w * (cum[idx] - cum[idx - 1])
    return cdf


def wasserstein1_1d(a: Tensor, b: Tensor) -> float:
    """W1 between two 1-D samples (any sizes): int |F_a - F_b|."""
    a, b = a.reshape(-1).double(), b.reshape(-1).double()
    allv, _ = torch.sort(torch.cat([a, b]))
    fa = torch.searchsorted(torch.sort(a).values, allv[:-1], right=True).double() / a.numel()
    fb = torch.searchsorted(torch.sort(b).values, allv[:-1], right=True).double() / b.numel()
    return float(((fa - fb).abs() * (allv[1:] - allv[:-1])).sum())


def wasserstein1_to_cdf(a: Tensor, cdf: Any, lo: float, hi: float, num: int = 20001) -> float:
    """W1 between a 1-D sample and an exact law given by its CDF (trapezoid on a grid over [lo, hi])."""
    grid = torch.linspace(lo, hi, num, dtype=torch.float64)
    a = torch.sort(a.reshape(-1).double()).values
    fa = torch.searchsorted(a, grid, right=True).double() / a.numel()
    return float(torch.trapezoid((fa - cdf(grid)).abs(), grid))


def gaussian_mixture_cdf(means: Tensor, std: float, weights: Tensor | None = None) -> Any:
    """CDF of sum_m w_m N(means_m, std^2) (1-D)."""
    m = means.reshape(-1).double()
    w = torch.full_like(m, 1.0 / m.numel()) if weights is None else weights.double() / weights.sum()

    def cdf(x: Tensor) -> Tensor:
        if std == 0:
            return ((x[:, None] >= m[None]).double() * w).sum(1)
        return (0.5 * torch.erfc(-(x[:, None] - m[None]) / (std * math.sqrt(2))) * w).sum(1)
    return cdf


def energy_distance(a: Tensor, b: Tensor) -> float:
    """Energy distance 2 E|X - Y| - E|X - X'| - E|Y - Y'| between samples [n, d] and [m, d] (>= 0, 0 iff equal laws)."""
    a, b = a.reshape(a.shape[0], -1).double(), b.reshape(b.shape[0], -1).double()
    return float(2 * torch.cdist(a, b).mean() - torch.cdist(a, a).mean() - torch.cdist(b, b).mean())


def nearest_angle(x: Tensor, support: Tensor) -> tuple[Tensor, Tensor]:
    """For rotations x [B, 3, 3] and data [M, 3, 3]: the geodesic angle to the nearest data point and its index."""
    ang = so3.rotation_angle_between(support[None], x[:, None])  # [B, M]
    d, idx = ang.min(1)
    return d, idx


# ------------------------------------------------------------------------------------- pure diffusion oracle


def tent_mixture_sigma2(x: Tensor, t: float, gen: Any, centres: Tensor, half_widths: Tensor, probs: Tensor) -> Tensor:
    """Exact marginal sigma^2_t(x) of the pure diffusion (GM eq. 14) on the uniform mixture path for data with the
    continuous density q = sum_k probs_k Tent(centre_k, half_width_k) (triangular densities inside [a1, a2]).

    The posterior at x is z = x with probability w = k q(x) / (k q(x) + (1 - k)/L), else z ~ q, and sigma^2_t(x | x) = 0,
    so sigma^2_t(x) = (1 - w) E_q[sigma^2_t(x | z)], with E_q[[x - z]_+] = int_{-inf}^x F_q and E_q[(z - a1)^2] in
    closed form. (A continuous q keeps sigma^2 continuous, so Euler-Maruyama converges at order 1; a finite data set
    would put atoms that a diffusion cannot hit.) Returns [*x.shape].
    """
    path = gen.path
    a1, width = path.low, path.high - path.low
    c, hw = centres.double(), half_widths.double()
    pk = probs.double() / probs.sum()
    u = (x.double()[..., None] - (c - hw)).clamp_min(0.0)  # [..., K], distance from the left end
    rising = u.clamp_max(hw)
    falling = (2 * hw - u.clamp_max(2 * hw))
    # int_{-inf}^x F(s) ds for one tent
    int_f = torch.where(u <= hw, rising ** 3 / (6 * hw ** 2),
                        hw / 6 + (u - hw) + (falling ** 3 - hw ** 3) / (6 * hw ** 2))
    int_f = torch.where(u >= 2 * hw, u - hw, int_f)
    e_plus = (pk * int_f).sum(-1)
    m2 = (pk * ((c - a1) ** 2 + hw ** 2 / 6)).sum()
    g = 0.5 * m2 / width + e_plus - 0.5 * (x.double() - a1) ** 2 / width
    q = (pk * (hw - (x.double()[..., None] - c).abs()).clamp_min(0.0) / hw ** 2).sum(-1)
    tt = torch.tensor(t, dtype=torch.float64)
    k, _ = path.kappa(tt)
    w = k * q / (k * q + (1 - k) / width)
    return ((1 - w) * gen.rate(tt) * g.clamp_min(0.0)).to(x.dtype)


def tent_mixture_cdf(centres: Tensor, half_widths: Tensor, probs: Tensor) -> Any:
    """CDF of sum_k probs_k Tent(centre_k, half_width_k)."""
    c, hw = centres.double(), half_widths.double()
    pk = probs.double() / probs.sum()

    def cdf(x: Tensor) -> Tensor:
        u = (x.double()[..., None] - (c - hw)).clamp(min=torch.zeros_like(hw), max=2 * hw)
        f = torch.where(u <= hw, u ** 2 / (2 * hw ** 2), 1 - (2 * hw - u) ** 2 / (2 * hw ** 2))
        return (pk * f).sum(-1)
    return cdf
