"""Flow generator L_t f = grad f . u_t (GM Table 1): parameterised by the velocity, trained with MSE.

Works for every path that provides a conditional velocity ``path.velocity(x, z, t)`` and a ``path.space``
(R^d: x + h u; SO(3): x Exp(h u) with body-frame u). The marginal velocity is the posterior average of the
conditional ones (GM Prop. 1).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from manifolds.base import ConditionalGenerator, ProbabilityPath, TimeLike, expand_pairs, posterior_average
from manifolds.losses import mse

__all__ = ["FlowGenerator"]


@dataclass(frozen=True)
class FlowGenerator(ConditionalGenerator):
    path: ProbabilityPath

    def target(self, x: Tensor, z: Tensor, t: TimeLike) -> Tensor:
        """u_t(x | z), [B, *tangent]."""
        return self.path.velocity(x, z, t)

    def loss(self, pred: Tensor, target: Tensor) -> Tensor:
        return mse(pred, target)

    def velocity(self, x: Tensor, t: TimeLike, z: Tensor) -> Tensor:
        """Posterior-mean form: the conditional velocity toward a predicted z (x1_hat)."""
        return self.path.velocity(x, z, t)

    def marginal_velocity(self, x: Tensor, t: TimeLike, support: Tensor, weights: Tensor) -> Tensor:
        """u_t(x) = sum_m p(z_m | x) u_t(x | z_m) (GM Prop. 1), [B, *tangent]."""
        xe, ze, te = expand_pairs(x, support, t)
        return posterior_average(self.path.velocity(xe, ze, te), weights)

    def move(self, x: Tensor, v: Tensor, h: float) -> Tensor:
        """Follow the tangent v for time h on the path's space."""
        return self.path.space.exp_step(x, v, h)

    def step(self, x: Tensor, t: TimeLike, h: float, z: Tensor,
             rng: torch.Generator | None = None) -> Tensor:
        return self.move(x, self.velocity(x, t, z), h)

    def marginal_step(self, x: Tensor, t: TimeLike, h: float, support: Tensor, weights: Tensor,
                      rng: torch.Generator | None = None) -> Tensor:
        return self.move(x, self.marginal_velocity(x, t, support, weights), h)
