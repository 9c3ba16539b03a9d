"""Bregman losses (GM eq. 15-17, Prop. 2), time grids, Heun's order on SO(3), superposition / product plumbing."""

from __future__ import annotations

import math

import pytest
import torch

from manifolds import samplers, so3
from manifolds.generators import DensityJumpGenerator, FlowGenerator
from manifolds.losses import bregman, jump_rate_bregman, mse
from manifolds.paths import AffineGaussianPath
from manifolds.spaces import SO3
from manifolds.superposition import Superposition, constant_weights

pytestmark = pytest.mark.usefixtures("float64_one_thread")


def test_bregman_from_phi_reproduces_mse_and_generalised_kl():
    g = torch.Generator().manual_seed(0)
    a, b = torch.rand(8, 5, generator=g) + 0.1, torch.rand(8, 5, generator=g) + 0.1
    d_sq = bregman(lambda v: (v * v).sum(-1))
    assert torch.allclose(d_sq(a, b), mse(b, a), atol=1e-12)
    d_kl = bregman(lambda v: (v * torch.log(v)).sum(-1))
    assert torch.allclose(d_kl(a, b), jump_rate_bregman(b, a), atol=1e-12)
    d_kl_explicit = bregman(lambda v: (v * torch.log(v)).sum(-1), grad_phi=lambda v: torch.log(v) + 1)
    assert torch.allclose(d_kl_explicit(a, b), d_kl(a, b), atol=1e-12)
    assert (jump_rate_bregman(b, a) >= 0).all() and jump_rate_bregman(a, a).abs().max() < 1e-12
    # zero targets (no jump) are fine: 0 log 0 = 0
    assert torch.allclose(jump_rate_bregman(b, torch.zeros_like(b)), b.sum(-1))


def test_cgm_minimiser_is_the_posterior_mean():
    """GM Prop. 2: for a Bregman D, argmin_theta E_z D(F^z, theta) = E_z F^z (here: jump rates and velocities)."""
    g = torch.Generator().manual_seed(1)
    targets = torch.rand(64, 3, generator=g) * 4  # F^z for 64 draws of z
    w = torch.rand(64, generator=g)
    w = w / w.sum()
    for loss in (jump_rate_bregman, mse):
        theta = torch.full((1, 3), 1.0, requires_grad=True)
        opt = torch.optim.LBFGS([theta], max_iter=200, tolerance_grad=1e-12, tolerance_change=1e-14)

        def closure():
            opt.zero_grad()
            val = (w * loss(theta.expand(64, 3).clamp_min(1e-9), targets)).sum()
            val.backward()
            return val
        opt.step(closure)
        assert torch.allclose(theta.detach()[0], (w[:, None] * targets).sum(0), atol=1e-6)


def test_generator_losses_and_targets():
    path = AffineGaussianPath()
    g = torch.Generator().manual_seed(2)
    z, x = torch.randn(16, 2, generator=g), torch.randn(16, 2, generator=g)
    flow, jump = FlowGenerator(path), DensityJumpGenerator(path)
    tgt = flow.target(x, z, 0.3)
    assert flow.loss(tgt, tgt).abs().max() == 0 and (flow.loss(tgt + 1, tgt) > 0).all()
    lam = jump.target(x, z, 0.3)
    assert lam.shape == x.shape and (lam >= 0).all()
    sup = Superposition((flow, jump))
    both = sup.target(x, z, 0.3)
    assert torch.allclose(sup.loss(both, both), torch.zeros(16))


def test_time_grid_and_validation():
    grid = samplers.time_grid(99, 0.01, 1.0)
    assert len(grid) == 100 and grid[0] == 0.01 and grid[-1] == 1.0
    with pytest.raises(ValueError, match="steps >= 1"):
        samplers.time_grid(0)
    with pytest.raises(ValueError, match="t_min < t_max"):
        samplers.time_grid(10, 0.5, 0.2)
    with pytest.raises(ValueError, match="t_max <= 1"):
        samplers.time_grid(10, 0.0, float("nan"))
    with pytest.raises(ValueError):
        constant_weights(1.0, -1.0)


def test_heun_is_second_order_on_so3():
    """A time-dependent body-frame field on SO(3): Euler's error ratio is ~2 per halving, Heun's ~4."""
    space = SO3()
    r0 = so3.uniform((8,), rng=torch.Generator().manual_seed(3))
    a, b = torch.tensor([0.3, -1.0, 0.5]), torch.tensor([1.0, 0.4, -0.2])

    def velocity(x, t):
        # depends on t and on x (through its first column), so the flow is genuinely non-commutative
        return (a * math.cos(3 * t) + b * t)[None] + 0.5 * x[..., :, 0]

    def euler_step(x, t, h, gen):
        return space.exp_step(x, velocity(x, t), h)
    ref = samplers.heun(r0, samplers.time_grid(4096), velocity, space.exp_step)
    err = {}
    for name in ("euler", "heun"):
        err[name] = []
        for steps in (16, 32, 64):
            grid = samplers.time_grid(steps)
            x = samplers.euler(r0, grid, euler_step) if name == "euler" else samplers.heun(r0, grid, velocity, space.exp_step)
            err[name].append(float(so3.rotation_angle_between(x, ref).max()))
    order = {k: math.log2(v[0] / v[1]) / 2 + math.log2(v[1] / v[2]) / 2 for k, v in err.items()}
    assert 0.85 < order["euler"] < 1.2, err
    assert 1.8 < order["heun"] < 2.3, err
