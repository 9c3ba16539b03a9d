"""Affine Gaussian paths on R^d: closed forms vs autograd / GM eq. 13, and the exact jump-target sampler."""

from __future__ import annotations

import math

import pytest
import torch

from manifolds.oracle import KS_CRIT_1PCT, cdf_from_density, ks_statistic
from manifolds.paths import AffineGaussianPath
from manifolds.truncated import sample_quadratic_normal

pytestmark = pytest.mark.usefixtures("float64_one_thread")


def test_dt_log_prob_and_velocity_closed_forms():
    g = torch.Generator().manual_seed(0)
    path = AffineGaussianPath(noise_scale=2.0)
    z = torch.randn(64, 3, generator=g)
    x = 3 * torch.randn(64, 3, generator=g)
    t = torch.rand(64, generator=g) * 0.9 + 0.05
    tt = t.clone().requires_grad_(True)
    lp = path.log_prob(x, z, tt)
    auto, = torch.autograd.grad(lp.sum(), tt)
    assert (path.dt_log_prob(x, z, t) - auto).abs().max() < 1e-10
    # velocity = d/dt (sigma_t x0 + alpha_t z) at fixed x0
    x0 = path.sample_source(z, g)
    xt = (1 - t)[:, None] * x0 + t[:, None] * z
    assert (path.velocity(xt, z, t) - (z - x0)).abs().max() < 1e-12


def test_condot_intensity_is_gm_eq13():
    g = torch.Generator().manual_seed(1)
    path = AffineGaussianPath()
    z, x = torch.randn(200, 1, generator=g), 2 * torch.randn(200, 1, generator=g)
    t = torch.rand(200, generator=g)[:, None] * 0.95
    k = x ** 2 - (t + 1) * x * z - (1 - t) ** 2 + t * z ** 2
    assert (path.jump_intensity(x, z, t[:, 0]) - k.clamp_min(0) / (1 - t) ** 3).abs().max() < 1e-9


def test_jump_target_normalised_and_mass_balanced():
    """J_t = [dp]_+ / int [dp]_+ integrates to one and int [dp]_+ = int [-dp]_+ (so the jump KFE holds).
    Tolerances 1e-5: trapezoid error at the kinks of [.]_+ on a 2.5e-4 grid."""
    path = AffineGaussianPath(noise_scale=1.5)
    y = torch.linspace(-25, 25, 200001)[:, None]
    for t, zval in [(0.1, 0.0), (0.5, 2.0), (0.9, -4.0)]:
        z = torch.full_like(y, zval)
        dens = path.jump_density(y, z, t)[:, 0]
        assert abs(float(torch.trapezoid(dens, y[:, 0])) - 1) < 1e-5
        dp = torch.exp(path.element_log_prob(y, z, t)) * path.element_dt_log_prob(y, z, t)
        pos, neg = torch.trapezoid(dp.clamp_min(0)[:, 0], y[:, 0]), torch.trapezoid((-dp).clamp_min(0)[:, 0], y[:, 0])
        assert abs(float(pos - neg)) < 1e-5 * float(pos)
        assert (dens * pos - dp[:, 0].clamp_min(0)).abs().max() < 1e-5 * float(dp.abs().max())


def _ks_against_density(sample: torch.Tensor, grid: torch.Tensor, dens: torch.Tensor) -> float:
    return ks_statistic(sample, cdf_from_density(grid, dens))


@pytest.mark.parametrize("t,zval", [(0.05, 0.3), (0.5, 2.0), (0.95, -3.0)])
def test_jump_target_sampler_is_exact(t, zval):
    n = 20000
    g = torch.Generator().manual_seed(2)
    path = AffineGaussianPath()
    z = torch.full((n, 1), zval)
    y = path.sample_jump_target(z, t, rng=g)
    grid = torch.linspace(zval * t - 8, zval * t + 8, 100001)[:, None]
    dens = path.jump_density(grid, torch.full_like(grid, zval), t)[:, 0]
    crit = KS_CRIT_1PCT / math.sqrt(n)
    assert _ks_against_density(y, grid[:, 0], dens) < crit
    wrong = path.jump_density(grid, torch.full_like(grid, zval), min(t + 0.1, 0.99))[:, 0]
    assert _ks_against_density(y, grid[:, 0], wrong) > crit


def test_quadratic_normal_sampler():
    g = torch.Generator().manual_seed(3)
    n = 20000
    c0, c1, c2 = torch.tensor(1.0), torch.tensor(0.5), torch.tensor(-1.0)
    disc = math.sqrt(0.25 + 4)
    lo, hi = torch.tensor((-0.5 - disc) / -2), torch.tensor((-0.5 + disc) / -2)
    lo, hi = torch.minimum(lo, hi), torch.maximum(lo, hi)
    u = sample_quadratic_normal(c0.expand(n), c1, c2, lo, hi, rng=g)
    assert float(u.min()) >= float(lo) and float(u.max()) <= float(hi)
    grid = torch.linspace(float(lo), float(hi), 20001)
    dens = torch.exp(-grid ** 2 / 2) * (c0 + c1 * grid + c2 * grid ** 2)
    assert _ks_against_density(u, grid, dens) < KS_CRIT_1PCT / math.sqrt(n)
