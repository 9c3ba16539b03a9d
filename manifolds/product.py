"""Product spaces (GM Prop. 4): a factorised conditional path p_t(x | z) = prod_i q_t^i(x^i | z^i) and the
componentwise generator. States, data points and supports are tuples with one tensor per component
(e.g. (translations [B, N, 3], rotations [B, N, 3, 3]) for R^{3N} x SO(3)^N); the posterior over joint data points is
shared by all components (their generators may depend on every component), the loss is the sum of the components'.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from manifolds.base import ConditionalGenerator, ProbabilityPath, TimeLike

__all__ = ["ProductPath", "ProductGenerator"]

State = tuple[Tensor, ...]


@dataclass(frozen=True)
class ProductPath(ProbabilityPath):
    paths: Sequence[ProbabilityPath]

    def sample_source(self, z: State, rng: torch.Generator | None = None) -> State:  # type: ignore[override]
        return tuple(p.sample_source(zi, rng) for p, zi in zip(self.paths, z, strict=True))

    def sample(self, z: State, t: TimeLike, rng: torch.Generator | None = None) -> State:  # type: ignore[override]
        return tuple(p.sample(zi, t, rng) for p, zi in zip(self.paths, z, strict=True))

    def log_prob(self, x: State, z: State, t: TimeLike) -> Tensor:  # type: ignore[override]
        return sum(p.log_prob(xi, zi, t) for p, xi, zi in zip(self.paths, x, z, strict=True))

    def dt_log_prob(self, x: State, z: State, t: TimeLike) -> Tensor:  # type: ignore[override]
        return sum(p.dt_log_prob(xi, zi, t) for p, xi, zi in zip(self.paths, x, z, strict=True))


@dataclass(frozen=True)
class ProductGenerator(ConditionalGenerator):
    components: Sequence[ConditionalGenerator]

    @property
    def path(self) -> ProductPath:  # type: ignore[override]
        return ProductPath(tuple(c.path for c in self.components))

    def target(self, x: State, z: State, t: TimeLike) -> State:  # type: ignore[override]
        return tuple(c.target(xi, zi, t) for c, xi, zi in zip(self.components, x, z, strict=True))

    def loss(self, pred: State, target: State) -> Tensor:  # type: ignore[override]
        return sum(c.loss(p, q) for c, p, q in zip(self.components, pred, target, strict=True))

    def step(self, x: State, t: TimeLike, h: float, z: State,  # type: ignore[override]
             rng: torch.Generator | None = None) -> State:
        return tuple(c.step(xi, t, h, zi, rng) for c, xi, zi in zip(self.components, x, z, strict=True))

    def marginal_step(self, x: State, t: TimeLike, h: float, support: State, weights: Tensor,  # type: ignore[override]
                      rng: torch.Generator | None = None) -> State:
        return tuple(c.marginal_step(xi, t, h, si, weights, rng)
                     for c, xi, si in zip(self.components, x, support, strict=True))
