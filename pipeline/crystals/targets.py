"""Property targets of guided generation: ranges and inequalities, and their log-likelihood under a predictor.

A target is an interval ``low <= y <= high`` of one property (``-inf`` / ``+inf`` for a one-sided bound). A
predictor p_phi(y | x_t, t) (:mod:`pipeline.crystals.predictor`) gives, per property, a Gaussian N(mean, std^2);
the likelihood of a set of targets is the product over the targets (properties treated as independent given x_t),

    log p(targets | x_t, t) = sum_k log P(low_k <= y_k <= high_k),   y_k ~ N(mean_k, std_k^2),

which is what predictor guidance (Nisonoff et al. 2024) reweights the CTMC rates with. Every term is computed
in float64 with :func:`torch.special.log_ndtr`, and a two-sided range as a log-difference of two log-CDFs taken
on the side of the mean where both are small (``log Phi(b) + log(1 - exp(log Phi(a) - log Phi(b)))``), so it
stays finite and accurate far in the tails (mean 50 std away from the range) and differentiable in mean and std
(first-order guidance takes its gradient).

Spellings of :func:`parse_target` (the command line's ``--target``): ``heat_ref<=-1.5``, ``heat_ref < -1.5``,
``dir_gap>=1``, ``dir_gap in [1,3]`` (also ``(1, 3)``, ``[1,3)``: for a continuous law open and closed ends have
the same probability).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Sequence

import torch
from torch import Tensor

from structures.errors import InputError
from structures.validate import check_instance

__all__ = ["PropertyTarget", "log_probability", "parse_target", "target_columns"]

_NAME = r"[A-Za-z_][A-Za-z0-9_.]*"
_NUM = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_INEQ = re.compile(rf"^\s*({_NAME})\s*(<=|>=|<|>|=<|=>)\s*({_NUM})\s*$")
_RANGE = re.compile(rf"^\s*({_NAME})\s+in\s*[\[(]\s*({_NUM})\s*,\s*({_NUM})\s*[\])]\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class PropertyTarget:
    """``low <= name <= high`` (one side may be infinite, not both); validated when made."""

    name: str
    low: float = -math.inf
    high: float = math.inf

    def __post_init__(self) -> None:
        check_instance("PropertyTarget.name", self.name, str, "a property name such as 'heat_ref'")
        if not self.name.strip():
            raise InputError("PropertyTarget.name must be a property name such as 'heat_ref', got ''")
        for field in ("low", "high"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
                raise InputError(f"PropertyTarget.{field} must be a number, got {value!r}")
            object.__setattr__(self, field, float(value))
        if self.low == math.inf or self.high == -math.inf:
            raise InputError(f"PropertyTarget {self.name}: low must be finite or -inf and high finite or +inf, got "
                             f"[{self.low}, {self.high}]")
        if math.isinf(self.low) and math.isinf(self.high):
            raise InputError(f"PropertyTarget {self.name}: no bound given; give low, high or both")
        if not self.low < self.high:
            raise InputError(f"PropertyTarget {self.name}: empty range [{self.low:g}, {self.high:g}]; low must be "
                             "below high")

    def __str__(self) -> str:
        if math.isinf(self.low):
            return f"{self.name}<={self.high:g}"
        if math.isinf(self.high):
            return f"{self.name}>={self.low:g}"
        return f"{self.name} in [{self.low:g},{self.high:g}]"

    def to_dict(self) -> dict[str, object]:
        """JSON-safe: infinite bounds are None."""
        return {"name": self.name, "low": None if math.isinf(self.low) else self.low,
                "high": None if math.isinf(self.high) else self.high}


def parse_target(text: str, what: str = "--target") -> PropertyTarget:
    """``'heat_ref<=-1.5'``, ``'dir_gap >= 1'``, ``'dir_gap in [1,3]'`` (or ``(1,3)``, ``[1,3)``) -> a target.

    Strict and non-strict inequalities are the same event for a continuous law. Anything else, a non-finite
    bound or an empty range raises :class:`InputError` starting with ``what 'text':``.
    """
    if not isinstance(text, str):
        raise InputError(f"{what}: expected a string such as 'heat_ref<=-1.5', got {text!r}")
    m = _INEQ.match(text)
    try:
        if m:
            name, op, value = m.group(1), m.group(2), float(m.group(3))
            if not math.isfinite(value):
                raise InputError(f"the bound {m.group(3)} is not finite")
            below = op in ("<=", "<", "=<")
            return PropertyTarget(name, -math.inf, value) if below else PropertyTarget(name, value, math.inf)
        m = _RANGE.match(text)
        if m:
            low, high = float(m.group(2)), float(m.group(3))
            if not (math.isfinite(low) and math.isfinite(high)):
                raise InputError("the bounds must be finite numbers")
            return PropertyTarget(m.group(1), low, high)
    except InputError as exc:
        raise InputError(f"{what} {text!r}: {exc}") from None
    raise InputError(f"{what} {text!r}: expected NAME<=V, NAME>=V or NAME in [LO,HI] (e.g. 'heat_ref<=-1.5', "
                     "'dir_gap in [1,3]')")


def target_columns(targets: Sequence[PropertyTarget], columns: Sequence[str]) -> list[int]:
    """The column of each target among a predictor's ``columns``; :class:`InputError` for a property it lacks."""
    cols = list(columns)
    out = []
    for target in targets:
        check_instance("targets", target, PropertyTarget, "a PropertyTarget (see parse_target)")
        if target.name not in cols:
            raise InputError(f"target {target}: the predictor has no property {target.name!r}; it predicts "
                             f"{', '.join(cols)}")
        out.append(cols.index(target.name))
    return out


