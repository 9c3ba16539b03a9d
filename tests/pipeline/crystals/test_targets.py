"""Property targets: parsing of --target strings, validation, and the Gaussian interval log-likelihood (exact
against mpmath far in the tails, finite gradients)."""

from __future__ import annotations

import math

import mpmath
import pytest
import torch

from pipeline.crystals.targets import PropertyTarget, log_probability, parse_target, target_columns
from structures.errors import InputError

INF = math.inf


@pytest.mark.parametrize("text, expected", [
    ("heat_ref<=-1.5", PropertyTarget("heat_ref", -INF, -1.5)),
    ("heat_ref < -1.5", PropertyTarget("heat_ref", -INF, -1.5)),
    ("  dir_gap>=1  ", PropertyTarget("dir_gap", 1.0, INF)),
    ("dir_gap > 1e-1", PropertyTarget("dir_gap", 0.1, INF)),
    ("dir_gap in [1,3]", PropertyTarget("dir_gap", 1.0, 3.0)),
    ("dir_gap in (1, 3)", PropertyTarget("dir_gap", 1.0, 3.0)),
    ("dir_gap in [1,3)", PropertyTarget("dir_gap", 1.0, 3.0)),
    ("dir_gap IN ( -2.5 ,.5 ]", PropertyTarget("dir_gap", -2.5, 0.5)),
    ("formation_energy_per_atom<=-0.5", PropertyTarget("formation_energy_per_atom", -INF, -0.5)),
])
def test_parse_target(text: str, expected: PropertyTarget) -> None:
    assert parse_target(text) == expected


@pytest.mark.parametrize("text, message", [
    ("heat_ref", "expected NAME<=V, NAME>=V or NAME in [LO,HI]"),
    ("heat_ref == 1", "expected NAME<=V"),
    ("heat_ref <= ", "expected NAME<=V"),
    ("<= 1", "expected NAME<=V"),
    ("heat_ref in [1, 2, 3]", "expected NAME<=V"),
    ("heat_ref in [1 2]", "expected NAME<=V"),
    ("heat_ref <= nan", "expected NAME<=V"),
    ("heat_ref <= 1e999", "not finite"),
    ("heat_ref in [3, 1]", "empty range"),
    ("heat_ref in [1, 1]", "empty range"),
    ("", "expected NAME<=V"),
])
def test_bad_targets_are_input_errors(text: str, message: str) -> None:
    with pytest.raises(InputError, match=r"^--target .*" + message.replace("[", r"\[").replace("(", r"\(")):
        parse_target(text)


def test_property_target_validation() -> None:
    with pytest.raises(InputError, match="empty range"):
        PropertyTarget("a", 2.0, 1.0)
    with pytest.raises(InputError, match="no bound"):
        PropertyTarget("a")
    with pytest.raises(InputError, match="must be a number"):
        PropertyTarget("a", float("nan"), 1.0)
    with pytest.raises(InputError, match="low must be finite or -inf"):
        PropertyTarget("a", INF, INF)
    with pytest.raises(InputError, match="name"):
        PropertyTarget("", 0.0, 1.0)
    assert PropertyTarget("a", 0, 1).to_dict() == {"name": "a", "low": 0.0, "high": 1.0}
    assert PropertyTarget("a", high=1).to_dict()["low"] is None


def _exact(mean: float, std: float, low: float, high: float) -> float:
    """log P(low <= y <= high) for y ~ N(mean, std^2) at 60 digits (upper tails through the symmetric CDF)."""
    mpmath.mp.dps = 60
    cdf = lambda x: mpmath.ncdf((mpmath.mpf(x) - mean) / std)  # noqa: E731
    upper = lambda x: mpmath.ncdf((mean - mpmath.mpf(x)) / std)  # noqa: E731  P(y >= x)
    if math.isinf(low):
        return float(mpmath.log(cdf(high)))
    if math.isinf(high):
        return float(mpmath.log(upper(low)))
    if low > mean:
        return float(mpmath.log(upper(low) - upper(high)))
    return float(mpmath.log(cdf(high) - cdf(low)))


