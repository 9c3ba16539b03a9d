"""Exact-oracle tests (issue 4, item 5): on a finite data set of sequences (D = 3, K = 5) the exact posterior
drives the sampler; the empirical law of the full sequences must match the exact marginal p_t at t = 0.5 (a
KFE check at an intermediate time) and the data at t = 1, in total variation, for every path and velocity,
each with the corrector too. Negative controls show that a wrong velocity or a non-preserving "corrector"
fails the same tolerance.

Tolerance: TV <= 1.5 * E[TV of N exact draws] + 0.02 (the Euler error of 50 + 50 steps; 100 + 100 with the
corrector, whose extra jumps make the first-order error of factorised steps larger), where
E[TV] ~ 0.5 sum_s sqrt(2 p_s (1 - p_s) / (pi N)) is the sampling-noise floor of the exact law p.
"""

from __future__ import annotations

import math

import pytest
import torch

from manifolds.discrete import DiscreteGenerator, MixturePath, PolynomialScheduler, mask_source, sample
from manifolds.discrete.oracle import marginal_probs, posterior_logits_fn, total_variation
from manifolds.samplers import time_grid
from discrete_toys import D, K, MASK, make_path, toy_data

N = 20000
STEPS = 50  # per half of [0, 1]


def tv_tolerance(p: torch.Tensor, n: int = N, euler: float = 0.02) -> float:
    noise = 0.5 * float((2 * p * (1 - p) / (math.pi * n)).sqrt().sum())
    return 1.5 * noise + euler


def bump(t: torch.Tensor) -> torch.Tensor:
    """Corrector weight 2 t (1 - t): 1/2 at t = 1/2, vanishing where the corrector's rates blow up (t -> 0, 1)."""
    return 2 * t * (1 - t)


def run_oracle(gen: DiscreteGenerator, path, method: str = "posterior", seed: int = 0, steps: int = STEPS):
    """TV to p_{1/2} after [0, 1/2] and TV to the data after [1/2, 1]; returns (tv_mid, tol_mid, tv_end, tol_end)."""
    data = toy_data()
    post = posterior_logits_fn(path, data)
    rng = torch.Generator().manual_seed(seed)
    x = path.sample_source(torch.zeros(N, D, dtype=torch.long), rng)
    x = sample(gen, post, x, time_grid(steps, 0.0, 0.5), method=method, rng=rng)
    p_mid = marginal_probs(path, data, 0.5)
    tv_mid = total_variation(x, p_mid, K)
    x = sample(gen, post, x, time_grid(steps, 0.5, 1.0), method=method, rng=rng)
    p_end = marginal_probs(path, data, 1.0)
    return tv_mid, tv_tolerance(p_mid), total_variation(x, p_end, K), tv_tolerance(p_end)


CASES = [  # (path, power, corrector, sampling method)
    ("mask+linear", 1.0, 0.0, "posterior"), ("mask+linear", 1.0, bump, "posterior"),
    ("mask+ko", 1.0, 0.0, "posterior"), ("mask+ko", 1.0, bump, "posterior"),
    ("uniform+ko", 1.0, 0.0, "posterior"), ("uniform+ko", 1.0, bump, "posterior"),
    ("stats+ko", 1.0, 0.0, "posterior"), ("stats+ko", 1.0, bump, "posterior"),
    ("metric", 1.0, 0.0, "posterior"), ("metric", 1.0, bump, "posterior"),
    ("uniform+ko", math.inf, 0.0, "posterior"),
    pytest.param("uniform+ko", math.inf, bump, "posterior", marks=pytest.mark.slow),
    ("metric", math.inf, 0.0, "posterior"),
    ("mask+linear", 1.0, 0.0, "marginal"), ("stats+ko", 1.0, 0.0, "marginal"),  # KO eq. 76 Euler steps
    ("metric", 1.0, 0.0, "marginal"),  # KO eq. 9, O(K^2) per position
]


def _case_id(case) -> str:
    n, p, c, m = case.values if hasattr(case, "values") else case
    return f"{n}-p{p}-{'corr' if c else 'plain'}-{m}"


@pytest.mark.parametrize("name,power,corr,method", CASES, ids=[_case_id(c) for c in CASES])
def test_oracle_sampling_matches_exact_marginals(name, power, corr, method):
    path = make_path(name)
    gen = DiscreteGenerator(path, power=power, corrector=corr)
    tv_mid, tol_mid, tv_end, tol_end = run_oracle(gen, path, method, steps=2 * STEPS if corr else STEPS)
    assert tv_mid <= tol_mid, f"t=0.5: TV {tv_mid:.4f} > {tol_mid:.4f}"
    assert tv_end <= tol_end, f"t=1: TV {tv_end:.4f} > {tol_end:.4f}"


def test_wrong_velocity_fails_the_same_check():
    """The cubic-scheduler velocity on the linear-scheduler path (posterior still exact) is off at t = 1/2."""
    path = make_path("mask+linear")
    wrong = DiscreteGenerator(MixturePath(mask_source(K, MASK), PolynomialScheduler(3.0)))
    tv_mid, tol_mid, _, _ = run_oracle(wrong, path)
    assert tv_mid > 3 * tol_mid


class OneWayCorrector(DiscreteGenerator):
    """Adds only the re-masking half of the corrector flux: not divergence-free, so p_t is not preserved."""

    def rates(self, x, z, t):
        base = super().rates(x, z, t)
        t = torch.as_tensor(t).reshape(-1, *([1] * (x.ndim - 1)))
        back = torch.where(x == z, 1.0 / t.clamp_min(0.05), torch.zeros_like(t.expand(x.shape)))  # x1 -> mask
        extra = torch.zeros_like(base).scatter(-1, torch.full_like(x, MASK).unsqueeze(-1), back.unsqueeze(-1))
        return base + extra.scatter_add(-1, x.unsqueeze(-1), -back.unsqueeze(-1))


def test_non_preserving_corrector_fails_the_same_check():
    path = make_path("mask+linear")
    tv_mid, tol_mid, _, _ = run_oracle(OneWayCorrector(path, closed_form=False), path)
    assert tv_mid > 3 * tol_mid
