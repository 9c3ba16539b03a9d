"""The sampler (KO section 3, Algorithm 1): exponential step law, fixed positions, temperature, the
ConditionalGenerator interface (step / marginal_step), stable rates near t = 1 and clear errors."""

from __future__ import annotations

import math

import pytest
import torch

from discrete_toys import D, K, MASK, make_path
from manifolds.base import ConditionalGenerator, ProbabilityPath
from manifolds.discrete import (DiscreteGenerator, KineticOptimalScheduler, MixturePath, PolynomialScheduler,
                                jump_probs, jump_step, mask_source, sample, uniform_source)
from manifolds.discrete.sampler import tempered


def se_ok(freq: torch.Tensor, p: torch.Tensor, n: int, k: float = 5.0) -> bool:
    return bool(((freq - p).abs() <= k * (p * (1 - p) / n).sqrt() + 1e-4).all())


def test_generator_is_a_conditional_generator():
    path = make_path("mask+ko")
    gen = DiscreteGenerator(path)
    assert isinstance(gen, ConditionalGenerator) and isinstance(path, ProbabilityPath)
    x1 = torch.tensor([[0, 1, 2]])
    assert gen.target(x1, x1, 0.5).shape == (1, D, K)


def test_jump_step_law_matches_jump_probs_for_large_steps():
    """Algorithm 1 is a valid PMF for any h (here h * lambda up to ~10) and is what jump_step samples."""
    g = torch.Generator().manual_seed(0)
    n = 40000
    rates = torch.rand(1, D, K, generator=g) * torch.tensor([1.0, 5.0, 20.0]).reshape(1, D, 1)
    x = torch.tensor([[0, 2, 4]])
    rates = rates.scatter(-1, x.unsqueeze(-1), 0.0)
    rates = rates.scatter(-1, x.unsqueeze(-1), -rates.sum(-1, keepdim=True))
    for h in (0.05, 0.5):
        p = jump_probs(x, rates, h)[0]
        assert float(p.min()) >= 0 and torch.allclose(p.sum(-1), torch.ones(D))
        got = jump_step(x.expand(n, D), rates.expand(n, D, K), h, g)
        assert se_ok(torch.nn.functional.one_hot(got, K).float().mean(0), p, n)


def test_marginal_step_mixes_the_posterior_of_the_support():
    path = make_path("mask+linear")
    gen = DiscreteGenerator(path)
    support = torch.tensor([[0, 1, 2], [3, 1, 0]])
    weights = torch.tensor([[0.25, 0.75]]).expand(40000, 2)
    x = torch.full((40000, D), MASK)
    t, h = 0.5, 0.2
    out = gen.marginal_step(x, t, h, support, weights, torch.Generator().manual_seed(1))
    move = 1 - math.exp(-h * 1.0 / (1 - t))  # linear scheduler: lambda = 1 / (1 - t)
    exp0 = torch.tensor([0.25 * move, 0, 0, 0.75 * move, 1 - move])
    assert se_ok(torch.nn.functional.one_hot(out[:, 0], K).float().mean(0), exp0, 40000)


def test_fixed_positions_and_posterior_draw_at_the_end():
    path = make_path("mask+ko")
    gen = DiscreteGenerator(path)
    logits = torch.tensor([0.0, 1.0, 2.0, -1.0, -math.inf])
    post = lambda x, t: logits.expand(x.shape + (K,))  # noqa: E731
    x0 = torch.full((500, D), MASK)
    x0[:, 1] = 3
    fixed = torch.zeros(500, D, dtype=torch.bool)
    fixed[:, 1] = True
    out = sample(gen, post, x0, 20, condition=fixed, rng=torch.Generator().manual_seed(2))
    assert bool((out[:, 1] == 3).all()) and bool((out != MASK).all())


