"""Exact inverse-CDF sampling of u ~ phi(u) * (c0 + c1 u + c2 u^2) on [lo, hi] (phi = standard normal pdf).

Used by every jump target of an affine Gaussian path: d/dt p_t is phi(u) times a quadratic in the
standardised coordinate u (see :mod:`manifolds.paths.gaussian`). The CDF is closed form
(int phi = Phi, int u phi = -phi, int u^2 phi = Phi - u phi) and is inverted by bisection to
float64 resolution, fully batched (a fixed number of vectorised iterations, no rejection loop).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

_SQRT2 = math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


def _pdf(u: Tensor) -> Tensor:
    return torch.exp(-0.5 * u * u) * _INV_SQRT_2PI


def _cdf(u: Tensor) -> Tensor:
    return 0.5 * torch.erfc(-u / _SQRT2)


def quadratic_normal_mass(c0: Tensor, c1: Tensor, c2: Tensor, lo: Tensor, u: Tensor) -> Tensor:
    """int_lo^u phi(s) (c0 + c1 s + c2 s^2) ds (elementwise)."""
    pl, pu = _pdf(lo), _pdf(u)
    cl, cu = _cdf(lo), _cdf(u)
    return c0 * (cu - cl) + c1 * (pl - pu) + c2 * ((cu - u * pu) - (cl - lo * pl))


def sample_quadratic_normal(c0: Tensor, c1: Tensor, c2: Tensor, lo: Tensor, hi: Tensor,
                            rng: torch.Generator | None = None, iters: int = 60) -> Tensor:
    """Draw u with density proportional to phi(u) (c0 + c1 u + c2 u^2) on [lo, hi] (the quadratic must be >= 0 there).

    All arguments broadcast to one shape; float64 recommended. Bisection on the closed-form CDF:
    after 60 halvings the bracket is below float64 resolution of the interval.
    """
    c0, c1, c2, lo, hi = torch.broadcast_tensors(c0, c1, c2, lo, hi)
    total = quadratic_normal_mass(c0, c1, c2, lo, hi)
    target = torch.rand(c0.shape, generator=rng, dtype=c0.dtype, device=c0.device) * total
    a, b = lo.clone(), hi.clone()
    for _ in range(iters):
        mid = 0.5 * (a + b)
        below = quadratic_normal_mass(c0, c1, c2, lo, mid) < target
        a = torch.where(below, mid, a)
        b = torch.where(below, b, mid)
    return 0.5 * (a + b)
