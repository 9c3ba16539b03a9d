"""Sampling a factorised CTMC with a posterior model (KO section 3, appendix A).

``posterior(x, t)`` is any callable returning logits of p^theta_{1|t}(. | x) ``[B, *event, K]`` for states
``x`` ``[B, *event]`` and times ``t`` ``[B]`` (a network, or the exact oracle of a finite data set).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor
from tqdm.auto import tqdm

from manifolds.discrete.generator import DiscreteGenerator, jump_step
from manifolds.discrete.guidance import Guidance, guided_logits, guided_rates
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


@dataclass(frozen=True)
class Conditioning:
    """What a sampler run is conditioned on (docs/conditioning.md). Shapes: x ``[B, *event]``, K tokens.

    * ``fixed`` ``[B, *event]`` bool: positions that keep their ``x_init`` value (revealed tokens, padding). On a
      mask path every token is masked independently in training, so a revealed token is in distribution and the
      posterior of the free positions is the conditional one: inpainting is exact there.
    * ``allowed`` ``[B or 1, *event, K]`` bool: the posterior is restricted to these tokens (renormalised per
      position) at every step, so the rates themselves are restricted, not only the last draw.
    * ``replace`` ``[B, *event]`` bool: revealed positions whose path does not pass through their value
      (a uniform or metric source): ``x_init`` holds the value z there; at every time they are redrawn from the
      conditional path p_t(. | z) (GM Prop. 1; "replacement", an approximation), and are z at t = 1.
    * ``guidance``: predictor guidance (:mod:`manifolds.discrete.guidance`, Nisonoff et al. 2024 eq. 7): the
      marginal rates are reweighted by p(y | x', t) / p(y | x, t); implies the marginal step, which needs the
      closed-form marginal rates of a mixture path (KO eq. 76) unless K is small.
    """

    fixed: Tensor | None = None
    allowed: Tensor | None = None
    replace: Tensor | None = None
    guidance: Guidance | None = None

    @property
    def held(self) -> Tensor | None:
        """Positions the step must not move: fixed ones and replaced ones (which follow their own path)."""
        if self.fixed is None:
            return self.replace
        return self.fixed if self.replace is None else self.fixed | self.replace

    def check(self, generator: DiscreteGenerator, x_init: Tensor) -> None:
        for name, mask in (("fixed", self.fixed), ("replace", self.replace)):
            if mask is not None and mask.shape != x_init.shape:
                raise ValueError(f"{name} mask shape {tuple(mask.shape)} must equal x_init's {tuple(x_init.shape)}")
        if self.allowed is not None:
            free = self.allowed.any(-1) if self.held is None else self.allowed.any(-1) | self.held
            if not bool(free.all()):
                raise ValueError("allowed leaves a free position without any token")
        if (self.guidance is not None and not generator.fast_mixture
                and generator.vocab_size > MAX_GENERIC_GUIDED_K):
            raise ValueError("guidance needs the marginal rates; this generator has no closed form for them (KO eq. "
                             f"76 covers mixture paths with power 1 and no corrector) and K = {generator.vocab_size} "
                             "is too large for the O(K^2) column")


#: vocabularies up to this size may be guided through the generic O(K^2) marginal rates
MAX_GENERIC_GUIDED_K = 64
UNCONDITIONED = Conditioning()


@torch.no_grad()
def sample(generator: DiscreteGenerator, posterior: PosteriorFn, x_init: Tensor,
           time_grid: Sequence[float] | Tensor | int = 100, *, condition: Conditioning | Tensor | None = None,
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
    * ``condition``: a :class:`Conditioning` (revealed tokens, allowed sets, replacement, guidance), or a bool
      ``[B, *event]`` tensor, short for ``Conditioning(fixed=...)``.

    ``time_grid`` is an increasing sequence (or tensor) of times, e.g. :func:`manifolds.samplers.time_grid` (start it
    at t0 > 0 with an ``x_init`` drawn from p_t0 to refine a given state), or a number of uniform steps on [0, 1].
    """
    if isinstance(time_grid, int):
        time_grid = uniform_time_grid(time_grid)
    cond = (Conditioning(fixed=condition) if isinstance(condition, Tensor) else condition) or UNCONDITIONED
    cond.check(generator, x_init)
    if method not in ("posterior", "marginal"):
        raise ValueError(f"method must be 'posterior' or 'marginal', got {method!r}")
    held, replace = cond.held, cond.replace
    posterior = _restricted(posterior, cond.allowed)
    grid = [float(s) for s in time_grid]
    x = x_init.clone()
    if replace is not None:
        x = torch.where(replace, generator.path.sample(x_init, _times(grid[0], x), rng), x)
    steps = range(len(grid) - 1)
    for k in tqdm(steps, disable=not progress, desc="CTMC"):
        t, h = grid[k], grid[k + 1] - grid[k]
        tb = _times(t, x)
        logits = posterior(x, tb)  # [B, *event, K]
        if cond.guidance is not None:
            new = _guided_step(generator, cond, x, tb, h, logits, _ends_at_one(grid[k + 1]), rng)
        elif _ends_at_one(grid[k + 1]):
            new = categorical_logits(logits, rng)
        elif method == "posterior":
            new = generator.step(x, tb, h, categorical_logits(logits, rng), rng)
        else:
            rates = generator.marginal_rates(x, tb, torch.softmax(logits.float(), -1))
            new = jump_step(x, rates, h, rng)
        x = new if held is None else torch.where(held, x, new)
        if replace is not None:
            x = torch.where(replace, generator.path.sample(x_init, _times(grid[k + 1], x), rng), x)
    return x


def _times(t: float, x: Tensor) -> Tensor:
    return torch.full((x.shape[0],), t, dtype=torch.get_default_dtype(), device=x.device)


def _restricted(posterior: PosteriorFn, allowed: Tensor | None) -> PosteriorFn:
    """The posterior with logits at -inf outside ``allowed`` ``[B or 1, *event, K]``."""
    if allowed is None:
        return posterior

    def fn(x: Tensor, t: Tensor) -> Tensor:
        logits = posterior(x, t)
        return logits.masked_fill(~allowed.to(logits.device), float("-inf"))
    return fn


def _guided_step(generator: DiscreteGenerator, cond: Conditioning, x: Tensor, t: Tensor, h: float, logits: Tensor,
                 last: bool, rng: torch.Generator | None) -> Tensor:
    """One exponential step with the guided marginal rates (Nisonoff et al. 2024 eq. 7); a step ending at t = 1
    draws from the guided posterior (:func:`manifolds.discrete.guidance.guided_logits`)."""
    assert cond.guidance is not None
    probs = torch.softmax(logits.float(), -1)  # [B, *event, K]
    free = ~torch.nn.functional.one_hot(x, probs.shape[-1]).bool()
    if cond.held is not None:
        free &= ~cond.held.unsqueeze(-1)
    if last:
        ratio = cond.guidance.log_ratios(x, t, probs, free & (probs > 0))
        return categorical_logits(guided_logits(logits.float(), x, ratio), rng)
    rates = generator.marginal_rates(x, t, probs)  # [B, *event, K]
    ratio = cond.guidance.log_ratios(x, t, probs, free & (rates > 0))
    return jump_step(x, guided_rates(rates, x, ratio), h, rng)
