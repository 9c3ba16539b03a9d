"""Kinetic-optimal velocities: rate conditions (KO eq. 5), continuity equation (KO eq. 14), the reductions to
KO eq. 75 (mixture paths) and eq. 29 (metric paths), power-infinity (eq. 79-80), corrector (eq. 35) and the
closed-form marginal velocity (eq. 76)."""

from __future__ import annotations

import math

import pytest
import torch

from discrete_toys import D, K, MASK, PATHS, make_path
from manifolds.discrete import (DiscreteGenerator, MetricPath, MixturePath, corrector_flux, divergence,
                                kinetic_optimal_flux, kinetic_optimal_velocity, mixture_marginal_velocity,
                                mixture_velocity_column, power_weights, velocity_column)

TOL = 1e-5
POWERS = [1.0, 2.5, math.inf]


def random_path(batch: int, k: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Random PMFs p > 0 ``[B, K]`` with random derivatives dp (rows sum to 0), float64."""
    g = torch.Generator().manual_seed(seed)
    p = torch.softmax(2 * torch.randn(batch, k, generator=g, dtype=torch.float64), -1)
    dp = torch.randn(batch, k, generator=g, dtype=torch.float64)
    return p, dp - dp.mean(-1, keepdim=True)


def assert_rate_conditions(u: torch.Tensor) -> None:
    """KO eq. 5 on a rate matrix ``[..., K, K]`` (u[x, z]: rate z -> x)."""
    off = u * (1 - torch.eye(u.shape[-1], dtype=u.dtype))
    assert float(off.min()) >= 0.0
    torch.testing.assert_close(u.sum(-2), torch.zeros_like(u.sum(-2)), atol=1e-9, rtol=0)


@pytest.mark.parametrize("power", POWERS)
def test_ko_velocity_rate_conditions_and_continuity(power):
    p, dp = random_path(64, 7, seed=0)
    u = kinetic_optimal_velocity(p, dp, power=power)
    assert_rate_conditions(u)
    # Continuity (KFE, KO eq. 14): d/dt p(x) = sum_z u(x, z) p(z), and -div(j) = dp for the flux.
    torch.testing.assert_close((u @ p.unsqueeze(-1)).squeeze(-1), dp, atol=1e-10, rtol=0)
    torch.testing.assert_close(-divergence(kinetic_optimal_flux(p, dp, power)), dp, atol=1e-10, rtol=0)


@pytest.mark.parametrize("power", POWERS)
def test_corrector_preserves_probability(power):
    p, dp = random_path(64, 7, seed=1)
    u = kinetic_optimal_velocity(p, dp, power=power, corrector=0.0)
    u_c = kinetic_optimal_velocity(p, dp, power=power, corrector=2.0)
    assert_rate_conditions(u_c)
    torch.testing.assert_close(divergence(corrector_flux(p, dp, power)), torch.zeros_like(p), atol=1e-12, rtol=0)
    torch.testing.assert_close(((u_c - u) @ p.unsqueeze(-1)).squeeze(-1), torch.zeros_like(p), atol=1e-10, rtol=0)
    assert float((u_c - u).abs().max()) > 1e-3  # the corrector does move mass


def test_safe_flux_on_zero_probability_states():
    """KO eq. 18: no flux leaves a state of zero probability; the velocity stays finite there."""
    p = torch.tensor([[0.0, 0.3, 0.7]], dtype=torch.float64)
    dp = torch.tensor([[0.0, 0.5, -0.5]], dtype=torch.float64)
    for power in POWERS:
        u = kinetic_optimal_velocity(p, dp, power=power, corrector=1.0)
        assert torch.isfinite(u).all() and float(u[0, :, 0].abs().max()) == 0.0
        torch.testing.assert_close((u @ p.unsqueeze(-1)).squeeze(-1), dp, atol=1e-12, rtol=0)


def test_power_infinity_is_the_limit_and_eq80():
    p, dp = random_path(32, 6, seed=2)
    j_inf = kinetic_optimal_flux(p, dp, math.inf)
    a = p.argmax(-1)
    delta = torch.nn.functional.one_hot(a, 6).double()
    eq80 = (dp.unsqueeze(-1) * delta.unsqueeze(-2) - delta.unsqueeze(-1) * dp.unsqueeze(-2)).clamp_min(0)
    torch.testing.assert_close(j_inf, eq80 * (1 - torch.eye(6, dtype=torch.float64)), atol=1e-12, rtol=0)
    torch.testing.assert_close(kinetic_optimal_flux(p, dp, 400.0), j_inf, atol=1e-6, rtol=0)  # eq. 79
    torch.testing.assert_close(power_weights(p, 1.0), p, atol=1e-12, rtol=0)


@pytest.mark.parametrize("power", POWERS)
@pytest.mark.parametrize("corr", [0.0, 0.7])
def test_column_equals_matrix_column(power, corr):
    p, dp = random_path(50, 6, seed=3)
    z = torch.randint(0, 6, (50,), generator=torch.Generator().manual_seed(4))
    u = kinetic_optimal_velocity(p, dp, power=power, corrector=corr)
    col = velocity_column(p, dp, z, power=power, corrector=corr)
    torch.testing.assert_close(col, u[torch.arange(50), :, z], atol=1e-10, rtol=0)


def _path_grid(path, n_t: int = 7):
    """All (x1, z) token pairs over a grid of t in (0, 1): x1, z ``[T, K*K]``, t ``[T]``."""
    t = torch.linspace(0.05, 0.95, n_t)
    x1, z = torch.meshgrid(torch.arange(K), torch.arange(K), indexing="ij")
    return x1.reshape(1, -1).expand(n_t, -1), z.reshape(1, -1).expand(n_t, -1), t


@pytest.mark.parametrize("name", [n for n in PATHS if n != "metric"])
def test_general_ko_velocity_reduces_to_eq75_on_mixture_paths(name):
    path: MixturePath = make_path(name)
    x1, z, t = _path_grid(path)
    p, dp = path.probs(x1, t).double(), path.dt_probs(x1, t).double()
    general = velocity_column(p, dp, z)  # KO eq. 26 + eq. 16, from p_t and d/dt p_t only
    closed = mixture_velocity_column(z, x1, path.jump_rate(x1, t), K).double()  # KO eq. 75
    live = p.gather(-1, z.unsqueeze(-1)).squeeze(-1) > 0  # eq. 16 is defined where p_t(z | x1) > 0
    assert int(live.sum()) >= 2 * K
    torch.testing.assert_close(general[live], closed[live], atol=1e-4, rtol=1e-4)
    # The full O(K) generator path agrees with the closed-form fast path on the same states.
    gen_fast, gen_gen = DiscreteGenerator(path), DiscreteGenerator(path, closed_form=False)
    torch.testing.assert_close(gen_gen.rates(z, x1, t)[live], gen_fast.rates(z, x1, t)[live], atol=1e-4, rtol=1e-4)


def test_general_ko_velocity_reduces_to_eq29_on_metric_paths():
    path: MetricPath = make_path("metric")
    x1, z, t = _path_grid(path)
    p, dp = path.probs(x1, t).double(), path.dt_probs(x1, t).double()
    general = velocity_column(p, dp, z, dlogp=path.dt_log_probs(x1, t).double())
    _, dbeta = path.beta(t)
    d = path.d_to[x1].double()  # [T, K*K, K]: d(x, x1)
    dz = d.gather(-1, z.unsqueeze(-1))  # d(z, x1)
    eq29 = p * dbeta.double()[:, None, None] * (dz - d).clamp_min(0)  # KO eq. 29, x != z
    eq29 = eq29.scatter(-1, z.unsqueeze(-1), 0.0)
    eq29 = eq29.scatter(-1, z.unsqueeze(-1), -eq29.sum(-1, keepdim=True))
    torch.testing.assert_close(general, eq29, atol=1e-6, rtol=1e-5)
    # Only moves toward x1: u(x, z | x1) > 0 requires d(x, x1) < d(z, x1).
    off = general.scatter(-1, z.unsqueeze(-1), 0.0)
    assert bool(((off > 1e-6) <= (d < dz)).all())  # (equal distances: rounding-level rates only)
    # Far from x1, p_t(z | x1) underflows in float32: the closed-form d/dt log p keeps the velocity exact.
    assert float((p.gather(-1, z.unsqueeze(-1)) == 0).sum()) > 0
    gen = DiscreteGenerator(path)
    torch.testing.assert_close(gen.rates(z, x1, t).double(), eq29, atol=1e-3, rtol=1e-4)


@pytest.mark.parametrize("name", PATHS)
@pytest.mark.parametrize("power,corr", [(1.0, 0.0), (math.inf, 0.0), (1.0, 1.5), (math.inf, 0.5)])
def test_conditional_paths_satisfy_rate_conditions_and_continuity(name, power, corr):
    """Every conditional velocity generates its path: sum_z u(x, z | x1) p_t(z | x1) = d/dt p_t(x | x1)."""
    path = make_path(name)
    x1, _, t = _path_grid(path)
    p, dp = path.probs(x1, t).double(), path.dt_probs(x1, t).double()
    u = kinetic_optimal_velocity(p, dp, power=power, corrector=corr)
    assert_rate_conditions(u)
    torch.testing.assert_close((u @ p.unsqueeze(-1)).squeeze(-1), dp, atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("name", [n for n in PATHS if n != "metric"])
def test_marginal_velocity_closed_form_eq76(name):
    path: MixturePath = make_path(name)
    g = torch.Generator().manual_seed(5)
    B = 40
    xt = path.sample(torch.randint(0, MASK, (B, D), generator=g), 0.4, g)
    posterior = torch.softmax(torch.randn(B, D, K, generator=g), -1)
    t = torch.full((B,), 0.4)
    brute = torch.zeros(B, D, K)
    for a in range(K):  # KO eq. 9 with the conditional velocity of eq. 75
        x1 = torch.full((B, D), a)
        brute += posterior[..., a:a + 1] * mixture_velocity_column(xt, x1, path.jump_rate(x1, t), K)
    gen = DiscreteGenerator(path)
    fast = gen.marginal_rates(xt, t, posterior)
    torch.testing.assert_close(fast, brute, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(fast, mixture_marginal_velocity(posterior, xt, path.token_rates(t[:, None])))
    off = fast.scatter(-1, xt.unsqueeze(-1), 0.0)
    assert float(off.min()) >= 0 and float(fast.sum(-1).abs().max()) < 1e-5