@pytest.mark.parametrize("temperature", [0.5, 2.0])
def test_temperature_scales_the_posterior(temperature):
    gen = DiscreteGenerator(make_path("mask+linear"))
    logits = torch.tensor([0.0, 1.0, 2.0, -1.0, -math.inf])
    post = lambda x, t: logits.expand(x.shape + (K,))  # noqa: E731
    n = 20000
    out = sample(gen, tempered(post, temperature), torch.full((n, 1), MASK), 1, rng=torch.Generator().manual_seed(3))
    freq = torch.nn.functional.one_hot(out[:, 0], K).float().mean(0)
    assert se_ok(freq, torch.softmax(logits / temperature, -1), n)


def test_sampler_with_a_network_shaped_posterior_is_vectorised():
    """Batched over samples and positions, vocabulary 878, no position loops: smoke-test shapes and validity."""
    V, L, B = 878, 26, 8
    gen = DiscreteGenerator(MixturePath(mask_source(V, V - 1), PolynomialScheduler(3.0)))
    w = torch.randn(V, V, generator=torch.Generator().manual_seed(4))
    w[:, V - 1] = -math.inf

    def post(x, t):
        return w[x] * t[:, None, None]

    out = sample(gen, post, torch.full((B, L), V - 1), 10, rng=torch.Generator().manual_seed(5))
    assert out.shape == (B, L) and bool((out != V - 1).all())


def test_rates_stay_finite_near_t1_in_float32():
    for sched in (KineticOptimalScheduler(uniform_source(K)), PolynomialScheduler(3.0)):
        s = sched(torch.tensor([0.5, 1 - 1e-5, 1 - 1e-7]))
        assert bool(torch.isfinite(s.rate).all()) and float(s.rate.min()) > 0
        ref = sched(torch.tensor([0.5], dtype=torch.float64))
        torch.testing.assert_close(s.rate[0].double(), (ref.dkappa / (1 - ref.kappa))[0], rtol=1e-5, atol=0)


def test_bad_inputs_raise_clear_errors():
    gen = DiscreteGenerator(make_path("mask+linear"))
    post = lambda x, t: torch.zeros(x.shape + (K,))  # noqa: E731
    x0 = torch.full((2, D), MASK)
    with pytest.raises(ValueError, match="temperature"):
        sample(gen, tempered(post, 0.0), x0, 5)
    with pytest.raises(ValueError, match="fixed mask shape"):
        sample(gen, post, x0, 5, condition=torch.zeros(3, D, dtype=torch.bool))
    with pytest.raises(ValueError, match="method"):
        sample(gen, post, x0, 5, method="euler")
    with pytest.raises(ValueError, match="steps >= 1"):
        sample(gen, post, x0, 0)
    with pytest.raises(ValueError, match="corrector"):
        DiscreteGenerator(make_path("mask+linear"), corrector=-1.0)
    with pytest.raises(TypeError, match="DiscretePath"):
        DiscreteGenerator(object())  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["mask+linear", "mask+ko", "uniform+ko", "stats+ko"])
@pytest.mark.parametrize("corr", [0.7, lambda t: 3 * t])
def test_closed_form_mixture_corrector_step_equals_the_general_column(name, corr):
    """The O(1) mixture step with corrector (no K-sized tensors) has the law of Algorithm 1 on the general
    KO eq. 26 + eq. 35 column, for every (x_t, x1) pair, including states of zero conditional probability."""
    path = make_path(name)
    fast, ref = DiscreteGenerator(path, corrector=corr), DiscreteGenerator(path, corrector=corr, closed_form=False)
    xs, zs = torch.meshgrid(torch.arange(K), torch.arange(MASK), indexing="ij")  # x1 never the mask token
    xs, zs = xs.reshape(1, -1), zs.reshape(1, -1)  # [1, P] pairs as positions
    t, h, n = 0.4, 0.3, 4000
    law = jump_probs(xs, ref.rates(xs, zs, t), h)[0]  # [P, K]
    got = fast.step(xs.expand(n, -1), t, h, zs.expand(n, -1), torch.Generator().manual_seed(6))
    assert se_ok(torch.nn.functional.one_hot(got, K).float().mean(0), law, n)
    assert float((1 - law.gather(-1, xs[0].unsqueeze(-1))).max()) > 0.2  # steps that do move
