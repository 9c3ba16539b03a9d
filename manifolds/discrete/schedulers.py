"""Schedulers kappa_t(x1) of mixture paths (KO eq. 2) and beta_t of metric-induced paths (KO eq. 27).

A mixture scheduler returns, for times ``t`` ``[...]``, values shaped ``[..., 1]`` (token-independent)
or ``[..., K]`` (token-dependent: entry a is kappa_t(x1 = a)). kappa_0 = 0, kappa_1 = 1.

The mixture schedulers that a model or a sampler is configured with by name are listed once, in
:data:`SCHEDULER_NAMES`, and built by :func:`scheduler_by_name`.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass

import torch
from torch import Tensor

from manifolds.discrete.names import SCHEDULER_NAMES, SchedulerName  # noqa: F401 - re-exported


@dataclass(frozen=True)
class SchedulerValues:
    """kappa_t, d/dt kappa_t and the jump rate kappa'_t / (1 - kappa_t) (evaluated in float64 before the cast,
    so that it stays finite where 1 - kappa_t rounds to 0 in float32), each ``[..., 1]`` or ``[..., K]``."""

    kappa: Tensor
    dkappa: Tensor
    rate: Tensor


class MixtureScheduler(ABC):
    """kappa_t(x1): the probability that a position already sits at its data token (KO eq. 2)."""

    #: True when kappa_t does not depend on x1 (enables KO appendix E.1's change of variables).
    token_independent: bool = True

    @abstractmethod
    def __call__(self, t: Tensor) -> SchedulerValues:
        """``t`` ``[...]`` -> kappa_t, d kappa_t / dt, each ``[..., 1]`` or ``[..., K]``."""

    def inverse(self, kappa: Tensor) -> Tensor:
        """t such that kappa_t = ``kappa`` (token-independent schedulers only)."""
        raise NotImplementedError(f"{type(self).__name__} has no inverse")

    def data_kappa(self, t: Tensor) -> Tensor:
        """kappa_t of every data token ``[...]`` (token-independent schedulers only)."""
        if not self.token_independent:
            raise NotImplementedError(f"{type(self).__name__} depends on x1: there is no single kappa_t")
        return self(t).kappa[..., self._data_column()]

    def _data_column(self) -> int:
        return 0


class PolynomialScheduler(MixtureScheduler):
    """kappa_t = t^n (n = 1: linear; n = 3: the cubic scheduler of KO section 8.2)."""

    def __init__(self, n: float = 3.0) -> None:
        if n <= 0:
            raise ValueError(f"polynomial degree must be positive, got {n}")
        self.n = float(n)

    def __call__(self, t: Tensor) -> SchedulerValues:
        t = t.unsqueeze(-1)
        kappa, dkappa = t ** self.n, self.n * t ** (self.n - 1.0)
        t64 = t.double()
        rate = self.n * t64 ** (self.n - 1.0) / (1 - t64 ** self.n)
        return SchedulerValues(kappa, dkappa, rate.to(t.dtype))

    def inverse(self, kappa: Tensor) -> Tensor:
        return kappa ** (1.0 / self.n)


class LinearScheduler(PolynomialScheduler):
    """kappa_t = t."""

    def __init__(self) -> None:
        super().__init__(1.0)


class KineticOptimalScheduler(MixtureScheduler):
    """KO eq. 33: kappa_t(x1) = 1 - sin^2((1 - t) Omega(x1)) / sin^2 Omega(x1), Omega = arccos sqrt(p(x1)).

    The kinetic-optimal path (KO eq. 31-32: the hypersphere geodesic between sqrt p and sqrt delta_x1) is
    the mixture path with this scheduler. Omega -> 0 (p(x1) -> 1) has the limit 1 - (1 - t)^2.
    For the mask source Omega = pi / 2 for every data token: kappa_t = sin^2(pi t / 2).
    """

    def __init__(self, source: Tensor, eps: float = 1e-6) -> None:
        if source.ndim != 1:
            raise ValueError(f"source must be a probability vector [K], got shape {tuple(source.shape)}")
        self.omega = torch.arccos(source.double().clamp(0.0, 1.0).sqrt())  # [K]
        self.eps = eps
        # Tokens with p(x1) = 1 (the mask token itself) can never be data; ignore them.
        live = self.omega[self.omega > eps]
        self.token_independent = bool(live.numel() == 0 or (live - live[0]).abs().max() < 1e-12)

    def __call__(self, t: Tensor) -> SchedulerValues:
        om = self.omega.to(device=t.device)
        tt = t.double().unsqueeze(-1)  # [..., 1]
        small = om < self.eps
        om_safe = torch.where(small, torch.ones_like(om), om)
        s2 = torch.sin(om_safe) ** 2
        kappa = torch.where(small, 1 - (1 - tt) ** 2, 1 - torch.sin((1 - tt) * om_safe) ** 2 / s2)
        dkappa = torch.where(small, 2 * (1 - tt), om_safe * torch.sin(2 * (1 - tt) * om_safe) / s2)
        # kappa' / (1 - kappa) = 2 Omega cot((1 - t) Omega)  (limit 2 / (1 - t) as Omega -> 0)
        rate = torch.where(small, 2 / (1 - tt), 2 * om_safe / torch.tan((1 - tt) * om_safe))
        return SchedulerValues(kappa.to(t.dtype), dkappa.to(t.dtype), rate.to(t.dtype))

    def _data_column(self) -> int:  # the source's own atom (e.g. MASK, Omega = 0) is never data
        live = torch.nonzero(self.omega > self.eps)
        return int(live[0, 0]) if live.numel() else 0

    def inverse(self, kappa: Tensor) -> Tensor:
        if not self.token_independent:
            raise NotImplementedError("the kinetic-optimal scheduler of this source depends on x1")
        live = self.omega[self.omega > self.eps]
        om = float(live[0]) if live.numel() else 0.0
        k = kappa.double().clamp(0.0, 1.0)
        if om < self.eps:
            return (1 - torch.sqrt(1 - k)).to(kappa.dtype)
        return (1 - torch.arcsin(math.sin(om) * torch.sqrt(1 - k)) / om).to(kappa.dtype)




def scheduler_by_name(name: str, source: Tensor) -> MixtureScheduler:
    """The mixture scheduler called ``name`` for the source p ``[K]``:

    * ``kinetic_optimal``: KO eq. 33, kappa_t(x1) = 1 - sin^2((1 - t) Omega(x1)) / sin^2 Omega(x1); for the mask
      source kappa_t = sin^2(pi t / 2) (KO-DFM);
    * ``cubic``: kappa_t = t^3 (KO section 8.2);
    * ``linear``: kappa_t = t (the DFM baseline of KO appendix E.2).

    ``source`` is used by ``kinetic_optimal`` only. An unknown name is a ValueError that lists the valid ones.
    """
    if name == "kinetic_optimal":
        return KineticOptimalScheduler(source)
    if name == "cubic":
        return PolynomialScheduler(3.0)
    if name == "linear":
        return PolynomialScheduler(1.0)
    raise ValueError(f"unknown scheduler {name!r}; choose one of {', '.join(SCHEDULER_NAMES)}")


def matching_time(t: Tensor, sampler: MixtureScheduler, trained: MixtureScheduler) -> Tensor:
    """t' = kappa_trained^{-1}(kappa_sampler(t)): where ``trained`` reaches the noise level of ``sampler`` at t.

    KO appendix E.1 (change of variables): two token-independent mixture paths with the same source differ only by
    a reparametrisation of time, so the posterior p_{1|t}(. | x_t) of the ``sampler`` path at t is that of the
    ``trained`` path at t'. A posterior network trained with one scheduler thus serves a sampler with another when
    it is evaluated at t'. ``t`` ``[...]`` -> ``[...]`` (same dtype).
    """
    if sampler is trained:
        return t
    return trained.inverse(sampler.data_kappa(t.double())).to(t.dtype)


class BetaScheduler(ABC):
    """beta_t of a metric-induced path (KO eq. 27): monotone, beta_0 = 0, beta_t -> inf as t -> 1."""

    @abstractmethod
    def __call__(self, t: Tensor) -> tuple[Tensor, Tensor]:
        """``t`` ``[...]`` -> (beta_t, d beta_t / dt), each ``[...]``."""


class RatioPowerBeta(BetaScheduler):
    """beta_t = c (t / (1 - t))^a, the parameterisation of KO's metric-path experiments."""

    def __init__(self, c: float = 1.0, a: float = 1.0) -> None:
        if c <= 0 or a <= 0:
            raise ValueError(f"c and a must be positive, got c={c}, a={a}")
        self.c, self.a = float(c), float(a)

    def __call__(self, t: Tensor) -> tuple[Tensor, Tensor]:
        r = t / (1 - t)
        beta = self.c * r ** self.a
        dbeta = self.c * self.a * r ** (self.a - 1) / (1 - t) ** 2
        return beta, dbeta
