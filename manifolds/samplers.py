"""Samplers (GM Table 1 "Sampling", Table 2): time grids, Euler for every generator, Heun for flows, and "mixed"
(Heun for the flow part of a superposition, Euler for the rest).

Samplers only see callables, so the same loop serves a network (posterior-mean form: predict z, take a conditional
step) and the exact oracle (posterior-averaged form):

* ``StepFn(x, t, h, rng) -> x``: one Euler step of some generator;
* ``VelocityFn(x, t) -> v``: the (marginal) velocity at x, and ``MoveFn(x, v, h) -> x`` its space's update.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

__all__ = ["time_grid", "euler", "heun", "mixed", "StepFn", "VelocityFn", "MoveFn"]

StepFn = Callable[[Any, float, float, "torch.Generator | None"], Any]
VelocityFn = Callable[[Any, float], Any]
MoveFn = Callable[[Any, Any, float], Any]


def time_grid(steps: int, t_min: float = 0.0, t_max: float = 1.0) -> list[float]:
    """``steps + 1`` uniform times t_k = t_min + k (t_max - t_min) / steps, k = 0..steps (MultiFlow:
    linspace(0.01, 1, T)); computed in float64 so that the last one is exactly t_max. The one time grid of every
    sampler (continuous ones here, the CTMC sampler :func:`manifolds.discrete.sample`)."""
    if steps < 1 or not (0.0 <= t_min < t_max <= 1.0):
        raise ValueError(f"need steps >= 1 and 0 <= t_min < t_max <= 1, got {steps}, {t_min}, {t_max}")
    return torch.linspace(t_min, t_max, steps + 1, dtype=torch.float64).tolist()


def euler(x: Any, grid: list[float], step: StepFn, rng: torch.Generator | None = None) -> Any:
    """X_{t+h} = one Euler step of the generator from X_t, along the grid."""
    for t0, t1 in zip(grid[:-1], grid[1:]):
        x = step(x, t0, t1 - t0, rng)
    return x


def heun_step(x: Any, t: float, h: float, velocity: VelocityFn, move: MoveFn) -> Any:
    """Heun (explicit trapezoid, 2nd order): v1 = v(x, t), x~ = move(x, v1, h), x' = move(x, (v1 + v(x~, t + h)) / 2, h).
    On SO(3) with body-frame velocities this is 2nd order as well (no dexp correction is needed below order 3)."""
    v1 = velocity(x, t)
    v2 = velocity(move(x, v1, h), t + h)
    return move(x, _avg(v1, v2), h)


def _avg(a: Any, b: Any) -> Any:
    if isinstance(a, Tensor):
        return 0.5 * (a + b)
    return tuple(_avg(ai, bi) for ai, bi in zip(a, b, strict=True))


def heun(x: Any, grid: list[float], velocity: VelocityFn, move: MoveFn) -> Any:
    """Heun's method for a flow along the grid."""
    for t0, t1 in zip(grid[:-1], grid[1:]):
        x = heun_step(x, t0, t1 - t0, velocity, move)
    return x


def mixed(x: Any, grid: list[float], velocity: VelocityFn, move: MoveFn, other: StepFn,
          weights: Callable[[float], tuple[float, float]], rng: torch.Generator | None = None) -> Any:
    """Superposition a_flow L_flow + a_other L_other: a Heun step of the flow with step a_flow h, then an Euler step
    of the other generator with step a_other h (GM Table 2 "mixed")."""
    for t0, t1 in zip(grid[:-1], grid[1:]):
        h = t1 - t0
        wf, wo = weights(t0)
        if wf > 0:
            x = heun_step(x, t0, h, lambda y, s: _scale(velocity(y, s), wf), move)
        if wo > 0:
            x = other(x, t0, wo * h, rng)
    return x


def _scale(v: Any, c: float) -> Any:
    if isinstance(v, Tensor):
        return c * v
    return tuple(_scale(vi, c) for vi in v)
