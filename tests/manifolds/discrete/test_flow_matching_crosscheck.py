"""Cross-check against Meta's flow_matching 1.0.10 (test-only dependency, CC-BY-NC; never imported by library
code) on the mask path with the polynomial scheduler: path samples, ELBO integrand (their generalized KL is
minus KO eq. 37's integrand) and the transition probabilities of one Euler step (with and without their
divergence-free term, which is KO eq. 35's corrector on this path)."""

from __future__ import annotations

import pytest
import torch
from flow_matching.loss import MixturePathGeneralizedKL
from flow_matching.path import MixtureDiscreteProbPath
from flow_matching.path.scheduler import PolynomialConvexScheduler
from flow_matching.solver import MixtureDiscreteEulerSolver
from flow_matching.utils import ModelWrapper

from manifolds.discrete import (DiscreteGenerator, MixturePath, PolynomialScheduler, jump_probs, mask_source,
                                mixture_elbo_integrand)

K, D, MASK, N_POLY = 6, 4, 5, 3.0


def paths():
    return (MixturePath(mask_source(K, MASK), PolynomialScheduler(N_POLY)),
            MixtureDiscreteProbPath(PolynomialConvexScheduler(n=N_POLY)))


def test_path_samples_identical():
    ours, theirs = paths()
    g = torch.Generator().manual_seed(0)
    x1 = torch.randint(0, MASK, (512, D), generator=g)
    t = torch.rand(512, generator=g)
    torch.manual_seed(123)
    ref = theirs.sample(torch.full_like(x1, MASK), x1, t).x_t
    torch.manual_seed(123)
    got = ours.sample(x1, t)
    assert torch.equal(got, ref)
    assert 0 < int((got == MASK).sum()) < got.numel()


def test_elbo_integrand_equals_their_generalized_kl():
    ours, theirs = paths()
    g = torch.Generator().manual_seed(1)
    B = 256
    x1 = torch.randint(0, MASK, (B, D), generator=g)
    t = torch.rand(B, generator=g) * 0.98 + 0.01
    xt = ours.sample(x1, t, g)
    logits = 3 * torch.randn(B, D, K, generator=g)
    ref = -MixturePathGeneralizedKL(theirs, reduction="none")(logits, x1, xt, t).sum(-1)
    got = mixture_elbo_integrand(logits, x1, xt, ours, t)
    torch.testing.assert_close(got, ref, atol=1e-4, rtol=1e-5)


class FixedPosterior(ModelWrapper):
    """Their model interface: returns the given posterior probabilities, whatever x and t."""

    def __init__(self, probs: torch.Tensor) -> None:
        super().__init__(torch.nn.Identity())
        self.probs = probs

    def forward(self, x: torch.Tensor, t: torch.Tensor, **extras) -> torch.Tensor:
        return self.probs


def our_transition(gen: DiscreteGenerator, xt: torch.Tensor, t: float, h: float, post: torch.Tensor):
    """P(X_{t+h} = y | X_t) = sum_a p_{1|t}(a) P_step(y | X_t, x1 = a): the exact law of our posterior step."""
    out = torch.zeros(xt.shape + (K,), dtype=torch.float64)
    for a in range(K):
        rates = gen.rates(xt, torch.full_like(xt, a), t)
        out += post[..., a:a + 1].double() * jump_probs(xt, rates, h).double()
    return out


@pytest.mark.parametrize("div_free", [0.0, 0.8])
def test_euler_step_transition_probabilities_equal_theirs(div_free):
    ours, theirs = paths()
    t, h, reps = 0.4, 0.1, 40000
    xt = torch.tensor([[MASK, MASK, 2, MASK]])  # [1, D]
    g = torch.Generator().manual_seed(2)
    post = torch.softmax(2 * torch.randn(1, D, K, generator=g), -1)
    post[..., MASK] = 0.0  # the mask token is never data
    post[0, 2] = torch.nn.functional.one_hot(torch.tensor(2), K).float()  # unmasked tokens carry over
    post = post / post.sum(-1, keepdim=True)
    gen = DiscreteGenerator(ours, corrector=div_free)
    exact = our_transition(gen, xt, t, h, post)[0]  # [D, K]
    torch.testing.assert_close(exact.sum(-1), torch.ones(D, dtype=torch.float64))

    # Their solver: one regular Euler step on [t, t+h] (its last step would just draw x1), many replicas.
    solver = MixtureDiscreteEulerSolver(FixedPosterior(post.expand(reps, D, K)), theirs, K,
                                        source_distribution_p=mask_source(K, MASK))
    torch.manual_seed(3)
    traj = solver.sample(xt.expand(reps, D).clone(), step_size=None, div_free=div_free,
                         time_grid=torch.tensor([t, t + h, t + 2 * h]), return_intermediates=True)
    theirs_freq = torch.nn.functional.one_hot(traj[1], K).double().mean(0)  # [D, K]

    # Our sampler's step, same replicas.
    rng = torch.Generator().manual_seed(4)
    z = torch.multinomial(post[0], reps, replacement=True, generator=rng).t()  # [reps, D]
    ours_freq = torch.nn.functional.one_hot(gen.step(xt.expand(reps, D), t, h, z, rng), K).double().mean(0)

    se = (exact * (1 - exact) / reps).sqrt()
    assert bool(((theirs_freq - exact).abs() <= 5 * se + 1e-4).all()), (theirs_freq, exact)
    assert bool(((ours_freq - exact).abs() <= 5 * se + 1e-4).all()), (ours_freq, exact)
    if div_free:  # the corrector re-masks the unmasked position
        assert float(exact[2, MASK]) > 0.01
