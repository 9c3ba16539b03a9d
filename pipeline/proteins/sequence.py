"""Sequence generators of the protein flow: CTMCs on [21]^N (20 amino acids + MASK = 20), each a
:class:`~manifolds.base.ConditionalGenerator`, so that one loop drives every combination.

The network's "prediction" for the sequence is its logits ``[B, N, 21]``: the posterior mean of the one-hot target
delta_{a_1} (GM Prop. 1 in posterior-mean form; the mask column is ignored), so ``step(x, t, h, logits)`` takes them
where a continuous component takes its z_hat.

* :class:`PuritySequence` - MultiFlow's purity sampler (temperature 0.1, noise eta = 20): unmask
  K ~ Binomial(#masked, min(1, h (1 + eta t) / (1 - t))) masked positions, the most confident first, each drawn from
  pi = softmax(logits[:20] / temperature); then re-mask every position with probability min(1, h eta). Not an exact
  CTMC of the masking path (the confidence order is a heuristic), so it is not used with the exact oracle.
* :class:`MaskedSequence` - the KO mask-path CTMC (KO eq. 2 with the mask source; kinetic-optimal (KO eq. 33),
  cubic or linear scheduler, optional corrector KO eq. 35): draw a_1 ~ pi, take the exponential step of KO Alg. 1
  toward it (:class:`manifolds.discrete.DiscreteGenerator`). The network, trained on the linear masking path, is
  evaluated at the matching time of the sampler's scheduler (KO appendix E.1, :meth:`MaskedSequence.network_time`).
* :func:`masking_step_probs` - MultiFlow's non-purity masking step (its forward-folding step), for the fixture.

``land(logits)``: the sequence the final step lands on (no MASK for any generator): purity = MultiFlow's argmax over
the 20 amino acids; KO = a draw from pi.

Sequence constraints (:mod:`pipeline.proteins.conditioning`) reach both generators through their inputs: fixed amino
acids are revealed tokens the sampler holds, allowed sets are logits at -inf (pi = 0) outside the set at every step.
KO: with an exact posterior, revealed tokens give the exact conditional law, allowed sets the exact restricted law
when the data factorise over the restricted positions. Purity: no forbidden amino acid is ever drawn and the
restricted pi also orders the unmasking, but no law is exact (the confidence order is a heuristic, and the re-mask
noise acts on free positions only, since the sampler restores the revealed ones).
"""

from __future__ import annotations

import torch
from torch import Tensor

from manifolds.base import ConditionalGenerator, TimeLike, as_time
from manifolds.discrete import (DiscreteGenerator, MixturePath, categorical, categorical_logits, mask_source,
                                matching_time, scheduler_by_name, support_posterior)
from structures.proteins.residue_constants import MASK_INDEX, NUM_AA, NUM_TOKENS

__all__ = ["MaskedSequence", "PuritySequence", "masking_step_probs", "purity_law", "SequenceGenerator"]

NEG = -1e9  # MultiFlow's "minus infinity" for scores and logits


def _scalar_t(t: TimeLike) -> float:
    """The (common) time of a batch as a float: the sequence steps use one t per call, as MultiFlow's."""
    return float(t.reshape(-1)[0]) if isinstance(t, Tensor) else float(t)


def amino_acid_probs(logits: Tensor, temperature: float) -> Tensor:
    """pi = softmax(logits[..., :20] / temperature): ``[B, N, 21]`` -> ``[B, N, 20]`` (the mask column dropped)."""
    return torch.softmax(logits[..., :NUM_AA] / temperature, dim=-1)