CASES = [(0.0, 1.0, -1.0, 1.0), (2.0, 0.5, 1.0, 3.0), (0.0, 1.0, -INF, -40.0), (0.0, 1.0, 40.0, INF),
         (0.0, 1.0, -40.0, -39.0), (0.0, 1.0, 30.0, 31.0), (0.0, 0.01, 5.0, 6.0), (1.0, 2.0, -3.0, 0.5),
         (0.0, 1.0, 5.0, 5.00001), (0.0, 1.0, 0.1, 0.1 + 1e-9), (0.0, 1.0, -50.0, -50.0 + 1e-7),
         (3.0, 1e-3, -INF, 2.0), (-1.0, 0.3, -0.5, INF)]


@pytest.mark.parametrize("mean, std, low, high", CASES)
def test_log_probability_exact_in_the_tails(mean: float, std: float, low: float, high: float) -> None:
    m = torch.tensor([[mean]], dtype=torch.float64, requires_grad=True)
    s = torch.tensor([[std]], dtype=torch.float64, requires_grad=True)
    value = log_probability(m, s, [PropertyTarget("y", low, high)], ["y"])
    exact, got = _exact(mean, std, low, high), float(value.detach())
    assert value.shape == (1,) and math.isfinite(got)
    assert abs(got - exact) <= 1e-7 * max(1.0, abs(exact)), (got, exact)
    value.sum().backward()
    assert torch.isfinite(m.grad).all() and torch.isfinite(s.grad).all()


def test_gradient_matches_finite_differences_and_points_into_the_range() -> None:
    t = [PropertyTarget("a", 1.0, 3.0), PropertyTarget("b", high=-2.0)]
    m = torch.tensor([[0.0, 0.0], [10.0, -30.0], [2.0, 5.0]], dtype=torch.float64, requires_grad=True)
    s = torch.tensor([[1.0, 0.5], [0.2, 1.0], [3.0, 0.1]], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda mm, ss: log_probability(mm, ss, t, ["a", "b"]), (m, s))
    log_probability(m, s, t, ["a", "b"]).sum().backward()
    assert m.grad[0, 0] > 0 and m.grad[1, 0] < 0  # below / above [1, 3]: pushed towards it
    assert m.grad[0, 1] < 0 and m.grad[2, 1] < 0  # b <= -2: pushed down


def test_float32_far_tail_is_finite_with_finite_gradient() -> None:
    m = torch.tensor([[0.0], [0.0]], requires_grad=True)
    s = torch.tensor([[1e-3], [1.0]], requires_grad=True)
    value = log_probability(m, s, [PropertyTarget("a", 5.0, 6.0)], ["a"])  # 5000 std away in the first row
    assert value.dtype == torch.float32 and torch.isfinite(value).all() and value[0] < -1e6
    value.sum().backward()
    assert torch.isfinite(m.grad).all() and torch.isfinite(s.grad).all()


def test_several_targets_add_and_columns_are_checked() -> None:
    m, s = torch.tensor([[0.5, 2.0]]), torch.tensor([[1.0, 1.0]])
    both = log_probability(m, s, [PropertyTarget("a", high=1.0), PropertyTarget("b", 1.0, 3.0)], ["a", "b"])
    one = log_probability(m, s, [PropertyTarget("a", high=1.0)], ["a", "b"])
    two = log_probability(m, s, [PropertyTarget("b", 1.0, 3.0)], ["a", "b"])
    torch.testing.assert_close(both, one + two)
    assert target_columns([PropertyTarget("b", 0, 1)], ["a", "b"]) == [1]
    with pytest.raises(InputError, match="no property 'c'.*predicts a, b"):
        log_probability(m, s, [PropertyTarget("c", 0, 1)], ["a", "b"])
