"""Losses: cross-entropy (KO eq. 11), the mixture-path ELBO (KO eq. 37, with KO appendix E.1's change of
variables), the general ELBO (KO eq. 36); the ELBO lower-bounds the exact log-likelihood of the exact model."""

from __future__ import annotations

import math

import pytest
import torch

from discrete_toys import D, K, MASK, make_path, toy_data
from manifolds.discrete import (DiscreteGenerator, MixturePath, cross_entropy, general_elbo_integrand, mixture_elbo,
                                mixture_elbo_integrand)
from manifolds.discrete.oracle import all_states, log_likelihood, posterior_logits_fn, token_likelihoods


def test_cross_entropy_and_generator_loss():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(4, D, K, generator=g)
    x1 = torch.randint(0, K, (4, D), generator=g)
    ce = cross_entropy(logits, x1)
    ref = torch.nn.functional.cross_entropy(logits.reshape(-1, K), x1.reshape(-1), reduction="none").reshape(4, D)
    torch.testing.assert_close(ce, ref.sum(-1))
    gen = DiscreteGenerator(make_path("mask+linear"))
    torch.testing.assert_close(gen.loss(logits, gen.target(x1, x1, 0.3)), ce)
    mask = torch.tensor([[True, False, True]]).expand(4, D)
    torch.testing.assert_close(cross_entropy(logits, x1, mask), (ref * mask).sum(-1))


@pytest.mark.parametrize("name", ["mask+linear", "mask+ko", "uniform+ko", "stats+ko"])
def test_mixture_elbo_integrand_equals_general_eq36(name):
    """KO eq. 37 is eq. 36 with the closed-form marginal velocity (eq. 76) of the mixture path."""
    path: MixturePath = make_path(name)
    g = torch.Generator().manual_seed(1)
    B = 300
    x1 = torch.randint(0, MASK, (B, D), generator=g)
    t = torch.rand(B, generator=g) * 0.96 + 0.02
    xt = path.sample(x1, t, g)
    logits = 2 * torch.randn(B, D, K, generator=g)
    closed = mixture_elbo_integrand(logits, x1, xt, path, t)
    general = general_elbo_integrand(DiscreteGenerator(path, closed_form=False), logits, x1, xt, t)
    torch.testing.assert_close(closed, general, atol=2e-4, rtol=2e-4)
    fast = general_elbo_integrand(DiscreteGenerator(path), logits, x1, xt, t)
    torch.testing.assert_close(closed, fast, atol=2e-4, rtol=2e-4)


def exact_elbo(path, gen: DiscreteGenerator | None, n_t: int = 400, eps: float = 1e-4) -> torch.Tensor:
    """ELBO of every data point with the exact posterior: exact expectation over all K^D states x_t, midpoint
    rule in kappa (mixture, token-independent: KO E.1) or in t (general eq. 36) on [0, 1 - eps]. ``[M]``."""
    data = toy_data()
    post = posterior_logits_fn(path, data)
    states = all_states(K, D)  # [S, D]
    S, M = states.shape[0], data.support.shape[0]
    x1 = data.support.repeat_interleave(S, 0)  # [M*S, D]
    xt = states.repeat(M, 1)
    total = torch.zeros(M, dtype=torch.float64)
    cov = gen is None and path.scheduler.token_independent
    for j in range(n_t):
        s = (j + 0.5) / n_t * (1 - eps)
        t = float(path.scheduler.inverse(torch.tensor([s], dtype=torch.float64))) if cov else s
        tb = torch.full((M * S,), t)
        w = token_likelihoods(path, xt, tb).gather(-1, x1.unsqueeze(-1)).squeeze(-1).prod(-1).double()  # p_t(x|x1)
        live = w > 1e-100  # (far states: negligible weight, and their posteriors underflow even in float64)
        val = torch.zeros(M * S, dtype=torch.float64)
        logits = post(xt[live], tb[live])
        if gen is None:
            rate = torch.full((int(live.sum()), 1, 1), 1.0 / (1.0 - s)) if cov else None
            val[live] = mixture_elbo_integrand(logits, x1[live], xt[live], path, tb[live], token_rate=rate).double()
        else:
            val[live] = general_elbo_integrand(gen, logits, x1[live], xt[live], tb[live]).double()
        total += (w * val).reshape(M, S).sum(-1)
    return total * (1 - eps) / n_t


@pytest.mark.parametrize("name,general", [("mask+linear", False), ("mask+ko", False), ("uniform+ko", False),
                                          ("stats+ko", False), ("metric", True), ("mask+linear", True)])
def test_elbo_lower_bounds_the_exact_log_likelihood(name, general, float64):
    path = make_path(name)  # float64: exact posteriors of far states underflow in float32 (log 0 = -inf)
    data = toy_data()
    elbo = exact_elbo(path, DiscreteGenerator(path) if general else None)
    loglik = log_likelihood(data, data.support).double()
    assert bool(torch.isfinite(elbo).all())
    assert bool((elbo <= loglik + 2e-3).all()), (elbo, loglik)
    assert bool((elbo >= loglik - 6.0).all()), (elbo, loglik)  # and not vacuous


@pytest.fixture
def float64():
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


def test_mask_elbo_of_the_exact_model_is_tight():
    """For the masked path, the exact posterior's ELBO equals log q(x1) (the reverse of the masking process
    given x1 is the conditional process): a sharp check of the integrand and of the change of variables."""
    path = make_path("mask+linear")
    data = toy_data()
    torch.testing.assert_close(exact_elbo(path, None), log_likelihood(data, data.support).double(),
                               atol=5e-3, rtol=0)


@pytest.mark.parametrize("name", ["mask+linear", "uniform+ko"])
def test_monte_carlo_elbo_estimators_agree_with_quadrature(name):
    path = make_path(name)
    data = toy_data()
    reps = 400
    x1 = data.support.repeat_interleave(reps, 0)  # [M*reps, D]
    post = posterior_logits_fn(path, data)
    ref = exact_elbo(path, None)
    for cov in (True, False):
        est = mixture_elbo(post, x1, path, n_points=16, change_of_variables=cov,
                           rng=torch.Generator().manual_seed(3)).double().reshape(-1, reps)
        se = est.std(-1) / math.sqrt(reps)
        assert bool(((est.mean(-1) - ref).abs() <= 5 * se + 0.02).all()), (cov, est.mean(-1), ref, se)
