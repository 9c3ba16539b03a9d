"""Conditions (:class:`~pipeline.crystals.conditions.CrystalConditions`) turned into the inputs of the CTMC sampler
:func:`manifolds.discrete.sample`: the initial state, the ``fixed`` / ``allowed`` / ``replace`` masks, the start
time t0 and the guidance (docs/conditioning.md).

* Unconditional rows are the masked template (MASK on the 6 lattice tokens and the 4 tokens of each atom, PAD
  after; on the metric coordinate path, coordinates uniform on the grid, drawn with ``rng``): exactly the source of
  unconditional sampling, so unconditional generation is unchanged.
* Revealed tokens (formula elements, a seed's lattice or sites) are written into x_init and ``fixed``; a seed's
  coordinates on the metric path are ``replace``d instead (redrawn from p_t(. | value) at every step, GM Prop. 1).
* ``elements``: ``allowed`` ``[B, L, V]`` is False for every other element token at the element positions.
* Refinement from t0 (``start_time``): x_init = a draw of the path p_t0(. | seed) (on the mask path each token is
  masked with probability 1 - kappa_t0; seed elements outside ``elements`` are masked too), then
  :func:`refinement_steps` steps of the same size as a full run on [t0, 1].
* Guidance (mask path only): presence of required elements and property targets
  (:mod:`manifolds.discrete.guidance`), combined into one likelihood.

One call of the sampler shares its time grid and its guidance, so :func:`group_samples` splits a batch that mixes
conditions into groups (same t0, same guidance, and the same atom count where presence guidance sums over the
element positions); masks and revealed tokens are per sample.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor

from manifolds.discrete.guidance import Guidance, PredictorGuidance, PresenceGuidance, combine
from pipeline.crystals.conditions import CrystalConditions, load_guidance_predictor
from pipeline.crystals.flow import FRAC_OFFSET, N_RING, CrystalModel, coordinate_positions, make_path, model_time
from pipeline.crystals.formulas import element_z
from structures.crystals.tokens import ELEMENT_OFFSET, MASK, PAD, VOCAB_SIZE, masked_template

__all__ = ["ConditionedBatch", "carry_over", "condition_batch", "group_samples", "refinement_steps"]


@dataclass
class ConditionedBatch:
    """The sampler's inputs for one group of samples (shapes: B samples, L = 6 + 4A tokens, V tokens)."""

    x_init: Tensor  # [B, L] long
    fixed: Tensor  # [B, L] bool: revealed tokens and padding
    allowed: Tensor | None  # [B, L, V] bool, or None (no element restriction)
    replace: Tensor | None  # [B, L] bool: revealed metric-path coordinates, or None
    t0: float  # start of the time grid
    guidance: Guidance | None
    atom_mask: Tensor  # [B, A] bool


def refinement_steps(steps: int, t0: float) -> int:
    """Steps on [t0, 1] for a run of ``steps`` steps on [0, 1]: ceil(steps (1 - t0)), at least 1 (the same step
    size as a full run)."""
    return max(1, math.ceil(steps * (1.0 - t0) - 1e-9))


def _key(c: CrystalConditions | None, num_atoms: int) -> tuple[float, str, int]:
    if c is None:
        return (0.0, "", 0)
    return (c.start, c.guidance_key(), num_atoms if c.required and c.guided else 0)


def group_samples(conditions: Sequence[CrystalConditions | None], num_atoms: Sequence[int] | np.ndarray
                  ) -> list[np.ndarray]:
    """Indices of the samples that one sampler call can take together (same t0 and guidance; the same atom count
    under presence guidance), groups in order of their first sample."""
    groups: dict[tuple[float, str, int], list[int]] = {}
    for i, c in enumerate(conditions):
        groups.setdefault(_key(c, int(num_atoms[i])), []).append(i)
    return [np.asarray(v, dtype=np.int64) for v in groups.values()]


def _element_positions(length: int, device: torch.device) -> Tensor:
    """``[L]`` bool: the element position of every atom slot (6, 10, 14, ...)."""
    i = torch.arange(length, device=device)
    return (i >= 6) & ((i - 6) % 4 == 0)