class SequenceGenerator(ConditionalGenerator):
    """Shared parts: the CE target / loss of the masking path and the landing draw."""

    temperature: float

    def target(self, x: Tensor, z: Tensor, t: TimeLike) -> Tensor:
        """delta_{a_1}: one-hot ``[B, N, 21]``; its posterior mean is p_{1|t} (KO eq. 9-10)."""
        return torch.nn.functional.one_hot(z, NUM_TOKENS).to(torch.get_default_dtype())

    def loss(self, pred: Tensor, target: Tensor) -> Tensor:
        """Cross-entropy (KO eq. 11) of logits ``[B, N, 21]`` against ``target``, summed over positions: ``[B]``."""
        return -(target * torch.log_softmax(pred, -1)).flatten(1).sum(1)

    def network_time(self, t: Tensor) -> Tensor:
        """The sequence time ``cat_t`` the network (trained on the linear masking path) is given at sampler time t."""
        return t

    def land(self, logits: Tensor, rng: torch.Generator | None = None) -> Tensor:
        """The final sequence ``[B, N]`` (no MASK): MultiFlow's argmax over the 20 amino acids."""
        return logits[..., :NUM_AA].argmax(-1)

    def marginal_step(self, x: Tensor, t: TimeLike, h: float, support: Tensor, weights: Tensor,
                      rng: torch.Generator | None = None) -> Tensor:
        """Posterior-mean form with an exact posterior (GM Prop. 1): the step from log p_{1|t}(. | x)."""
        post = support_posterior(support, weights, NUM_TOKENS)  # [B, N, 21]
        return self.step(x, t, h, torch.log(post.clamp_min(1e-300)) * self.temperature, rng)


class PuritySequence(SequenceGenerator):
    """MultiFlow's purity sampler (module docstring); ``temperature`` 0.1 and ``noise`` 20 as released."""

    def __init__(self, temperature: float = 0.1, noise: float = 20.0) -> None:
        if temperature <= 0 or noise < 0:
            raise ValueError(f"need temperature > 0 and noise >= 0, got {temperature}, {noise}")
        self.temperature, self.noise = float(temperature), float(noise)
        self.path = MixturePath(mask_source(NUM_TOKENS, MASK_INDEX), scheduler_by_name("linear", torch.ones(1)))

    def probabilities(self, t: float, h: float) -> tuple[float, float]:
        """(unmask probability p, re-mask probability rho) of one step from t with step h."""
        return min(1.0, h * (1.0 + self.noise * t) / (1.0 - t)), min(1.0, h * self.noise)

    def step(self, x: Tensor, t: TimeLike, h: float, z: Tensor,
             rng: torch.Generator | None = None) -> Tensor:
        """One purity step: ``x`` ``[B, N]`` long, ``z`` logits ``[B, N, 21]`` -> ``[B, N]`` long."""
        tt = _scalar_t(t)
        pi = amino_acid_probs(z, self.temperature)  # [B, N, 20]
        masked = x == MASK_INDEX  # [B, N]
        score = torch.log(pi).amax(-1) + NEG * (~masked).to(pi.dtype)  # only masked positions compete
        order = torch.argsort(score, dim=-1, descending=True, stable=True)  # [B, N]
        rank = torch.empty_like(order).scatter_(1, order, torch.arange(x.shape[1], device=x.device).expand_as(order))
        p, rho = self.probabilities(tt, h)
        count = masked.sum(-1).to(pi.dtype)  # [B]
        k = torch.binomial(count, torch.full_like(count, p), generator=rng)  # [B]
        draws = categorical(pi, rng)  # [B, N]
        x = torch.where(rank < k[:, None], draws, x)
        u = torch.rand(x.shape, dtype=pi.dtype, device=x.device, generator=rng)
        return torch.where(u < h * self.noise, torch.full_like(x, MASK_INDEX), x)


