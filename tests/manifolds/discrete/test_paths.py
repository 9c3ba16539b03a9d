"""Sources (KO eq. 38), schedulers (linear, cubic, kinetic-optimal KO eq. 33) and paths (KO eq. 2, 27)."""

from __future__ import annotations

import math

import pytest
import torch

from manifolds.discrete import (SCHEDULER_NAMES, KineticOptimalScheduler, LinearScheduler, MetricPath, MixturePath,
                                PolynomialScheduler, RatioPowerBeta, data_statistics_source, mask_source,
                                matching_time, scheduler_by_name, token_statistics, uniform_source)
from discrete_toys import D, K, MASK, PATHS, make_path, ordinal_distance

T = torch.linspace(0.02, 0.98, 25, dtype=torch.float64)


def test_sources():
    assert mask_source(5, 4).tolist() == [0, 0, 0, 0, 1]
    torch.testing.assert_close(uniform_source(4), torch.full((4,), 0.25))
    stats = token_statistics(torch.tensor([[0, 0, 0, 1], [1, 2, 0, 0]]), 4)  # counts 5, 2, 1, 0
    assert float(stats[3]) < 1e-10 and abs(float(stats.sum()) - 1) < 1e-6
    torch.testing.assert_close(data_statistics_source(stats, -1.0), stats)  # beta0 = -1: data statistics
    torch.testing.assert_close(data_statistics_source(stats, 0.0), torch.full((4,), 0.25))  # beta0 = 0: uniform
    assert float(data_statistics_source(stats, 64.0)[3]) > 0.999  # beta0 -> inf: least frequent token
    with pytest.raises(ValueError, match="mask_token"):
        mask_source(5, 5)
    with pytest.raises(ValueError, match="positive"):
        data_statistics_source(torch.tensor([0.5, 0.5, 0.0]), 1.0)


@pytest.mark.parametrize("sched", [LinearScheduler(), PolynomialScheduler(3.0),
                                   KineticOptimalScheduler(torch.tensor([0.5, 0.3, 0.2, 0.0, 0.0])),
                                   KineticOptimalScheduler(mask_source(5, 4))])
def test_scheduler_boundaries_and_derivative(sched):
    ends = sched(torch.tensor([0.0, 1.0], dtype=torch.float64)).kappa
    torch.testing.assert_close(ends[0], torch.zeros_like(ends[0]), atol=1e-12, rtol=0)
    torch.testing.assert_close(ends[1], torch.ones_like(ends[1]), atol=1e-12, rtol=0)
    e = 1e-6
    fd = (sched(T + e).kappa - sched(T - e).kappa) / (2 * e)
    torch.testing.assert_close(sched(T).dkappa, fd, atol=1e-6, rtol=1e-6)
    assert bool((sched(T).dkappa >= 0).all())
    if sched.token_independent:
        k = sched(T).kappa[:, 0]  # (token 4 is the mask of the mask source: never data)
        torch.testing.assert_close(sched.inverse(k), T, atol=1e-9, rtol=0)


def test_ko_scheduler_is_the_hypersphere_geodesic():
    """KO eq. 31-33: the mixture path with the KO scheduler equals a_t^2 with a_t the geodesic from sqrt p to
    sqrt delta_x1; for the mask source kappa_t = sin^2(pi t / 2)."""
    src = torch.tensor([0.4, 0.3, 0.2, 0.1, 0.0], dtype=torch.float64)
    path = MixturePath(src, KineticOptimalScheduler(src))
    for x1 in range(5):
        omega = math.acos(math.sqrt(float(src[x1])))
        delta = torch.nn.functional.one_hot(torch.tensor(x1), 5).double()
        for t in [0.1, 0.5, 0.9]:
            if omega < 1e-9:
                continue
            a = (math.sin((1 - t) * omega) * src.sqrt() + math.sin(t * omega) * delta) / math.sin(omega)
            p = path.probs(torch.tensor([[x1]]), torch.tensor([t]))[0, 0].double()
            torch.testing.assert_close(p, a ** 2, atol=1e-6, rtol=0)
    mask = KineticOptimalScheduler(mask_source(5, 4))
    assert mask.token_independent
    torch.testing.assert_close(mask(T).kappa[:, 0], torch.sin(math.pi * T / 2) ** 2, atol=1e-12, rtol=0)
    assert not KineticOptimalScheduler(src).token_independent


