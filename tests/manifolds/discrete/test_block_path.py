"""BlockPath: a mask mixture path for one kind of token and a metric-induced path (KO eq. 27) on a ring of
tokens for another, in one vocabulary (the crystal flow with metric coordinates uses it).

Exact oracle: a finite data set whose first position holds "outer" tokens and whose other two hold ring tokens;
the exact posterior drives the generic kinetic-optimal sampler (KO eq. 26 on the whole path), and the law of the
full sequences must match the exact marginal at t = 1/2 and the data at t = 1 in total variation (tolerance as in
test_oracle.py: 1.5 x the sampling-noise floor + 0.02 Euler error). A generator built for another beta_t fails.
"""

from __future__ import annotations

import math

import pytest
import torch

from manifolds.discrete import (BlockPath, DiscreteGenerator, KineticOptimalScheduler, MetricPath, MixturePath,
                                RatioPowerBeta, mask_source, ring_distance, sample)
from manifolds.discrete.oracle import FiniteData, marginal_probs, posterior_logits_fn, total_variation
from manifolds.samplers import time_grid

K, MASK, OFFSET, RING = 7, 6, 2, 4  # tokens 0, 1: outer kind; 2..5: a ring of 4; 6: mask
N, STEPS = 20000, 50


def block_path(c: float = 2.0) -> BlockPath:
    outer = MixturePath(mask_source(K, MASK), KineticOptimalScheduler(mask_source(K, MASK)))
    return BlockPath(outer, MetricPath(ring_distance(RING), RatioPowerBeta(c=c, a=1.0)), OFFSET)


def data() -> FiniteData:
    support = torch.tensor([[0, 2, 5], [1, 3, 3], [0, 4, 2], [1, 5, 4], [0, 2, 3]])
    return FiniteData(support, torch.tensor([0.3, 0.25, 0.2, 0.15, 0.1]))


def tv_tolerance(p: torch.Tensor, n: int = N, euler: float = 0.02) -> float:
    return 1.5 * 0.5 * float((2 * p * (1 - p) / (math.pi * n)).sqrt().sum()) + euler


def run(gen: DiscreteGenerator, path: BlockPath, seed: int = 0) -> tuple[float, float, float, float]:
    d = data()
    post = posterior_logits_fn(path, d)
    rng = torch.Generator().manual_seed(seed)
    x = path.sample_source(d.support[:1].expand(N, -1), rng)  # MASK, uniform ring, uniform ring
    x = sample(gen, post, x, time_grid(STEPS, 0.0, 0.5), rng=rng)
    p_mid = marginal_probs(path, d, 0.5)
    tv_mid = total_variation(x, p_mid, K)
    x = sample(gen, post, x, time_grid(STEPS, 0.5, 1.0), rng=rng)
    p_end = marginal_probs(path, d, 1.0)
    return tv_mid, tv_tolerance(p_mid), total_variation(x, p_end, K), tv_tolerance(p_end)


def test_ring_distance() -> None:
    d = ring_distance(100)
    assert d[0, 99] == pytest.approx(0.02) and d[0, 50] == 1.0 and d[3, 3] == 0 and torch.equal(d, d.T)
    with pytest.raises(ValueError):
        ring_distance(1)


def test_probs_are_the_branch_of_the_data_token() -> None:
    path = block_path()
    z = torch.tensor([[0, 2, 5]])
    t = torch.tensor([0.3])
    p, dp, dlogp = path.derivatives(z, t)
    assert torch.allclose(p.sum(-1), torch.ones(1, 3)) and torch.allclose(dp.sum(-1), torch.zeros(1, 3), atol=1e-6)
    assert p[0, 0, MASK] == pytest.approx(1 - math.sin(math.pi * 0.3 / 2) ** 2, abs=1e-6)  # KO-DFM kappa
    assert (p[0, 1:, :OFFSET] == 0).all() and (p[0, 1:, MASK] == 0).all()  # ring positions never mask
    inner = path.inner.probs(torch.tensor([[0, 3]]), t)
    assert torch.allclose(p[0, 1:, OFFSET:OFFSET + RING], inner[0])
    h = 1e-4
    fd = (path.probs(z, t + h) - path.probs(z, t - h)) / (2 * h)
    assert torch.allclose(fd, dp, atol=1e-3)
    assert torch.isnan(dlogp[0, 1, 0]) and torch.isfinite(dlogp[0, 1, OFFSET:OFFSET + RING]).all()
    # sampling: t = 0 is the source of each kind, t = 1 the data
    src = path.sample(z.expand(4000, -1), torch.zeros(4000))
    assert (src[:, 0] == MASK).all() and ((src[:, 1:] >= OFFSET) & (src[:, 1:] < OFFSET + RING)).all()
    assert torch.bincount(src[:, 1] - OFFSET, minlength=RING).min() > 900  # uniform over the ring
    assert torch.equal(path.sample(z, torch.ones(1)), z)


@pytest.mark.parametrize("closed_form", [True, pytest.param(False, marks=pytest.mark.slow)],
                         ids=["branchwise", "full-column"])
def test_oracle_sampling_matches_exact_marginals(closed_form: bool) -> None:
    """Branch-by-branch steps (the default) and the O(K) column of the whole path (KO eq. 26) both pass."""
    path = block_path()
    tv_mid, tol_mid, tv_end, tol_end = run(DiscreteGenerator(path, closed_form=closed_form), path)
    assert tv_mid <= tol_mid, f"t=0.5: TV {tv_mid:.4f} > {tol_mid:.4f}"
    assert tv_end <= tol_end, f"t=1: TV {tv_end:.4f} > {tol_end:.4f}"


@pytest.mark.slow
def test_oracle_with_corrector() -> None:
    path = block_path()
    gen = DiscreteGenerator(path, corrector=lambda t: 2 * t * (1 - t))
    tv_mid, tol_mid, tv_end, tol_end = run(gen, path, seed=1)
    assert tv_mid <= tol_mid and tv_end <= tol_end, (tv_mid, tol_mid, tv_end, tol_end)


def test_wrong_beta_fails_the_same_check() -> None:
    """The velocity of beta_t = 0.1 t / (1 - t) on the path of beta_t = 2 t / (1 - t): off at t = 1/2."""
    path = block_path(c=2.0)
    tv_mid, tol_mid, _, _ = run(DiscreteGenerator(block_path(c=0.1)), path)
    assert tv_mid > 2 * tol_mid, (tv_mid, tol_mid)  # measured 0.115 vs tolerance 0.048


def test_block_must_fit() -> None:
    outer = MixturePath(mask_source(K, MASK), KineticOptimalScheduler(mask_source(K, MASK)))
    with pytest.raises(ValueError, match="block"):
        BlockPath(outer, MetricPath(ring_distance(RING), RatioPowerBeta()), K - 2)
