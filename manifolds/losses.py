"""Bregman divergences (GM eq. 15, Table 1): D(a, b) = phi(a) - phi(b) - <a - b, grad phi(b)>.

* :func:`bregman` builds D from any convex phi (gradient by autograd unless given);
* :func:`mse` - phi = |a|^2: the flow-matching loss;
* :func:`jump_rate_bregman` - phi = sum a log a (generalised KL): D(Q, Q_th) = sum Q_th - Q + Q log(Q / Q_th),
  which is GM Table 1's jump / CTMC loss int Q_th - Q log Q_th plus the theta-free term Q log Q - Q.
All reduce over every axis but the batch axis and return [B].
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

__all__ = ["bregman", "mse", "jump_rate_bregman", "xlogy"]


def _reduce(d: Tensor, weight: Tensor | None = None) -> Tensor:
    if weight is not None:
        d = d * weight
    return d.flatten(1).sum(1) if d.ndim > 1 else d


def bregman(phi: Callable[[Tensor], Tensor],
            grad_phi: Callable[[Tensor], Tensor] | None = None) -> Callable[[Tensor, Tensor], Tensor]:
    """Return D(a, b) = phi(a) - phi(b) - <a - b, grad phi(b)> for a convex phi acting elementwise-summed.

    ``phi`` maps [B, ...] -> [B] (it must sum over the event axes itself). Without ``grad_phi`` the gradient is
    taken by autograd (create_graph=True, so D can be back-propagated through ``b``).
    """

    def divergence(a: Tensor, b: Tensor) -> Tensor:
        if grad_phi is not None:
            gb = grad_phi(b)
        else:
            with torch.enable_grad():
                bb = b if b.requires_grad else b.detach().requires_grad_(True)
                gb, = torch.autograd.grad(phi(bb).sum(), bb, create_graph=b.requires_grad)
        return phi(a) - phi(b) - ((a - b) * gb).flatten(1).sum(1)

    return divergence


def mse(pred: Tensor, target: Tensor, weight: Tensor | None = None) -> Tensor:
    """|target - pred|^2 summed per batch element (Bregman of phi = |.|^2)."""
    return _reduce((target - pred) ** 2, weight)


def xlogy(x: Tensor, y: Tensor) -> Tensor:
    """x log y with 0 log 0 = 0."""
    return torch.special.xlogy(x, y)


def jump_rate_bregman(pred: Tensor, target: Tensor, weight: Tensor | None = None) -> Tensor:
    """Generalised KL between non-negative rates: sum w (pred - target + target log(target / pred)), [B].

    ``pred`` > 0 (e.g. softplus / exp of a network), ``target`` >= 0; ``weight`` is the reference measure of each
    entry (bin widths nu(dy) for a discretised jump kernel, 1 for a CTMC row)."""
    d = pred - target + xlogy(target, target) - xlogy(target, pred)
    return _reduce(d, weight)
