"""Exact oracles for predictor guidance (Nisonoff et al. 2024): on a finite data set q with a known p(y | x), the
likelihood of a noisy state p(y | x_t, t) = sum_m p(z_m | x_t) p(y | z_m) is exact, so the guided sampler must
sample p(x | y) proportional to q(x) p(y | x). Tolerances: 20,000 samples over six support points give a sampling
TV of about 0.005; discretisation with 100 steps adds about as much; the tests allow 0.02. Wrong guidance weights
(the ratio squared, no guidance) must land far outside it, and the first-order form must recover most of the way."""

from __future__ import annotations

import pytest
import torch

from discrete_toys import D, K, MASK, make_path, toy_data
from manifolds.discrete import Conditioning, DiscreteGenerator, PredictorGuidance, PresenceGuidance, combine, sample
from manifolds.discrete.guidance import _exclusive_prod
from manifolds.discrete.oracle import FiniteData, posterior_logits_fn, posterior_weights, total_variation

N, STEPS, TOL = 20000, 100, 0.02
CHUNK = 1 << 20  # exact guidance: every neighbour of the batch in one oracle call


def clean_likelihood(support: torch.Tensor) -> torch.Tensor:
    """p(y | z) for the observation y of these tests: high when z^0 > z^2 (varies 0.05 .. 0.95 over the data)."""
    return torch.sigmoid(2.0 * (support[:, 0] - support[:, 2]).double() - 0.5).to(torch.get_default_dtype())