def condition_batch(model: CrystalModel, conditions: Sequence[CrystalConditions | None],
                    num_atoms: Sequence[int] | np.ndarray, rng: torch.Generator | None = None,
                    scheduler: str | None = None) -> ConditionedBatch:
    """The sampler's inputs for samples with these conditions (None: unconditional) and atom counts, all sharing
    t0 and guidance (:func:`group_samples`); ``scheduler``: the sampler's kappa_t (None: the model's), which
    also draws x_t0 for refinement. ValueError when the samples do not share t0 and guidance."""
    n = np.asarray(num_atoms, dtype=np.int64)
    conds = list(conditions)
    if len(conds) != len(n):
        raise ValueError(f"{len(conds)} conditions for {len(n)} atom counts")
    if len({_key(c, int(a)) for c, a in zip(conds, n)}) > 1:
        raise ValueError("the samples of one batch must share t0 and guidance; split them with group_samples")
    template = masked_template(n, int(n.max())).to_torch()
    device = next(model.posterior.parameters()).device
    x = template.tokens.to(device)  # [B, L]
    atom_mask = template.atom_mask.to(device)  # [B, A]
    token_mask = template.token_mask.to(device)  # [B, L]
    if model.coords.metric:
        # source of the metric path: uniform grid values on the coordinates of real atoms (KO eq. 27, beta_0 = 0)
        coord = coordinate_positions(atom_mask.shape[1], device)[None] & token_mask  # [B, L]
        uniform = torch.randint(0, N_RING, x.shape, generator=rng, device=device) + FRAC_OFFSET
        x = torch.where(coord, uniform, x)
    fixed = ~token_mask
    t0 = _key(conds[0], int(n[0]))[0]
    if all(c is None for c in conds):
        return ConditionedBatch(x, fixed, None, None, t0, None, atom_mask)
    scheduler = scheduler or model.scheduler
    B, L = x.shape
    x = _refine_from(model, conds, x, token_mask, t0, scheduler, rng)
    elem = _element_positions(L, device)[None] & token_mask  # [B, L]
    allowed = replace = None
    for b, c in enumerate(conds):
        if c is None:
            continue
        if c._formula is not None:
            pos = 6 + 4 * torch.arange(int(n[b]), device=device)
            x[b, pos] = torch.as_tensor(c._formula.element_tokens(int(n[b])), device=device)
            fixed[b, pos] = True
        elif c.elements is not None:
            if allowed is None:
                allowed = torch.ones(B, L, VOCAB_SIZE, dtype=torch.bool, device=device)
            ok = torch.zeros(VOCAB_SIZE, dtype=torch.bool, device=device)
            ok[[ELEMENT_OFFSET + element_z(s, "elements") - 1 for s in c.elements]] = True
            allowed[b, elem[b]] = ok
            # a seed element outside the set, unmasked by the draw of x_t0, is masked again
            bad = elem[b] & (x[b] != MASK) & ~ok[x[b].clamp(0, VOCAB_SIZE - 1)]
            x[b, bad] = MASK
        if c._seed is not None:
            replace = _reveal_seed(model, c, x[b], fixed[b], replace, b, B)
    guidance = _guidance(model, conds[0], elem[0], scheduler) if conds[0] is not None and conds[0].guided else None
    return ConditionedBatch(x, fixed, allowed, replace, t0, guidance, atom_mask)


def _seed_row(c: CrystalConditions, length: int, device: torch.device) -> Tensor:
    z = torch.full((length,), PAD, dtype=torch.long, device=device)
    z[: len(c._seed.tokens)] = torch.as_tensor(c._seed.tokens, device=device)
    return z