@pytest.mark.parametrize("name", PATHS)
def test_path_probs_boundaries_and_time_derivative(name):
    path = make_path(name)
    z = torch.tensor([[0, 1, 2], [3, 3, 0]])
    for t in [0.0, 1.0]:
        p = path.probs(z, t)
        torch.testing.assert_close(p.sum(-1), torch.ones(2, 3))
    if isinstance(path, MixturePath):
        torch.testing.assert_close(path.probs(z, 0.0), path.source.expand(2, 3, K))
    else:
        torch.testing.assert_close(path.probs(z, 0.0), torch.full((2, 3, K), 1 / K))
    torch.testing.assert_close(path.probs(z, 1.0), torch.nn.functional.one_hot(z, K).float())
    e = 1e-3
    for t in [0.2, 0.5, 0.8]:
        fd = (path.probs(z, t + e).double() - path.probs(z, t - e).double()) / (2 * e)
        torch.testing.assert_close(path.dt_probs(z, t).double(), fd, atol=2e-3, rtol=2e-3)
        torch.testing.assert_close(path.dt_probs(z, t).sum(-1), torch.zeros(2, 3), atol=1e-5, rtol=0)
        # log_prob / dt_log_prob of the ProbabilityPath interface
        x = path.sample(z, t, torch.Generator().manual_seed(0))
        lp = path.log_prob(x, z, t)
        fd_lp = (path.log_prob(x, z, t + e).double() - path.log_prob(x, z, t - e).double()) / (2 * e)
        torch.testing.assert_close(path.dt_log_prob(x, z, t).double(), fd_lp, atol=5e-3, rtol=5e-3)
        assert lp.shape == (2,)


@pytest.mark.parametrize("name", PATHS)
def test_path_samples_follow_probs(name):
    """Empirical frequencies of x_t ~ p_t(. | x1) match p_t within 5 binomial standard errors."""
    path = make_path(name)
    n = 20000
    z = torch.tensor([1, 3, 0]).expand(n, D)
    t = torch.full((n,), 0.6)
    x = path.sample(z, t, torch.Generator().manual_seed(1))
    freq = torch.nn.functional.one_hot(x, K).float().mean(0)  # [D, K]
    p = path.probs(z[:1], t[:1])[0]
    se = (p * (1 - p) / n).sqrt()
    assert bool(((freq - p).abs() <= 5 * se + 1e-4).all()), (freq, p)
    src = path.sample_source(z, torch.Generator().manual_seed(2))
    p0 = path.probs(z[:1], 0.0)[0]
    freq0 = torch.nn.functional.one_hot(src, K).float().mean(0)
    assert bool(((freq0 - p0).abs() <= 5 * (p0 * (1 - p0) / n).sqrt() + 1e-4).all())


def test_token_dependent_mixture_uses_kappa_of_x1():
    src = torch.tensor([0.4, 0.3, 0.2, 0.1, 0.0])
    path = MixturePath(src, KineticOptimalScheduler(src))
    z = torch.tensor([[0, 3]])
    k, _ = path.kappa(z, 0.5)
    for i, a in enumerate([0, 3]):
        om = math.acos(math.sqrt(float(src[a])))
        assert abs(float(k[0, i]) - (1 - math.sin(0.5 * om) ** 2 / math.sin(om) ** 2)) < 1e-6


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="probability vector"):
        MixturePath(torch.tensor([0.5, 0.6]), LinearScheduler())
    with pytest.raises(ValueError, match="zero diagonal"):
        MetricPath(torch.ones(3, 3), RatioPowerBeta())
    with pytest.raises(ValueError, match="positive off the diagonal"):
        MetricPath(torch.zeros(3, 3), RatioPowerBeta())
    with pytest.raises(ValueError, match="positive"):
        PolynomialScheduler(0.0)
    _ = ordinal_distance, MASK


def test_matching_time_reparametrises_between_token_independent_schedulers() -> None:
    """KO E.1: kappa_trained(t') = kappa_sampler(t); t^1 -> t^3 is exact, KO (mask source) -> cubic numerically."""
    t = torch.linspace(0.0, 0.99, 34, dtype=torch.float64)
    torch.testing.assert_close(matching_time(t, PolynomialScheduler(3.0), PolynomialScheduler(1.0)), t ** 3)
    ko = KineticOptimalScheduler(mask_source(6, 0))  # MASK = token 0, never data
    assert ko._data_column() == 1 and ko.data_kappa(t).shape == t.shape
    tm = matching_time(t, PolynomialScheduler(3.0), ko)
    torch.testing.assert_close(ko.data_kappa(tm), t ** 3, atol=1e-9, rtol=0)
    assert matching_time(t, ko, ko) is t
    with pytest.raises(NotImplementedError):
        KineticOptimalScheduler(torch.tensor([0.5, 0.3, 0.2])).data_kappa(t)  # kappa depends on x1


def test_schedulers_by_name() -> None:
    """SCHEDULER_NAMES is the one list of named schedulers; each builds the kappa_t its docstring states."""
    assert SCHEDULER_NAMES == ("kinetic_optimal", "cubic", "linear")
    t = torch.linspace(0.0, 0.99, 12, dtype=torch.float64)
    source = mask_source(6, 0)
    expected = {"kinetic_optimal": torch.sin(math.pi * t / 2) ** 2, "cubic": t ** 3, "linear": t}
    for name in SCHEDULER_NAMES:
        torch.testing.assert_close(scheduler_by_name(name, source).data_kappa(t), expected[name])
    with pytest.raises(ValueError, match="unknown scheduler 'quadratic'; choose one of kinetic_optimal, cubic"):
        scheduler_by_name("quadratic", source)
