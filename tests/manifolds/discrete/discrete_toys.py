"""Shared toy data for the discrete-manifold tests: D = 3 positions, K = 5 tokens (token 4 = mask)."""

from __future__ import annotations

import math

import torch

from manifolds.discrete import (KineticOptimalScheduler, LinearScheduler, MetricPath, MixturePath, RatioPowerBeta,
                                data_statistics_source, mask_source, token_statistics, uniform_source)
from manifolds.discrete.oracle import FiniteData

K, D, MASK = 5, 3, 4

def toy_data() -> FiniteData:
    """Six sequences in [4]^3 (token 4 is the mask) with unequal weights."""
    support = torch.tensor([[0, 1, 2], [1, 1, 3], [2, 0, 0], [3, 2, 1], [0, 3, 3], [1, 2, 0]])
    return FiniteData(support, torch.tensor([0.3, 0.2, 0.15, 0.15, 0.1, 0.1]))


def ordinal_distance(k: int = K) -> torch.Tensor:
    """d(a, b) = |a - b| on tokens placed on a line."""
    r = torch.arange(k, dtype=torch.float32)
    return (r[:, None] - r[None, :]).abs()


def make_path(name: str):
    """The paths of issue 4's oracle list."""
    if name == "mask+linear":
        return MixturePath(mask_source(K, MASK), LinearScheduler())
    if name == "mask+ko":
        return MixturePath(mask_source(K, MASK), KineticOptimalScheduler(mask_source(K, MASK)))
    if name == "uniform+ko":
        return MixturePath(uniform_source(K), KineticOptimalScheduler(uniform_source(K)))
    if name == "stats+ko":
        src = data_statistics_source(token_statistics(toy_data().support, K), beta0=-0.5)
        return MixturePath(src, KineticOptimalScheduler(src))
    if name == "metric":
        return MetricPath(ordinal_distance(), RatioPowerBeta(c=2.0, a=1.0))
    raise KeyError(name)


PATHS = ["mask+linear", "mask+ko", "uniform+ko", "stats+ko", "metric"]
INF = math.inf