def _log_diff_exp(a: Tensor, b: Tensor, width: Tensor, mid: Tensor) -> Tensor:
    """log(exp(a) - exp(b)) for a >= b (float64). Where the two are close (a range much narrower than the std,
    where a - b loses digits to rounding), the midpoint rule log(width * phi(mid)) (width, mid in std units;
    relative error about (a - b)^2 / 24 there) replaces it; both branches have finite gradients."""
    gap = a - b  # >= 0
    tiny = gap < 1e-5
    safe = torch.where(tiny, torch.ones_like(gap), gap)
    exact = a + torch.log(-torch.expm1(-safe))
    midpoint = torch.log(width.clamp_min(1e-300)) - 0.5 * mid * mid - 0.5 * math.log(2 * math.pi)
    return torch.where(tiny, midpoint, exact)


def _interval_log_prob(mean: Tensor, std: Tensor, low: float, high: float) -> Tensor:
    """log P(low <= y <= high), y ~ N(mean, std^2), elementwise (float64 in, float64 out)."""
    if math.isinf(low):
        return torch.special.log_ndtr((high - mean) / std)
    if math.isinf(high):
        return torch.special.log_ndtr((mean - low) / std)
    z_lo, z_hi = (low - mean) / std, (high - mean) / std
    # on the side of the mean where both CDFs are small: P = Phi(z_hi) - Phi(z_lo) = Phi(-z_lo) - Phi(-z_hi)
    upper = z_lo > 0
    big = torch.where(upper, -z_lo, z_hi)
    small = torch.where(upper, -z_hi, z_lo)
    return _log_diff_exp(torch.special.log_ndtr(big), torch.special.log_ndtr(small), z_hi - z_lo,
                         0.5 * (z_lo + z_hi))


def log_probability(mean: Tensor, std: Tensor, targets: Sequence[PropertyTarget], columns: Sequence[str]) -> Tensor:
    """sum_k log P(low_k <= y_k <= high_k) under y ~ N(mean, std^2) per property (module docstring).

    Args:
        mean, std: ``[B, P]`` predicted means and standard deviations (std > 0), property units.
        targets: the targets (several may name the same property: their events intersect only if the caller
            means it; each is one factor of the product).
        columns: the ``P`` property names of the predictor's columns.
    Returns:
        ``[B]`` log-likelihoods in the dtype of ``mean``; differentiable in ``mean`` and ``std``.
    """
    if mean.shape != std.shape or mean.ndim != 2 or mean.shape[1] != len(columns):
        raise ValueError(f"mean and std must both be [B, {len(columns)}], got {tuple(mean.shape)} and "
                         f"{tuple(std.shape)}")
    cols = target_columns(targets, columns)
    m, s = mean.double(), std.double()
    total = torch.zeros(mean.shape[0], dtype=torch.float64, device=mean.device)
    for target, c in zip(targets, cols):
        total = total + _interval_log_prob(m[:, c], s[:, c], target.low, target.high)
    return total.to(mean.dtype)
