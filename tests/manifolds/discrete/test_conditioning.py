"""Exact oracles for conditioning the CTMC sampler on revealed tokens, allowed sets, and a start state.

* Inpainting on the mask path: with positions revealed (``fixed``), the exact posterior of the free positions
  is the conditional one, so the sampler draws p(x_free | x_given). Ignoring the revealed tokens in the rates
  (the posterior computed as if they were masked, the positions merely held) samples the marginal and fails.
* Allowed sets (``allowed``): restricting the posterior at every step samples q(x | x in S^D) exactly when q
  factorises over positions; restricting only the last draw leaves tokens revealed earlier outside S and fails.
  On correlated data the exact answer is guidance by the indicator likelihood, also checked here.
* Refinement from t0: x_t0 ~ p_t0(. | z_seed), then the sampler from t0 to 1, draws sum_x p_t0(x | z) p(x_1 | x_t0 =
  x) (the path's posterior), on the mask path and on a metric path; starting the clock at 0 fails on the latter.
* Replacement (``replace``) keeps revealed values on their conditional path and returns them at t = 1.

Tolerance 0.02 in total variation with 20,000 samples (sampling noise ~0.005 on these supports).
"""

from __future__ import annotations

import pytest
import torch

from discrete_toys import D, K, MASK, make_path, toy_data
from manifolds.discrete import Conditioning, DiscreteGenerator, PredictorGuidance, sample
from manifolds.discrete.oracle import (FiniteData, all_states, posterior_logits_fn, posterior_weights, state_index,
                                       total_variation)
from manifolds.samplers import time_grid
from test_guidance import MARGINALS, fast_posterior, guided_target, per_state, product_data

N, STEPS, TOL = 20000, 100, 0.02


def law_of(data: FiniteData, keep: torch.Tensor) -> torch.Tensor:
    return guided_target(data, keep.to(torch.get_default_dtype()))


def draw(path, data, x0, posterior=None, grid=STEPS, seed=0, **kw):
    return sample(DiscreteGenerator(path), posterior or fast_posterior(path, data), x0, grid,
                  rng=torch.Generator().manual_seed(seed), **kw)


def test_inpainting_on_the_mask_path_is_exact():
    path, data = make_path("mask+ko"), toy_data()
    x0 = torch.tensor([MASK, 1, MASK]).expand(N, D).clone()
    fixed = torch.zeros(N, D, dtype=torch.bool)
    fixed[:, 1] = True
    target = law_of(data, data.support[:, 1] == 1)
    got = draw(path, data, x0, condition=Conditioning(fixed=fixed))
    assert bool((got[:, 1] == 1).all())
    assert total_variation(got, target, K) < TOL
    exact = fast_posterior(path, data)

    def blind(x, t):  # the rates ignore the revealed token: the posterior of a state where it is masked
        return exact(torch.where(fixed, MASK, x), t)

    assert total_variation(draw(path, data, x0, blind, condition=Conditioning(fixed=fixed)), target, K) > 5 * TOL


def test_allowed_sets_restrict_the_rates_not_only_the_last_draw():
    path, data = make_path("mask+ko"), product_data(MARGINALS)
    allowed = torch.zeros(1, D, K, dtype=torch.bool)
    allowed[..., [0, 2]] = True
    target = law_of(data, torch.isin(data.support, torch.tensor([0, 2])).all(-1))
    x0 = torch.full((N, D), MASK)
    got = draw(path, data, x0, condition=Conditioning(allowed=allowed))
    assert bool(torch.isin(got, torch.tensor([0, 2])).all())
    assert total_variation(got, target, K) < TOL
    exact = fast_posterior(path, data)
    last = time_grid(STEPS)[-2]

    def final_only(x, t):
        logits = exact(x, t)
        return logits.masked_fill(~allowed, float("-inf")) if float(t[0]) >= last - 1e-9 else logits

    assert total_variation(draw(path, data, x0, final_only), target, K) > 10 * TOL


