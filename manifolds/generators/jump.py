"""Jump solution of the KFE for any path with a density (GM eq. 13 in general form; GM section 9):

    lambda_t(x | z) = [-d/dt log p_t(x | z)]_+,   J_t(dy | z) proportional to [d/dt p_t(y | z)]_+ nu(dy),
    Q_t(dy; x | z) = lambda_t(x | z) J_t(dy | z).

KFE check: int Q_t(x; y) p_t(y) dy - lambda_t(x) p_t(x) = J_t(x) int [-d/dt p]_+ - [-d/dt p_t(x)]_+ = d/dt p_t(x),
because int [d/dt p]_+ = int [-d/dt p]_+ (the total mass is conserved). Applied per element (per coordinate on R^d,
per rotation on SO(3)^N), which is GM Prop. 4. The path supplies ``jump_intensity`` (closed form) and an exact
``sample_jump_target``.

Parameterisation: F_t^z(x) = lambda_t(x | z) per element (the total mass of the jump kernel; the normalised target is
a function of z only). Loss: the generalised-KL Bregman divergence of GM Table 1 restricted to that mass.
Sampling (Euler, GM Table 1): an element jumps with probability 1 - exp(-h lambda) (= h lambda + O(h^2)) to y ~ J_t.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from manifolds.base import ConditionalGenerator, ProbabilityPath, TimeLike, as_time, expand_pairs
from manifolds.losses import jump_rate_bregman

__all__ = ["DensityJumpGenerator"]


def _elements(x: Tensor, element_ndim: int) -> tuple[int, ...]:
    return tuple(x.shape[1: x.ndim - element_ndim])


@dataclass(frozen=True)
class DensityJumpGenerator(ConditionalGenerator):
    path: ProbabilityPath

    @property
    def element_ndim(self) -> int:
        return self.path.space.element_ndim

    def target(self, x: Tensor, z: Tensor, t: TimeLike) -> Tensor:
        """lambda_t(x | z) per element, [B, *elems]."""
        return self.path.jump_intensity(x, z, t)

    def loss(self, pred: Tensor, target: Tensor) -> Tensor:
        return jump_rate_bregman(pred, target)

    def _jump(self, x: Tensor, rate: Tensor, h: float, z_target: Tensor, t: TimeLike,
              rng: torch.Generator | None) -> Tensor:
        """Elements jump with probability 1 - exp(-h rate); only the jumpers draw a target (one batched call)."""
        u = torch.rand(rate.shape, generator=rng, dtype=rate.dtype, device=rate.device)
        jumps = u < -torch.expm1(-h * rate)  # [B, *elems]
        if not bool(jumps.any()):
            return x
        t_el = as_time(t, x.shape[0], x).reshape((-1,) + (1,) * (jumps.ndim - 1)).expand(jumps.shape)
        z_j = z_target.reshape(jumps.shape + z_target.shape[jumps.ndim:])[jumps]  # [n, *element_shape]
        y = self.path.sample_jump_target(z_j.unsqueeze(1), t_el[jumps], rng=rng).squeeze(1)
        out = x.clone()
        out[jumps] = y.to(out.dtype)
        return out

    def step(self, x: Tensor, t: TimeLike, h: float, z: Tensor,
             rng: torch.Generator | None = None) -> Tensor:
        return self._jump(x, self.path.jump_intensity(x, z, t), h, z, t, rng)

    def marginal_step(self, x: Tensor, t: TimeLike, h: float, support: Tensor, weights: Tensor,
                      rng: torch.Generator | None = None) -> Tensor:
        """Mixture of jump kernels: element e jumps with total rate sum_m w_m lambda(x_e | z_m), to J(. | z_m) with m
        drawn proportionally to w_m lambda(x_e | z_m)."""
        b, m = weights.shape
        elems = _elements(x, self.element_ndim)
        xe, ze, te = expand_pairs(x, support, t)
        lam = self.path.jump_intensity(xe, ze, te).reshape((b, m, -1))  # [B, M, E]
        rates = weights.to(lam.dtype)[..., None] * lam
        total = rates.sum(1)  # [B, E]
        cum = rates.cumsum(1)
        u = torch.rand(total.shape, generator=rng, dtype=total.dtype, device=total.device) * total
        idx = (cum < u[:, None]).sum(1).clamp_max(m - 1)  # [B, E]
        e = total.shape[1]
        sup = support.reshape((m, e) + tuple(support.shape[1 + len(elems):]))
        z_sel = sup[idx, torch.arange(e, device=idx.device)[None, :]]  # [B, E, *element_shape]
        z_sel = z_sel.reshape(x.shape)
        return self._jump(x, total.reshape((b,) + elems), h, z_sel, as_time(t, b, x), rng)
