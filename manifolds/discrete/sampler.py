"""Sampling a factorised CTMC with a posterior model (KO section 3, appendix A).

``posterior(x, t)`` is any callable returning logits of p^theta_{1|t}(. | x) ``[B, *event, K]`` for states
``x`` ``[B, *event]`` and times ``t`` ``[B]`` (a network, or the exact oracle of a finite data set).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Literal

import torch
from torch import Tensor
from tqdm.auto import tqdm

from manifolds.discrete.generator import DiscreteGenerator, jump_step
from manifolds.discrete.paths import categorical_logits
from manifolds.samplers import time_grid as uniform_time_grid

PosteriorFn = Callable[[Tensor, Tensor], Tensor]


def _ends_at_one(t_next: float) -> bool:
    """A step ending at t = 1, where p_1(. | x1) = delta_{x1}: its exact transition is a posterior draw."""
    return math.isclose(t_next, 1.0, rel_tol=0.0, abs_tol=1e-9) or t_next > 1.0


def tempered(posterior: PosteriorFn, temperature: float) -> PosteriorFn:
    """The posterior at a sampling temperature: logits / ``temperature``, i.e. p^theta_{1|t} proportional to
    (p^theta_{1|t})^(1 / temperature) (sharper below 1, flatter above); ``posterior`` itself at 1."""
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    if temperature == 1.0:
        return posterior
    return lambda x, t: posterior(x, t) / temperature


@torch.no_grad()
def sample(generator: DiscreteGenerator, posterior: PosteriorFn, x_init: Tensor,
           time_grid: Sequence[float] | Tensor | int = 100, *, fixed: Tensor | None = None,
           method: Literal["posterior", "marginal"] = "posterior", rng: torch.Generator | None = None,
           progress: bool = False) -> Tensor:
    """Simulate X_t from ``time_grid[0]`` to ``time_grid[-1]`` and return the final state ``[B, *event]``.

    * ``method="posterior"`` (KO section 3 with Algorithm 1): each step draws x1^i ~ p^theta_{1|t}(. | X_t)
      (softmax of the logits; for a sampling temperature pass :func:`tempered`) and takes the exponential
      conditional step, valid for any h.
    * ``method="marginal"``: the exponential step with the marginal velocity itself (KO eq. 12 with the
      closed form eq. 76 for mixture paths, eq. 9 otherwise: O(K^2) per position, small K).
    * A step ending at t = 1 draws X_1 from the posterior: since p_1(. | x1) = delta_{x1} this is the exact
      transition of the conditional process, whatever h.
    * ``fixed`` ``[B, *event]`` bool: positions that keep their ``x_init`` value (conditioning, padding).

    ``time_grid`` is an increasing sequence (or tensor) of times, e.g. :func:`manifolds.samplers.time_grid`, or a
    number of uniform steps on [0, 1].
    """
    if isinstance(time_grid, int):
        time_grid = uniform_time_grid(time_grid)
    if fixed is not None and fixed.shape != x_init.shape:
        raise ValueError(f"fixed mask shape {tuple(fixed.shape)} must equal x_init's {tuple(x_init.shape)}")
    grid = [float(s) for s in time_grid]
    x = x_init.clone()
    B = x.shape[0]
    steps = range(len(grid) - 1)
    for k in tqdm(steps, disable=not progress, desc="CTMC"):
        t, h = grid[k], grid[k + 1] - grid[k]
        tb = torch.full((B,), t, dtype=torch.get_default_dtype(), device=x.device)
        logits = posterior(x, tb)  # [B, *event, K]
        if _ends_at_one(grid[k + 1]):
            new = categorical_logits(logits, rng)
        elif method == "posterior":
            new = generator.step(x, tb, h, categorical_logits(logits, rng), rng)
        elif method == "marginal":
            rates = generator.marginal_rates(x, tb, torch.softmax(logits.float(), -1))
            new = jump_step(x, rates, h, rng)
        else:
            raise ValueError(f"method must be 'posterior' or 'marginal', got {method!r}")
        x = new if fixed is None else torch.where(fixed, x, new)
    return x
