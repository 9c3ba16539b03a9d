"""Affine Gaussian paths on R^d: x_t = sigma_t x_0 + alpha_t z, x_0 ~ N(0, s^2 I) (GM eq. 3).

p_t(x | z) = N(x; alpha_t z, (s sigma_t)^2 I), factorised over coordinates. With the standardised
coordinate u = (x - alpha_t z) / (s sigma_t), per coordinate

* velocity (flow solution):   u_t(x | z) = sigma'_t x_0 + alpha'_t z = (sigma'_t / sigma_t)(x - alpha_t z) + alpha'_t z;
* d/dt log p_t(x | z) = [sigma'_t (u^2 - 1) + (alpha'_t z / s) u] / sigma_t;
* jump solution (GM eq. 13 for CondOT, general form of GM section 9): intensity
  lambda_t(x) = [-d/dt log p_t(x | z)]_+ and target J_t(y) proportional to [d/dt p_t(y | z)]_+, which in u is
  phi(u) [-r u^2 + b u + r]_+ / sigma_t with r = -sigma'_t > 0, b = alpha'_t z / s: a normal density times a
  quadratic on [u_-, u_+] (its roots; u_- u_+ = -1), sampled exactly by :mod:`manifolds.truncated`.
  For CondOT (s = 1) (1 - t)^3 d/dt log p_t = -k_t(x) with GM eq. 13's k_t.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from manifolds.base import ProbabilityPath, TimeLike, as_time, expand_time
from manifolds.spaces import Euclidean
from manifolds.truncated import quadratic_normal_mass, sample_quadratic_normal

__all__ = ["AffineScheduler", "CondOTScheduler", "AffineGaussianPath"]


class AffineScheduler:
    """(alpha_t, sigma_t) with alpha_0 = sigma_1 = 0, alpha_1 = sigma_0 = 1 and sigma'_t < 0 on (0, 1)."""

    def __call__(self, t: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """-> alpha_t, sigma_t, alpha'_t, sigma'_t."""
        raise NotImplementedError


@dataclass(frozen=True)
class CondOTScheduler(AffineScheduler):
    """alpha_t = t, sigma_t = 1 - t (CondOT / rectified flow; MultiFlow's translations)."""

    def __call__(self, t: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        return t, 1.0 - t, torch.ones_like(t), -torch.ones_like(t)


@dataclass(frozen=True)
class AffineGaussianPath(ProbabilityPath):
    """x_t = sigma_t x_0 + alpha_t z with x_0 ~ N(0, noise_scale^2 I); any event shape."""

    scheduler: AffineScheduler = CondOTScheduler()
    noise_scale: float = 1.0
    space = Euclidean()

    def _coeffs(self, t: TimeLike, x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        t = expand_time(as_time(t, x.shape[0], x), x)
        return self.scheduler(t)

    def sample_source(self, z: Tensor, rng: torch.Generator | None = None) -> Tensor:
        return self.noise_scale * torch.randn(z.shape, generator=rng, dtype=z.dtype, device=z.device)

    def sample(self, z: Tensor, t: TimeLike, rng: torch.Generator | None = None) -> Tensor:
        a, s, _, _ = self._coeffs(t, z)
        return s * self.sample_source(z, rng) + a * z

    def sample_from(self, x0: Tensor, z: Tensor, t: TimeLike, rng: torch.Generator | None = None) -> Tensor:
        """x_t = sigma_t x_0 + alpha_t z (GM eq. 3) for a given source draw ``x0`` [B, *event] (deterministic:
        ``rng`` is not used); :meth:`sample` is this at x_0 = :meth:`sample_source`."""
        a, s, _, _ = self._coeffs(t, z)
        return s * x0 + a * z

    def standardise(self, x: Tensor, z: Tensor, t: TimeLike) -> Tensor:
        """u = (x - alpha_t z) / (s sigma_t), [B, *event]."""
        a, s, _, _ = self._coeffs(t, x)
        return (x - a * z) / (self.noise_scale * s)

    def element_log_prob(self, x: Tensor, z: Tensor, t: TimeLike) -> Tensor:
        """log N(x; alpha_t z, (s sigma_t)^2) per coordinate, [B, *event]."""
        _, s, _, _ = self._coeffs(t, x)
        u = self.standardise(x, z, t)
        return -0.5 * u * u - torch.log(self.noise_scale * s) - 0.5 * math.log(2 * math.pi)

    def element_dt_log_prob(self, x: Tensor, z: Tensor, t: TimeLike) -> Tensor:
        """d/dt log p_t(x | z) per coordinate: [sigma' (u^2 - 1) + alpha' z u / s] / sigma, [B, *event]."""
        _, s, da, ds = self._coeffs(t, x)
        u = self.standardise(x, z, t)
        return (ds * (u * u - 1.0) + da * z * u / self.noise_scale) / s

    def log_prob(self, x: Tensor, z: Tensor, t: TimeLike) -> Tensor:
        return self.element_log_prob(x, z, t).reshape(x.shape[0], -1).sum(1)

    def dt_log_prob(self, x: Tensor, z: Tensor, t: TimeLike) -> Tensor:
        return self.element_dt_log_prob(x, z, t).reshape(x.shape[0], -1).sum(1)

    # --- flow solution -------------------------------------------------------------------------
    def velocity(self, x: Tensor, z: Tensor, t: TimeLike) -> Tensor:
        """u_t(x | z) = (sigma'/sigma)(x - alpha z) + alpha' z, [B, *event]."""
        a, s, da, ds = self._coeffs(t, x)
        return ds / s * (x - a * z) + da * z

    # --- jump solution -------------------------------------------------------------------------
    def jump_intensity(self, x: Tensor, z: Tensor, t: TimeLike) -> Tensor:
        """lambda_t(x | z) = [-d/dt log p_t(x | z)]_+ per coordinate, [B, *event]."""
        return (-self.element_dt_log_prob(x, z, t)).clamp_min(0.0)

    def jump_density(self, y: Tensor, z: Tensor, t: TimeLike) -> Tensor:
        """Normalised J_t(y | z) = [d/dt p_t(y | z)]_+ / int [d/dt p_t]_+, per coordinate (for tests / losses)."""
        a, s, da, ds = self._coeffs(t, y)
        r, b = -ds, da * z / self.noise_scale
        lo, hi = _roots(r, b)
        mass = quadratic_normal_mass(r, b, -r, lo, hi)
        u = self.standardise(y, z, t)
        q = (r + b * u - r * u * u).clamp_min(0.0)
        return q * torch.exp(-0.5 * u * u) / math.sqrt(2 * math.pi) / mass / (self.noise_scale * s)

    def sample_jump_target(self, z: Tensor, t: TimeLike, rng: torch.Generator | None = None) -> Tensor:
        """y ~ J_t(. | z) independently per coordinate (exact), [B, *event]."""
        a, s, da, ds = self._coeffs(t, z)
        if bool((ds >= 0).any()):
            raise ValueError("the jump solution needs sigma'_t < 0 (noise decreasing in t)")
        r, b = -ds, da * z / self.noise_scale
        lo, hi = _roots(r, b)
        u = sample_quadratic_normal(r.expand_as(z), b, -r.expand_as(z), lo, hi, rng=rng)
        return a * z + self.noise_scale * s * u


def _roots(r: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    """Roots of -r u^2 + b u + r (r > 0): u_-, u_+ = (b -+ sqrt(b^2 + 4 r^2)) / (2 r), computed without cancellation."""
    disc = torch.sqrt(b * b + 4 * r * r)
    # the larger-magnitude root, then u_- u_+ = -1
    big = (b + torch.where(b >= 0, disc, -disc)) / (2 * r)
    other = -1.0 / big
    lo = torch.minimum(big, other)
    hi = torch.maximum(big, other)
    return lo.expand_as(b), hi.expand_as(b)
