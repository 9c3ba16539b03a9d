"""Uniform mixture path on a box: p_t(dx | z) = kappa_t delta_z + (1 - kappa_t) Unif[a1, a2] per coordinate (GM eq. 2).

Its "pure diffusion" solution (GM eq. 14, app. E.3) is in :mod:`manifolds.generators.diffusion`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from manifolds.base import ProbabilityPath, TimeLike, as_time, expand_time
from manifolds.spaces import Euclidean

__all__ = ["UniformMixturePath"]


@dataclass(frozen=True)
class UniformMixturePath(ProbabilityPath):
    """Per coordinate: x_t = z with probability kappa_t = t, else x_t ~ Unif[low, high]."""

    low: float = 0.0
    high: float = 1.0
    space = Euclidean()

    def kappa(self, t: Tensor) -> tuple[Tensor, Tensor]:
        """kappa_t = t, kappa'_t = 1."""
        return t, torch.ones_like(t)

    def sample_source(self, z: Tensor, rng: torch.Generator | None = None) -> Tensor:
        u = torch.rand(z.shape, generator=rng, dtype=z.dtype, device=z.device)
        return self.low + (self.high - self.low) * u

    def sample(self, z: Tensor, t: TimeLike, rng: torch.Generator | None = None) -> Tensor:
        k, _ = self.kappa(expand_time(as_time(t, z.shape[0], z), z))
        x0 = self.sample_source(z, rng)
        keep = torch.rand(z.shape, generator=rng, dtype=z.dtype, device=z.device) < k
        return torch.where(keep, z, x0)

    def reflect(self, x: Tensor) -> Tensor:
        """Fold x back into [low, high] (reflecting boundary of the pure diffusion, GM app. E.3)."""
        width = self.high - self.low
        y = torch.remainder(x - self.low, 2 * width)
        return self.low + torch.where(y > width, 2 * width - y, y)
