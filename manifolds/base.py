"""The shared vocabulary of Generator Matching (GM sections 3-5), for every state space.

Time runs from t = 0 (source / noise, p_0) to t = 1 (data, p_1 = q). A data point is ``z``
(GM's conditioning variable; x1 in KO and MultiFlow). All tensors are batched on the leading axis:
``x`` is ``[B, *event_shape]``, ``t`` is ``[B]`` (or a float, broadcast).

* :class:`ProbabilityPath` - a conditional probability path p_t(dx | z) with p_0(.|z) = p_0 and
  p_1(.|z) = delta_z (GM section 3).
* :class:`ConditionalGenerator` - a generator L_t^z that solves the KFE for that path
  (GM Principle 3, eq. 9), in a linear parameterisation F_t^z(x) (GM eq. 15) trained with a
  Bregman divergence D (GM eq. 16-17, Table 1). The same object serves

  - training: ``target(x, z, t)`` = F_t^z(x) and ``loss(pred, target)`` = D(F_t^z(x), F_t^theta(x));
  - sampling with a network ("predict z, then take a conditional step", GM Prop. 1 in posterior-mean
    form): ``step(x, t, h, z_hat)``;
  - sampling with an exact posterior over a finite data set (GM Prop. 1 averaged form; the exact
    oracle of the tests): ``marginal_step(x, t, h, support, weights)``.

Composition: a Markov superposition of generators of one space (GM Prop. 3) and a product of
generators of different spaces (GM Prop. 4) are themselves ``ConditionalGenerator`` objects.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
from torch import Tensor

TimeLike = Tensor | float


def as_time(t: TimeLike, batch: int, like: Tensor) -> Tensor:
    """Broadcast a scalar or ``[B]`` time to a ``[B]`` tensor with ``like``'s dtype/device."""
    t = torch.as_tensor(t, dtype=like.dtype if like.is_floating_point() else torch.get_default_dtype(),
                        device=like.device)
    if t.ndim == 0:
        t = t.expand(batch)
    if t.shape != (batch,):
        raise ValueError(f"time must be a scalar or have shape [{batch}], got {tuple(t.shape)}")
    return t


def expand_time(t: Tensor, x: Tensor) -> Tensor:
    """``[B]`` -> ``[B, 1, ..., 1]`` so that it broadcasts against ``x`` ``[B, *event]``."""
    return t.reshape(t.shape + (1,) * (x.ndim - t.ndim))


class ProbabilityPath(ABC):
    """Conditional probability path p_t(dx | z) (GM section 3)."""

    @abstractmethod
    def sample_source(self, z: Tensor, rng: torch.Generator | None = None) -> Tensor:
        """x_0 ~ p_0, shaped like ``z`` ``[B, *event]`` (the source does not depend on z's value)."""

    @abstractmethod
    def sample(self, z: Tensor, t: TimeLike, rng: torch.Generator | None = None) -> Tensor:
        """x_t ~ p_t(. | z): ``z`` [B, *event], ``t`` [B] -> [B, *event]."""

    def sample_from(self, x0: Tensor, z: Tensor, t: TimeLike, rng: torch.Generator | None = None) -> Tensor:
        """x_t ~ p_t(. | x_0, z): the path's point at t given its source draw ``x0`` (GM eq. 2-3; paths built from a
        source draw), ``[B, *event]``. With ``x0`` from :meth:`sample_source` this is a draw of :meth:`sample`; with
        ``x0`` paired to ``z`` by a coupling (minibatch OT), a draw of the path conditioned on (x_0, z) (GM
        section 2, remark)."""
        raise NotImplementedError(f"{type(self).__name__} is not built from a source draw")

    def log_prob(self, x: Tensor, z: Tensor, t: TimeLike) -> Tensor:
        """log p_t(x | z) w.r.t. the space's reference measure, ``[B]`` (paths with a density)."""
        raise NotImplementedError(f"{type(self).__name__} has no density")

    def dt_log_prob(self, x: Tensor, z: Tensor, t: TimeLike) -> Tensor:
        """d/dt log p_t(x | z), ``[B]`` (paths with a density; closed form, no autograd)."""
        raise NotImplementedError(f"{type(self).__name__} has no density time derivative")


class ConditionalGenerator(ABC):
    """A conditional generator L_t^z solving the KFE for ``self.path`` (GM Principle 3).

    Subclasses fix a parameterisation F_t^z(x) (GM eq. 15): a velocity for flows, a jump
    measure / rate for jumps, a diffusion coefficient for diffusions, a rate matrix for CTMCs.
    """

    path: ProbabilityPath

    @abstractmethod
    def target(self, x: Tensor, z: Tensor, t: TimeLike) -> Tensor:
        """F_t^z(x): the regression target of conditional generator matching (GM eq. 17)."""

    @abstractmethod
    def loss(self, pred: Tensor, target: Tensor) -> Tensor:
        """Bregman divergence D(target, pred) per batch element, ``[B]`` (GM eq. 16, Table 1)."""

    @abstractmethod
    def step(self, x: Tensor, t: TimeLike, h: float, z: Tensor,
             rng: torch.Generator | None = None) -> Tensor:
        """One Euler step of the conditional process toward ``z`` (a model's prediction z_hat in
        posterior-mean sampling): x_t -> x_{t+h}."""

    @abstractmethod
    def marginal_step(self, x: Tensor, t: TimeLike, h: float, support: Tensor, weights: Tensor,
                      rng: torch.Generator | None = None) -> Tensor:
        """One Euler step of the marginal process L_t = E_{z ~ p(z | x)} L_t^z (GM Prop. 1).

        ``support`` [M, *event] are candidate data points, ``weights`` [B, M] the posterior
        p(z_m | x_t) of each batch element (rows sum to 1). Linear parameterisations average F;
        jump-type generators mix their jump measures.
        """


def expand_pairs(x: Tensor, support: Tensor, t: TimeLike) -> tuple[Tensor, Tensor, Tensor]:
    """All (x_b, z_m) pairs for posterior averages (GM Prop. 1): ``x`` [B, *event], ``support`` [M, *event]
    -> x [B*M, *event], z [B*M, *event], t [B*M] (row b*M + m holds (x_b, z_m, t_b))."""
    b, m = x.shape[0], support.shape[0]
    t = as_time(t, b, x)
    xe = x.unsqueeze(1).expand((b, m) + tuple(x.shape[1:])).reshape((b * m,) + tuple(x.shape[1:]))
    ze = support.unsqueeze(0).expand((b, m) + tuple(support.shape[1:])).reshape((b * m,) + tuple(support.shape[1:]))
    return xe, ze, t.repeat_interleave(m)


def posterior_average(values: Tensor, weights: Tensor) -> Tensor:
    """sum_m w[b, m] values[b*M + m]: ``values`` [B*M, ...], ``weights`` [B, M] -> [B, ...]."""
    b, m = weights.shape
    v = values.reshape((b, m) + tuple(values.shape[1:]))
    return (weights.reshape((b, m) + (1,) * (v.ndim - 2)).to(v.dtype) * v).sum(1)
