"""Geodesic path on SO(3) from a Haar-uniform source: x_t = x_0 Exp(kappa_t Log(x_0^T z)) (MultiFlow's rotations).

Rate schedules (:class:`LinearRate` kappa_t = t; :class:`ExpRate` kappa_t = 1 - exp(-c t), MultiFlow's "exp"
schedule, c = 10). Conditional velocity (body frame): u_t(x | z) = kappa'_t / (1 - kappa_t) Log(x^T z).

Exact density w.r.t. normalised Haar measure: the angle w of z^T x_t is (1 - kappa_t) theta_0 with theta_0 the
Haar-distributed angle of x_0^T z (density (1 - cos th) / pi), and the axis is uniform, so
p_t(x | z) = (1 - cos(w / (1 - kappa_t))) / ((1 - kappa_t) (1 - cos w)) for w < (1 - kappa_t) pi, else 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from manifolds import so3
from manifolds.base import ProbabilityPath, TimeLike, as_time
from manifolds.spaces import SO3

__all__ = ["LinearRate", "ExpRate", "GeodesicSO3Path"]


@dataclass(frozen=True)
class LinearRate:
    """kappa_t = t; kappa'_t / (1 - kappa_t) = 1 / (1 - t)."""

    def __call__(self, t: Tensor) -> tuple[Tensor, Tensor]:
        return t, 1.0 / (1.0 - t)


@dataclass(frozen=True)
class ExpRate:
    """kappa_t = 1 - exp(-c t); kappa'_t / (1 - kappa_t) = c (MultiFlow's exp schedule, c = 10)."""

    c: float = 10.0

    def __call__(self, t: Tensor) -> tuple[Tensor, Tensor]:
        return -torch.expm1(-self.c * t), torch.full_like(t, self.c)


def _log_one_minus_cos(w: Tensor) -> Tensor:
    """log(1 - cos w) = log(2 sin^2(w / 2)), accurate for small w."""
    return math.log(2.0) + 2.0 * torch.log(torch.sin(0.5 * w).abs().clamp_min(1e-300))


@dataclass(frozen=True)
class GeodesicSO3Path(ProbabilityPath):
    """Geodesic interpolation from Haar noise; ``x``, ``z`` are [B, *elems, 3, 3]."""

    rate: LinearRate | ExpRate = LinearRate()
    space = SO3()

    def _t(self, t: TimeLike, x: Tensor) -> Tensor:
        t = as_time(t, x.shape[0], x)
        return t.reshape(t.shape + (1,) * (x.ndim - 3))  # [B, 1, ...] against elems

    def sample_source(self, z: Tensor, rng: torch.Generator | None = None) -> Tensor:
        return so3.uniform(tuple(z.shape[:-2]), rng=rng, dtype=z.dtype, device=z.device)

    def sample(self, z: Tensor, t: TimeLike, rng: torch.Generator | None = None) -> Tensor:
        k, _ = self.rate(self._t(t, z))
        return so3.geodesic(self.sample_source(z, rng), z, k)

    def sample_from(self, x0: Tensor, z: Tensor, t: TimeLike, rng: torch.Generator | None = None) -> Tensor:
        """x_t = x_0 Exp(kappa_t Log(x_0^T z)) for a given source draw ``x0`` [B, *elems, 3, 3] (deterministic:
        ``rng`` is not used); :meth:`sample` is this at a Haar x_0."""
        k, _ = self.rate(self._t(t, z))
        return so3.geodesic(x0, z, k)

    def element_log_prob(self, x: Tensor, z: Tensor, t: TimeLike) -> Tensor:
        """log p_t(x | z) w.r.t. normalised Haar measure per rotation, [B, *elems] (-inf off the support)."""
        k, _ = self.rate(self._t(t, x))
        one_k = 1.0 - k
        w = so3.rotation_angle_between(z, x)
        small = w < 1e-6
        ws = torch.where(small, torch.ones_like(w), w)
        val = _log_one_minus_cos(ws / one_k) - _log_one_minus_cos(ws) - torch.log(one_k)
        val = torch.where(small, -3.0 * torch.log(one_k), val)
        return torch.where(w <= one_k * math.pi, val, torch.full_like(val, -math.inf))

    def log_prob(self, x: Tensor, z: Tensor, t: TimeLike) -> Tensor:
        return self.element_log_prob(x, z, t).reshape(x.shape[0], -1).sum(1)

    def velocity(self, x: Tensor, z: Tensor, t: TimeLike) -> Tensor:
        """Body-frame u_t(x | z) = kappa' / (1 - kappa) Log(x^T z), [B, *elems, 3]."""
        _, c = self.rate(self._t(t, x))
        return c[..., None] * so3.log_between(x, z)
