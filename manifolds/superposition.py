"""Markov superposition (GM Prop. 3): L_t = sum_i a_i(t) L_t^i with a_i >= 0, sum_i a_i = 1, all L^i solving the KFE
for the same path (e.g. GM Table 2's "Jump + Flow MS").

An Euler step of the sum is the composition of the components' Euler steps with step sizes a_i(t) h (Lie splitting;
first order like each component). Targets and losses are per component (a tuple; the loss is their sum).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from manifolds.base import ConditionalGenerator, ProbabilityPath, TimeLike

__all__ = ["Superposition", "constant_weights"]


def constant_weights(*w: float) -> Callable[[float], tuple[float, ...]]:
    """Time-independent weights (normalised to sum 1)."""
    total = float(sum(w))
    if total <= 0 or any(v < 0 for v in w):
        raise ValueError(f"superposition weights must be >= 0 with a positive sum, got {w}")
    ws = tuple(v / total for v in w)
    return lambda t: ws


@dataclass(frozen=True)
class Superposition(ConditionalGenerator):
    components: Sequence[ConditionalGenerator]
    weights: Callable[[float], tuple[float, ...]] = field(default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if len(self.components) < 1:
            raise ValueError("a superposition needs at least one component")
        if self.weights is None:
            object.__setattr__(self, "weights", constant_weights(*([1.0] * len(self.components))))

    @property
    def path(self) -> ProbabilityPath:  # type: ignore[override]
        return self.components[0].path

    def _w(self, t: TimeLike) -> tuple[float, ...]:
        tt = float(t) if not isinstance(t, Tensor) or t.numel() == 1 else float(t.reshape(-1)[0])
        w = self.weights(tt)
        if len(w) != len(self.components):
            raise ValueError(f"{len(w)} weights for {len(self.components)} components")
        return w

    def target(self, x: Tensor, z: Tensor, t: TimeLike) -> tuple[Tensor, ...]:  # type: ignore[override]
        return tuple(c.target(x, z, t) for c in self.components)

    def loss(self, pred: Sequence[Tensor], target: Sequence[Tensor]) -> Tensor:  # type: ignore[override]
        return sum(c.loss(p, q) for c, p, q in zip(self.components, pred, target, strict=True))

    def step(self, x: Tensor, t: TimeLike, h: float, z: Tensor,
             rng: torch.Generator | None = None) -> Tensor:
        for c, w in zip(self.components, self._w(t), strict=True):
            if w > 0:
                x = c.step(x, t, w * h, z, rng)
        return x

    def marginal_step(self, x: Tensor, t: TimeLike, h: float, support: Tensor, weights: Tensor,
                      rng: torch.Generator | None = None) -> Tensor:
        for c, w in zip(self.components, self._w(t), strict=True):
            if w > 0:
                x = c.marginal_step(x, t, w * h, support, weights, rng)
        return x