def test_allowed_sets_on_correlated_data_by_exact_indicator_guidance():
    """On correlated data the per-position restriction is an approximation; the exact conditional is guidance
    by p(y | x_t) = P(x_1 in S^D | x_t)."""
    path, data = make_path("mask+ko"), toy_data()
    ok = torch.isin(data.support, torch.tensor([0, 1, 2])).all(-1)
    lik = ok.to(torch.get_default_dtype())

    def ll(x, t):
        return per_state(x, t, lambda u, tu: (posterior_weights(path, data, u, tu) * lik).sum(-1).log())

    x0 = torch.full((N, D), MASK)
    got = draw(path, data, x0, condition=Conditioning(guidance=PredictorGuidance(ll, method="exact", chunk=1 << 20)))
    assert total_variation(got, law_of(data, ok), K) < TOL


def refinement_law(path, data: FiniteData, seed: torch.Tensor, t0: float) -> torch.Tensor:
    """sum_x p_t0(x | z) p(x_1 | x_t0 = x) over all states x (the mask included) and the data support."""
    states = all_states(K, D)  # [S, D]
    p = path.probs(seed.unsqueeze(0), torch.tensor([t0]))[0]  # [D, K]
    p_x = p[torch.arange(D), states].prod(-1)  # [S]
    live = p_x > 0
    w = posterior_weights(path, data, states[live], t0)  # [S', M]
    out = torch.zeros(K ** D)
    out.index_add_(0, state_index(data.support, K), (p_x[live, None] * w).sum(0))
    return out


@pytest.mark.parametrize("name", ["mask+ko", "metric"])
def test_refinement_from_an_intermediate_time(name):
    path, data = make_path(name), toy_data()
    seed, t0 = torch.tensor([0, 1, 2]), 0.5
    target = refinement_law(path, data, seed, t0)
    g = torch.Generator().manual_seed(5)
    x0 = path.sample(seed.expand(N, D), torch.full((N,), t0), g)
    got = draw(path, data, x0, grid=time_grid(STEPS // 2, t_min=t0))
    assert total_variation(got, target, K) < TOL
    if name == "metric":  # the clock must start at t0: from 0 the posterior ignores the seed's trace
        assert total_variation(draw(path, data, x0, grid=STEPS), target, K) > 5 * TOL
    # noised to another level than the clock says: the law of a different refinement
    x_far = path.sample(seed.expand(N, D), torch.full((N,), 0.9), g)
    assert total_variation(draw(path, data, x_far, grid=time_grid(STEPS // 2, t_min=t0)), target, K) > 3 * TOL


def test_replaced_positions_follow_their_path_and_end_at_their_value():
    path, data = make_path("metric"), toy_data()
    x0 = torch.tensor([0, 1, 2]).expand(N, D).clone()
    replace = torch.zeros(N, D, dtype=torch.bool)
    replace[:, 0] = True
    seen = []

    def spy(x, t):
        seen.append(x[:, 0].clone())
        return fast_posterior(path, data)(x, t)

    got = draw(path, data, x0, spy, grid=20, condition=Conditioning(replace=replace))
    assert bool((got[:, 0] == 0).all())
    first = torch.bincount(seen[0], minlength=K).float() / N
    assert float(first.max()) < 0.5  # at t = 0 the metric path's value is spread (uniform source), not 0
    # replacement is not exact: the posterior sees a noisy value of position 0, not the value itself (the free
    # positions concentrate on the likeliest completion; TV 0.22 to the conditional law here); they do stay in the
    # conditional support
    from manifolds.discrete.oracle import log_likelihood

    inside = torch.isfinite(log_likelihood(data, got)) & (got[:, 0] == 0)
    assert float(inside.float().mean()) > 0.95


def test_bad_masks_are_refused():
    path, data = make_path("mask+ko"), toy_data()
    x0 = torch.full((4, D), MASK)
    with pytest.raises(ValueError, match="replace mask shape"):
        draw(path, data, x0, condition=Conditioning(replace=torch.zeros(4, D + 1, dtype=torch.bool)))
    with pytest.raises(ValueError, match="without any token"):
        draw(path, data, x0, condition=Conditioning(allowed=torch.zeros(1, D, K, dtype=torch.bool)))
