"""CTMC generators for factorised discrete paths (GM section 4 / KO sections 2-5).

:class:`DiscreteGenerator` is the project's :class:`~manifolds.base.ConditionalGenerator` for token
sequences: velocities are single-position changes (KO eq. 7), so a state ``x`` ``[B, *event]`` moves by
independent per-position jumps (KO eq. 8). Its parameterisation is the posterior (x1-prediction): the
conditional target is delta_{x1} and the marginal one the factorised posterior p_{1|t} (KO eq. 9-11),
learned with cross-entropy, the Bregman divergence of the negative entropy (GM Table 1).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from manifolds.base import ConditionalGenerator, TimeLike, as_time, expand_time
from manifolds.discrete.paths import BlockPath, DiscretePath, MixturePath, categorical
from manifolds.discrete.velocities import mixture_marginal_velocity, mixture_velocity_column, velocity_column

CorrectorWeight = float | Callable[[Tensor], Tensor]


def support_posterior(support: Tensor, weights: Tensor, vocab_size: int) -> Tensor:
    """Factorised posterior p^i_{1|t}(a | x) = sum_m w_m delta(support_m^i = a) (KO eq. 10) of a weighted finite
    support: ``support`` ``[M, *event]``, ``weights`` ``[B, M]`` -> ``[B, *event, K]``."""
    onehot = torch.nn.functional.one_hot(support, vocab_size).to(weights.dtype)  # [M, *event, K]
    return torch.einsum("bm,m...->b...", weights, onehot)


def jump_step(x: Tensor, rates: Tensor, h: float | Tensor, rng: torch.Generator | None = None) -> Tensor:
    """The always-valid exponential step of KO appendix A (Algorithm 1) for any step size h.

    ``rates`` ``[B, *event, K]`` = u(., x^i) per position. Stay with probability exp(-h lambda),
    lambda = sum_{y != x^i} u(y, x^i); otherwise jump to y ~ u(y, x^i) (1 - delta_{x^i}(y)) / lambda.
    """
    off = rates.scatter(-1, x.unsqueeze(-1), 0.0).clamp_min(0)  # [B, *event, K]
    lam = off.sum(-1)
    h = torch.as_tensor(h, dtype=lam.dtype, device=lam.device)
    h = h.reshape(h.shape + (1,) * (lam.ndim - h.ndim))
    jump = torch.rand(lam.shape, dtype=lam.dtype, device=x.device, generator=rng) < -torch.expm1(-h * lam)
    return torch.where(jump, categorical(off, rng), x)


def jump_probs(x: Tensor, rates: Tensor, h: float | Tensor) -> Tensor:
    """The one-step transition PMF of :func:`jump_step`: ``[B, *event, K]`` (for tests and diagnostics)."""
    off = rates.scatter(-1, x.unsqueeze(-1), 0.0).clamp_min(0)
    lam = off.sum(-1, keepdim=True)
    h = torch.as_tensor(h, dtype=lam.dtype, device=lam.device)
    h = h.reshape(h.shape + (1,) * (lam.ndim - h.ndim))
    move = -torch.expm1(-h * lam)
    p = torch.where(lam > 0, move * off / lam.clamp_min(torch.finfo(lam.dtype).tiny), torch.zeros_like(off))
    return p.scatter(-1, x.unsqueeze(-1), 1 - move)


class DiscreteGenerator(ConditionalGenerator):
    """Kinetic-optimal CTMC for any :class:`DiscretePath`, with an optional corrector.

    * ``power`` nu of the flux family (KO eq. 22-23, appendix C.3): 1 gives KO eq. 26 (= eq. 75 on mixture
      paths, eq. 29 on metric paths), ``math.inf`` the power-infinity velocity (eq. 79-80).
    * ``corrector``: weight c >= 0 (or a function of t ``[B]`` -> ``[B]``) of the probability-preserving
      velocity of KO eq. 35 added to the kinetic-optimal one; the path stays invariant.

    Mixture paths with power 1 and no corrector use the closed form eq. 75 in O(B D) (no K-sized work
    beyond the posterior draw); everything else (or ``closed_form=False``) builds the O(K) column of
    :func:`velocity_column` from the path's p_t and d/dt p_t.
    """

    def __init__(self, path: DiscretePath, power: float = 1.0, corrector: CorrectorWeight = 0.0,
                 closed_form: bool = True) -> None:
        if not isinstance(path, DiscretePath):
            raise TypeError(f"DiscreteGenerator needs a DiscretePath, got {type(path).__name__}")
        if not callable(corrector) and corrector < 0:
            raise ValueError(f"corrector weight must be >= 0, got {corrector}")
        if power <= 0:
            raise ValueError(f"power must be positive, got {power}")
        self.path = path
        self.power = float(power)
        self.corrector = corrector
        #: mixture path with power 1: the step has a closed form (KO eq. 75, plus eq. 35's corrector below)
        self.closed_mixture = closed_form and isinstance(path, MixturePath) and self.power == 1.0
        #: ... and no corrector: rates and marginal rates have closed forms too (KO eq. 75-76)
        self.fast_mixture = self.closed_mixture and not callable(corrector) and corrector == 0
        #: a BlockPath steps each kind with its own branch's generator (O(1) / O(K_in) instead of O(K) per position)
        self.branches = None
        if closed_form and isinstance(path, BlockPath):
            self.branches = (DiscreteGenerator(path.outer, power, corrector),
                             DiscreteGenerator(path.inner, power, corrector))

    @property
    def vocab_size(self) -> int:
        return self.path.vocab_size

    def _corrector(self, x: Tensor, t: Tensor) -> Tensor | float:
        if callable(self.corrector):
            return expand_time(self.corrector(t), x)
        return self.corrector

    # ---- rates ---------------------------------------------------------------------------------
    def rates(self, x: Tensor, z: Tensor, t: TimeLike) -> Tensor:
        """Conditional velocity column u_t(., x^i | z^i) per position, ``[B, *event, K]`` (rate conditions hold)."""
        t = as_time(t, x.shape[0], torch.empty(()))
        if self.fast_mixture:
            assert isinstance(self.path, MixturePath)
            return mixture_velocity_column(x, z, self.path.jump_rate(z, t), self.vocab_size)
        return self._column(x, z, t, *self.path.derivatives(z, t))

    def _column(self, x: Tensor, z: Tensor, t: Tensor, p: Tensor, dp: Tensor, dlogp: Tensor) -> Tensor:
        """The O(K) column u(., x | z) from the path's (p, dp, dlogp) at x1 = z (shapes ``[..., K]``)."""
        col = velocity_column(p, dp, x, self.power, self._corrector(x, t), dlogp=dlogp)
        # From a state of zero conditional probability (a learned posterior's x1 inconsistent with an
        # already-unmasked token) KO eq. 16 gives no flux; on mixture paths continue with eq. 75 there, as
        # Gat et al.'s mixture velocity does, so that such positions still reach x1 instead of sticking.
        dead = p.gather(-1, x.unsqueeze(-1)) == 0  # [..., 1]
        if bool(dead.any()):
            rate = self.path.dead_state_rate(z, t)
            if rate is not None:
                eq75 = mixture_velocity_column(x, z, rate, self.vocab_size)
                col = torch.where(dead, eq75.to(col.dtype), col)
        return col

    def marginal_rates(self, x: Tensor, t: TimeLike, posterior: Tensor) -> Tensor:
        """Marginal velocity u^i_t(., x) = sum_a u_t(., x^i | a) p^i_{1|t}(a | x) (KO eq. 9), ``[B, *event, K]``.

        Closed form KO eq. 76 for plain mixture paths (any K); otherwise O(K^2) per position (small K).
        """
        t = as_time(t, x.shape[0], torch.empty(()))
        if self.fast_mixture:
            assert isinstance(self.path, MixturePath)
            return mixture_marginal_velocity(posterior, x, self.path.token_rates(expand_time(t, x)))
        K = self.vocab_size
        tokens = torch.arange(K, device=x.device)
        full = x.shape + (K, K)  # [B, *event, K(a), K(y)]
        if bool((t == t[0]).all()):  # one time: the path's PMFs for every x1 = a form one [K(a), K] table
            tabs = self.path.derivatives(tokens.unsqueeze(0), t[:1])
        else:
            tabs = self.path.derivatives(tokens.expand(x.shape[0], K), t)  # [B, K(a), K]
        view = (tabs[0].shape[0],) + (1,) * (x.ndim - 1) + (K, K)
        p, dp, dlogp = (v.reshape(view).expand(full) for v in tabs)
        cols = self._column(x.unsqueeze(-1).expand(full[:-1]), tokens.expand(full[:-1]), t, p, dp, dlogp)
        return (posterior.unsqueeze(-1) * cols).sum(-2)

    # ---- ConditionalGenerator ------------------------------------------------------------------
    def target(self, x: Tensor, z: Tensor, t: TimeLike) -> Tensor:
        """delta_{z}: one-hot ``[B, *event, K]``; its posterior mean is p_{1|t}(. | x) (KO eq. 9-10)."""
        return torch.nn.functional.one_hot(z, self.vocab_size).to(torch.get_default_dtype())

    def loss(self, pred: Tensor, target: Tensor) -> Tensor:
        """Cross-entropy (KO eq. 11) = KL(target || softmax(pred)) up to target entropy, summed over
        positions: ``pred`` logits ``[B, *event, K]``, ``target`` ``[B, *event, K]`` -> ``[B]``."""
        return -(target * torch.log_softmax(pred, -1)).flatten(1).sum(1)

    def step(self, x: Tensor, t: TimeLike, h: float, z: Tensor,
             rng: torch.Generator | None = None) -> Tensor:
        """Exponential step (KO Algorithm 1) of the conditional CTMC toward ``z``: x_t -> x_{t+h}."""
        if self.closed_mixture:
            return self._mixture_step(x, as_time(t, x.shape[0], torch.empty(())), h, z, rng)
        if self.branches is not None:
            return self._block_step(x, t, h, z, rng)
        return jump_step(x, self.rates(x, z, t), h, rng)

    def _block_step(self, x: Tensor, t: TimeLike, h: float, z: Tensor, rng: torch.Generator | None) -> Tensor:
        """The step on a :class:`BlockPath`, branch by branch: the velocity of the whole (KO eq. 26) is, at each
        position, that of the branch of x1 = z, whose support is the branch's tokens. A state outside the block
        of an in-block z has p_t(x | z) = 0 and no flux (KO eq. 16): it stays, as with the full column."""
        path = self.path
        assert isinstance(path, BlockPath) and self.branches is not None
        outer, inner = self.branches
        z_in, x_in = path.in_block(z), path.in_block(x)
        moved_out = outer.step(x, t, h, z, rng)
        moved_in = inner.step(path.local(x), t, h, path.local(z), rng) + path.offset
        return torch.where(z_in, torch.where(x_in, moved_in, x), moved_out)

    def _mixture_step(self, x: Tensor, t: Tensor, h: float, z: Tensor, rng: torch.Generator | None) -> Tensor:
        """Algorithm 1 on a mixture path in O(1) per position (no K-sized tensors).

        Without corrector (KO eq. 75): jump to x1 = z at rate lambda = kappa' / (1 - kappa). With corrector weight c
        (KO eq. 35 with the flux of eq. 26, simplified on the mixture path): from x != x1 with p(x) > 0 jump to x1 at
        rate (1 + c) lambda; from x = x1 jump to y ~ p(y) (y != x1) at total rate
        c kappa' (1 - p(x1)) / (kappa + (1 - kappa) p(x1)); from states of zero probability, eq. 75.
        """
        path = self.path
        assert isinstance(path, MixturePath)
        lam = torch.broadcast_to(path.jump_rate(z, t), x.shape)
        u = torch.rand(x.shape, dtype=lam.dtype, device=x.device, generator=rng)
        if self.fast_mixture:
            return torch.where((z != x) & (u < -torch.expm1(-h * lam)), z, x)
        c = torch.broadcast_to(torch.as_tensor(self._corrector(x, t), dtype=lam.dtype, device=x.device), x.shape)
        k, dk = (torch.broadcast_to(v, x.shape) for v in path.kappa(z, t))
        src = path.source.to(device=x.device, dtype=lam.dtype)
        p0_x1, p0_x = src[z], src[x]
        at_x1 = x == z
        den = k + (1 - k) * p0_x1  # p_t(x1 | x1)
        back = torch.where(den > 0, c * dk * (1 - p0_x1) / den.clamp_min(torch.finfo(den.dtype).tiny),
                           torch.zeros_like(den))
        rate = torch.where(at_x1, back, torch.where(p0_x > 0, (1 + c) * lam, lam))
        jump = u < -torch.expm1(-h * rate)
        if path.source_token is not None:  # mask source: re-noise to the mask token
            renoise = torch.full_like(x, path.source_token)
        else:  # y ~ p0 restricted to y != x1, by inverse CDF with x1's mass cut out
            cdf = src.cumsum(0)
            r = torch.rand(x.shape, dtype=lam.dtype, device=x.device, generator=rng) * (1 - p0_x1)
            r = torch.where(r >= cdf[z] - p0_x1, r + p0_x1, r)
            renoise = torch.searchsorted(cdf, r, right=True).clamp_max(self.vocab_size - 1)
        return torch.where(jump, torch.where(at_x1, renoise, z), x)

    def marginal_step(self, x: Tensor, t: TimeLike, h: float, support: Tensor, weights: Tensor,
                      rng: torch.Generator | None = None) -> Tensor:
        """Posterior-sampling step (KO section 3, eq. 13): draw x1^i from the factorised posterior of the
        weighted ``support``, then take the conditional step."""
        z = categorical(support_posterior(support, weights, self.vocab_size), rng)
        return self.step(x, t, h, z, rng)