def _refine_from(model: CrystalModel, conds: list[CrystalConditions | None], x: Tensor, token_mask: Tensor,
                 t0: float, scheduler: str, rng: torch.Generator | None) -> Tensor:
    """x with the rows of seeds refined from t0 replaced by one draw of the path p_t0(. | seed), ``[B, L]``."""
    rows = [b for b, c in enumerate(conds) if c is not None and c._seed is not None and c.start_time is not None]
    if not rows:
        return x
    z = torch.stack([_seed_row(conds[b], x.shape[1], x.device) for b in rows])  # [S, L]
    t = torch.full((len(rows),), t0, dtype=torch.get_default_dtype(), device=x.device)
    noisy = make_path(scheduler, model.coords).sample(z, t, rng)  # [S, L]
    x = x.clone()
    x[rows] = torch.where(token_mask[rows], noisy, x[rows])
    return x


def _reveal_seed(model: CrystalModel, c: CrystalConditions, x: Tensor, fixed: Tensor, replace: Tensor | None,
                 b: int, B: int) -> Tensor | None:
    """Write the seed's revealed tokens into row ``x`` ``[L]`` (in place) and mark them fixed, or, for coordinates
    on the metric path, in ``replace`` ``[B, L]`` (made on first use); returns ``replace``."""
    z = _seed_row(c, x.shape[0], x.device)
    if c.fix_lattice:
        x[:6] = z[:6]
        fixed[:6] = True
    for site in c.fix_sites:
        p = 6 + 4 * c._seed.slots[site]
        x[p:p + 4] = z[p:p + 4]
        fixed[p] = True
        if model.coords.metric:
            if replace is None:
                replace = torch.zeros(B, x.shape[0], dtype=torch.bool, device=x.device)
            replace[b, p + 1:p + 4] = True
        else:
            fixed[p + 1:p + 4] = True
    return replace


def carry_over(posterior: Any) -> Any:
    """The mask-path posterior with unmasked tokens carried over: p_{1|t}(. | x)^i = delta_{x^i} where x^i != MASK
    (exact for the mask source, KO eq. 2: an unmasked token is its data value). Guidance reads these factorised
    posteriors (presence) and the marginal rates from them, so a network's small mass elsewhere is removed."""

    def fn(x: Tensor, t: Tensor) -> Tensor:
        logits = posterior(x, t)  # [B, L, V]
        known = torch.full_like(logits, float("-inf")).scatter(-1, x.unsqueeze(-1), 0.0)
        return torch.where((x != MASK).unsqueeze(-1), known, logits)

    return fn


def _guidance(model: CrystalModel, c: CrystalConditions, positions: Tensor, scheduler: str) -> Guidance | None:
    """Presence of ``c.required`` among the element ``positions`` ``[L]`` and the property targets, combined."""
    presence = None
    if c.required and c._formula is None:
        tokens = tuple(ELEMENT_OFFSET + element_z(s, "required") - 1 for s in c.required)
        presence = PresenceGuidance(tokens, positions, c.guidance)
    targets = None
    if c.targets:
        pred = load_guidance_predictor(c.predictor)
        targets = PredictorGuidance(_target_log_likelihood(model, pred, c.targets, scheduler), c.guidance,
                                    c.guidance_method)
    return combine(presence, targets)


def _target_log_likelihood(model: CrystalModel, pred: Any, targets: tuple[Any, ...], scheduler: str) -> Any:
    """log p(targets | x, t) = sum_k log P(y_k in range_k) with the predictor's Gaussian (mean, std) at the
    predictor's time for the sampler's noise level (KO E.1); ``x`` long ``[N, L]`` or one-hot ``[N, L, V]``."""
    from pipeline.crystals.targets import log_probability

    net = pred.net.to(next(model.posterior.parameters()).device).eval()
    train_scheduler = getattr(pred, "scheduler", None) or scheduler

    def log_likelihood(x: Tensor, t: Tensor) -> Tensor:
        atom_mask = x[:, 6::4, PAD] < 0.5 if x.is_floating_point() else x[:, 6::4] != PAD  # [N, A]
        mean, std = net(x, model_time(t, train_scheduler, scheduler), atom_mask)  # [N, P] each
        return log_probability(mean, std, targets, pred.properties)

    return log_likelihood
