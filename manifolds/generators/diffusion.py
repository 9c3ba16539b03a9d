"""Pure diffusion solution of the uniform mixture path (GM Example 2, eq. 14, app. E.3).

For p_t(dx | z) = kappa_t delta_z + (1 - kappa_t) Unif[a1, a2] per coordinate (L = a2 - a1), the driftless SDE
dX = sigma_t(X | z) dW with

    sigma_t^2(x | z) = 2 kappa'_t L / (1 - kappa_t) * ( (z - a1)^2 / (2L) + [x - z]_+ - (x - a1)^2 / (2L) )

and reflection at a1, a2 solves the Fokker-Planck equation d/dt p = 1/2 d^2/dx^2 (sigma^2 p): the bracket g has
g'' = -1/L on both sides of z (so the uniform part loses mass at rate kappa'/(1 - kappa) as required), g(z) = 0 with
a unit kink at z (the flux into the atom), and g'(a1) = g'(a2) = 0 (no flux through the walls). (The text of GM eq. 14
shows kappa_t where the derivation needs kappa'_t.) Parameterisation F = sigma^2, loss MSE (GM Table 1).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from manifolds.base import ConditionalGenerator, TimeLike, as_time, expand_pairs, expand_time, posterior_average
from manifolds.losses import mse
from manifolds.paths.mixture import UniformMixturePath

__all__ = ["PureDiffusionGenerator"]


@dataclass(frozen=True)
class PureDiffusionGenerator(ConditionalGenerator):
    path: UniformMixturePath = UniformMixturePath()

    def rate(self, t: Tensor) -> Tensor:
        """2 kappa'_t L / (1 - kappa_t)."""
        k, dk = self.path.kappa(t)
        return 2.0 * dk * (self.path.high - self.path.low) / (1.0 - k)

    def shape_function(self, x: Tensor, z: Tensor) -> Tensor:
        """g(x | z) >= 0 on [a1, a2] (the bracket of GM eq. 14)."""
        a1, width = self.path.low, self.path.high - self.path.low
        return 0.5 * (z - a1) ** 2 / width + (x - z).clamp_min(0.0) - 0.5 * (x - a1) ** 2 / width

    def target(self, x: Tensor, z: Tensor, t: TimeLike) -> Tensor:
        """sigma_t^2(x | z) per coordinate, [B, *event]."""
        tt = expand_time(as_time(t, x.shape[0], x), x)
        return self.rate(tt) * self.shape_function(x, z).clamp_min(0.0)

    def loss(self, pred: Tensor, target: Tensor) -> Tensor:
        return mse(pred, target)

    def diffuse(self, x: Tensor, sigma2: Tensor, h: float, rng: torch.Generator | None = None) -> Tensor:
        """Euler-Maruyama step x + sqrt(h sigma^2) eps, reflected into [a1, a2]."""
        eps = torch.randn(x.shape, generator=rng, dtype=x.dtype, device=x.device)
        return self.path.reflect(x + torch.sqrt(h * sigma2.clamp_min(0.0)) * eps)

    def step(self, x: Tensor, t: TimeLike, h: float, z: Tensor,
             rng: torch.Generator | None = None) -> Tensor:
        """Euler-Maruyama step; z is absorbing (sigma^2(z | z) = 0 and sigma^2 ~ |x - z| nearby, so the continuous
        process sticks once it reaches z): a step that crosses z ends at z."""
        y = self.diffuse(x, self.target(x, z, t), h, rng)
        crossed = (x - z) * (y - z) <= 0
        return torch.where(crossed, z, y)

    def marginal_step(self, x: Tensor, t: TimeLike, h: float, support: Tensor, weights: Tensor,
                      rng: torch.Generator | None = None) -> Tensor:
        """Posterior-averaged sigma^2 (GM Prop. 1). For x off the data atoms the posterior of the mixture path is the
        data prior; a finite data set puts atoms that a diffusion cannot hit, so the exact oracle for this generator
        uses a continuous data density instead (:func:`manifolds.oracle.tent_mixture_sigma2`)."""
        xe, ze, te = expand_pairs(x, support, t)
        return self.diffuse(x, posterior_average(self.target(xe, ze, te), weights), h, rng)