def purity_law(x: Tensor, logits: Tensor, t: float, h: float, temperature: float, noise: float) -> Tensor:
    """The exact one-step law of :meth:`PuritySequence.step`, ``[B, N, 21]`` (for tests).

    A masked position of rank r (0-based among the masked positions of its row) gives token k with probability
    (1 - rho) P(K > r) pi_k and MASK with the rest; an unmasked token stays with probability 1 - rho.
    """
    gen = PuritySequence(temperature, noise)
    p, rho = gen.probabilities(t, h)
    pi = amino_acid_probs(logits, temperature).double()
    masked = x == MASK_INDEX
    score = torch.log(pi).amax(-1) + NEG * (~masked).double()
    order = torch.argsort(score, dim=-1, descending=True, stable=True)
    rank = torch.empty_like(order).scatter_(1, order, torch.arange(x.shape[1]).expand_as(order))
    n = masked.sum(-1).double()[:, None]  # [B, 1]
    ks = torch.arange(x.shape[1] + 1, dtype=torch.float64)[None]  # [1, N + 1]
    comb = torch.exp(torch.lgamma(n + 1) - torch.lgamma(ks + 1) - torch.lgamma((n - ks).clamp_min(0) + 1))
    pmf = torch.where(ks <= n, comb * p ** ks * (1 - p) ** (n - ks).clamp_min(0), torch.zeros(()).double())
    tail = 1.0 - pmf.cumsum(-1)  # P(K > r), [B, N + 1]
    p_unmask = tail.gather(1, rank.clamp_max(x.shape[1]))  # [B, N]
    out = torch.zeros(x.shape + (NUM_TOKENS,), dtype=torch.float64)
    out[..., :NUM_AA] = ((1 - rho) * p_unmask)[..., None] * pi
    out[..., MASK_INDEX] = rho + (1 - rho) * (1 - p_unmask)
    kept = torch.nn.functional.one_hot(x, NUM_TOKENS).double() * (1 - rho)
    kept[..., MASK_INDEX] = rho
    return torch.where(masked[..., None], out, kept)


def masking_step_probs(x: Tensor, logits: Tensor, t: float, h: float, temperature: float, noise: float) -> Tensor:
    """MultiFlow's non-purity masking step: the row ``[B, N, 21]`` it draws from (unnormalised when the off-diagonal
    rates exceed 1). Unlike MultiFlow's step, which writes into the logits it is given, ``logits`` is not changed."""
    lg = logits.clone()
    lg[..., MASK_INDEX] = NEG
    pi = torch.softmax(lg / temperature, dim=-1)
    q = h * pi * (1.0 + noise * t) / (1.0 - t)
    q[..., MASK_INDEX] += h * noise * (x != MASK_INDEX).to(q.dtype)
    q = q.clamp(0.0, 1.0).scatter(-1, x[..., None], 0.0)
    q = q.scatter(-1, x[..., None], 1.0 - q.sum(-1, keepdim=True))
    return q.clamp(0.0, 1.0)


class MaskedSequence(SequenceGenerator):
    """The KO mask-path CTMC (module docstring): ``scheduler`` one of ``manifolds.discrete.SCHEDULER_NAMES``."""

    def __init__(self, scheduler: str = "kinetic_optimal", corrector: float = 0.0, temperature: float = 0.1) -> None:
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        source = mask_source(NUM_TOKENS, MASK_INDEX, dtype=torch.get_default_dtype())
        self.scheduler_name = scheduler
        self.inner = DiscreteGenerator(MixturePath(source, scheduler_by_name(scheduler, source)), corrector=corrector)
        self._linear = scheduler_by_name("linear", source)
        self.path = self.inner.path
        self.temperature = float(temperature)

    def network_time(self, t: Tensor) -> Tensor:
        """kappa_t of the sampler's scheduler = the linear path's time at the same noise level (KO E.1)."""
        return matching_time(t, self.inner.path.scheduler, self._linear)

    def step(self, x: Tensor, t: TimeLike, h: float, z: Tensor,
             rng: torch.Generator | None = None) -> Tensor:
        """Draw a_1 ~ pi per position, then the exponential conditional step (KO Alg. 1): ``[B, N]`` long."""
        a1 = categorical_logits(z[..., :NUM_AA] / self.temperature, rng)  # [B, N]
        return self.inner.step(x, as_time(t, x.shape[0], z), h, a1, rng)

    def land(self, logits: Tensor, rng: torch.Generator | None = None) -> Tensor:
        """A draw from pi at every position (the exact transition to t = 1, where p_1 = delta_{a_1})."""
        return categorical_logits(logits[..., :NUM_AA] / self.temperature, rng)