def exact_log_likelihood(path, data: FiniteData, lik: torch.Tensor):
    """log p(y | x_t, t) of the finite data set: long states, or a one-hot [N, D, K] (multilinear extension)."""
    def fn(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if x.dtype != torch.long:  # soft one-hot: p_t(x^i | a) -> sum_x e(x) p_t(x | a)
            table = path.probs(torch.arange(K).unsqueeze(0), t[:1])[0]  # [K(a), K(x)]
            per = (x @ table.t())[:, torch.arange(D), data.support]  # [N, M, D]
            w = data.probs * per.prod(-1)  # [N, M]
            return (w * lik).sum(-1).log() - w.sum(-1).log()
        return per_state(x, t, lambda u, tu: (posterior_weights(path, data, u, tu) * lik).sum(-1).log())
    return fn


def fast_posterior(path, data: FiniteData):
    """The exact posterior logits (:func:`posterior_logits_fn`) tabulated over the K^D states once per time."""
    exact = posterior_logits_fn(path, data)
    from manifolds.discrete.oracle import all_states, state_index

    states, cache = all_states(K, D), {}

    def fn(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if not bool((t == t[0]).all()):
            return exact(x, t)
        key = float(t[0])
        if key not in cache:
            cache.clear()
            cache[key] = exact(states, t[:1].expand(states.shape[0]))  # [K^D, D, K]
        return cache[key][state_index(x, K)]
    return fn


def per_state(x: torch.Tensor, t: torch.Tensor, fn) -> torch.Tensor:
    """``fn`` over all K^D states once per distinct time of the batch, then looked up (the oracle depends on
    nothing but the state and the time)."""
    from manifolds.discrete.oracle import all_states, state_index

    out = torch.empty(x.shape[0], dtype=torch.get_default_dtype())
    idx = state_index(x, K)
    states = all_states(K, D)
    for tu in torch.unique(t):
        rows = t == tu
        with torch.no_grad():
            table = fn(states, tu.expand(states.shape[0]))  # [K^D]
        out[rows] = table[idx[rows]]
    return out


def guided_target(data: FiniteData, lik: torch.Tensor) -> torch.Tensor:
    """p(x | y) over all K^D states."""
    from manifolds.discrete.oracle import state_index

    p = torch.zeros(K ** D)
    p.index_add_(0, state_index(data.support, K), data.probs * lik)
    return p / p.sum()


def run(path, data, guidance=None, seed=0, **kw) -> torch.Tensor:
    gen = DiscreteGenerator(path)
    x0 = path.sample_source(torch.zeros(N, D, dtype=torch.long))
    return sample(gen, fast_posterior(path, data), x0, STEPS, condition=Conditioning(guidance=guidance),
                  rng=torch.Generator().manual_seed(seed), **kw)


@pytest.mark.parametrize("name", ["mask+ko", "mask+linear"])
def test_exact_guidance_samples_the_conditional_law(name):
    path, data = make_path(name), toy_data()
    lik = clean_likelihood(data.support)
    target = guided_target(data, lik)
    ll = exact_log_likelihood(path, data, lik)
    got = total_variation(run(path, data, PredictorGuidance(ll, method="exact", chunk=CHUNK)), target, K)
    assert got < TOL, f"exact guidance: TV {got:.4f} to p(x | y)"
    # the wrong weights: no guidance, and the ratio squared (strength 2 is p(y | x_t)^2, not p(y | x)^2)
    unguided = total_variation(run(path, data), target, K)
    squared_guidance = PredictorGuidance(ll, strength=2.0, method="exact", chunk=CHUNK)
    squared = total_variation(run(path, data, squared_guidance), target, K)
    assert unguided > 10 * TOL and squared > 3 * TOL, (unguided, squared)


def test_first_order_guidance_moves_toward_the_conditional():
    """TAG (one gradient per step) linearises log p(y | e, t) in the one-hot e. For the oracle's multilinear
    extension at a masked position that gives kappa / (1 - kappa) (p(a | y, x) - p(a | x)) instead of
    log(p(a | y, x) / p(a | x)): weak early, strong late. It is an approximation whose quality depends on how the
    likelihood extends off the one-hot vertices; here it must still move the law toward p(x | y)."""
    path, data = make_path("mask+ko"), toy_data()
    lik = clean_likelihood(data.support)
    target = guided_target(data, lik)
    ll = exact_log_likelihood(path, data, lik)
    first = total_variation(run(path, data, PredictorGuidance(ll, method="first_order")), target, K)
    unguided = total_variation(run(path, data), target, K)
    assert first < unguided - 0.05, (first, unguided)


def test_first_order_gradient_equals_the_exact_ratio_of_a_linear_log_likelihood():
    """When log p(y | e) is linear in the one-hot, the first-order ratio is exact."""
    w = torch.randn(D, K, generator=torch.Generator().manual_seed(3))

    def ll(x, t):
        e = x if x.dtype != torch.long else torch.nn.functional.one_hot(x, K).float()
        return (e * w).sum((-1, -2))

    x = torch.tensor([[MASK, 1, MASK], [0, MASK, 3]])
    t = torch.full((2,), 0.3)
    cand = torch.ones(2, D, K, dtype=torch.bool) & ~torch.nn.functional.one_hot(x, K).bool()
    probs = torch.full((2, D, K), 1.0 / K)
    a = PredictorGuidance(ll, method="first_order").log_ratios(x, t, probs, cand)
    b = PredictorGuidance(ll, method="exact", chunk=5).log_ratios(x, t, probs, cand)
    assert torch.allclose(a, b, atol=1e-5)


def product_data(marginals: torch.Tensor) -> FiniteData:
    """q(x) = prod_i marginals[i, x^i] over [K-1]^D (no mask token in the data)."""
    from manifolds.discrete.oracle import all_states

    states = all_states(K - 1, D)
    probs = marginals[torch.arange(D), states].prod(-1)
    keep = probs > 0
    return FiniteData(states[keep], probs[keep] / probs[keep].sum())


MARGINALS = torch.tensor([[0.4, 0.3, 0.2, 0.1], [0.1, 0.2, 0.3, 0.4], [0.25, 0.25, 0.4, 0.1]])


def test_presence_guidance_samples_at_least_one_required_token():
    """y = 'token 3 appears somewhere': exact on a product law (the factorised likelihood is then exact)."""
    path, data = make_path("mask+ko"), product_data(MARGINALS)
    lik = (data.support == 3).any(-1).to(torch.get_default_dtype())
    target = guided_target(data, lik)
    every = torch.ones(D, dtype=torch.bool)
    got = run(path, data, PresenceGuidance((3,), every))
    assert total_variation(got, target, K) < TOL
    assert float((got == 3).any(-1).float().mean()) > 0.995  # the discretised last step may rarely miss
    for wrong in (None, PresenceGuidance((3,), every, strength=2.0)):
        assert total_variation(run(path, data, wrong), target, K) > 3 * TOL


def test_presence_of_two_tokens_and_combined_guidance():
    """Two required tokens (inclusion-exclusion over 4 subsets). Combining guidances multiplies the noisy
    likelihoods p(y1 | x_t) p(y2 | x_t), which is not p(y1, y2 | x_t) in general (y1, y2 are dependent given a
    noisy state even when independent given x_1): it adds the log ratios, checked as such."""
    path, data = make_path("mask+ko"), product_data(MARGINALS)
    need = ((data.support == 0).any(-1) & (data.support == 3).any(-1)).to(torch.get_default_dtype())
    every = torch.ones(D, dtype=torch.bool)
    got = run(path, data, PresenceGuidance((0, 3), every))
    assert total_variation(got, guided_target(data, need), K) < TOL
    parts = (PresenceGuidance((3,), every), PresenceGuidance((0,), every, strength=0.5))
    x = torch.tensor([[MASK, 1, MASK], [0, MASK, 2]])
    t, probs = torch.full((2,), 0.4), torch.softmax(torch.randn(2, D, K), -1)
    cand = ~torch.nn.functional.one_hot(x, K).bool()
    both = combine(*parts, None).log_ratios(x, t, probs, cand)
    assert torch.allclose(both, sum(g.log_ratios(x, t, probs, cand) for g in parts))
    assert combine(None) is None and combine(parts[0]) is parts[0]


def test_exclusive_product():
    f = torch.tensor([[0.5, 0.0, 2.0, 3.0]])
    assert torch.equal(_exclusive_prod(f), torch.tensor([[0.0, 3.0, 0.0, 0.0]]))
    g = torch.tensor([[0.5, 0.25, 2.0]])
    assert torch.allclose(_exclusive_prod(g), torch.tensor([[0.5, 1.0, 0.125]]))


def test_guidance_refuses_bad_settings_and_generators_without_marginal_rates():
    with pytest.raises(ValueError, match="method"):
        PredictorGuidance(lambda x, t: x, method="second")
    with pytest.raises(ValueError, match="strength"):
        PredictorGuidance(lambda x, t: x, strength=0.0)
    with pytest.raises(ValueError, match="required"):
        PresenceGuidance((), torch.ones(D, dtype=torch.bool))
    from manifolds.discrete import KineticOptimalScheduler, MixturePath, mask_source

    big = MixturePath(mask_source(200, 199), KineticOptimalScheduler(mask_source(200, 199)))
    gen = DiscreteGenerator(big, corrector=1.0)  # no closed-form marginal rates, K too large for O(K^2)
    with pytest.raises(ValueError, match="marginal rates"):
        sample(gen, lambda x, t: torch.zeros(x.shape + (200,)), torch.full((1, 2), 199), 4,
               condition=Conditioning(guidance=PresenceGuidance((0,), torch.ones(2, dtype=torch.bool))))
