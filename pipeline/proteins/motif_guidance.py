"""Reconstruction guidance for a motif (issue 24, item 2 (c); docs/conditioning.md, "Motif guidance"): motif
replacement (:mod:`pipeline.proteins.replacement`) plus a correction of the network's prediction that makes the
network itself predict the motif where the replacement puts it.

Replacement writes the motif into the state, but the network predicts the free residues around *its own* idea of
where the motif residues are; where that differs from the motif (after the best rigid fit), the free residues meet
the motif at the wrong place and the chain breaks at the junctions (docs/results/proteins.md). Reconstruction
guidance (DPS, Chung et al. 2023; for motifs, Didi et al. 2023) treats the motif as a measurement of the clean
structure, y = motif ~ N(A x_1, r^2 I) with A the motif residues' CA after the rigid fit, and approximates the
likelihood of the noisy state by that of the prediction, p(y | x_t) ~ N(y; A x1_hat(x_t), r^2 I). Its score,
-(1 / 2 r^2) grad_{x_t} |y - A x1_hat(x_t)|^2 (through the network), enters the posterior mean
(Tweedie: x1_hat(x_t | y) = x1_hat + (sigma_t^2 / alpha_t) grad_{x_t} log p(y | x_t) on the Gaussian path), so the
guided prediction of the translations is

    x1_hat'_i = x1_hat_i - (gamma / 2) grad_{x_{t,i}} sum_{j in motif} |R m_j + o - x1_hat_j(x_t)|^2   (free i)

with (R, o) the Kabsch fit of the motif to the prediction (held fixed in the gradient), gamma the guidance strength
(A^2; DPS's constant step, here in place of sigma_t^2 / (r^2 alpha_t), which is unbounded at small t). The motif
residues keep their prediction (replacement writes them), rotations and logits are unchanged, and the guided
prediction is also what the network is self-conditioned on next. gamma = 0 is replacement. The step is not
normalised: too large a gamma (64 on the benchmark's tuning motifs) makes the chain blow up. The correction costs
one backward pass through the network per call.

It is an approximation (the likelihood of x_t is that of its mean prediction); on the finite-data oracle of
:mod:`pipeline.proteins.replacement` its error is measured beside replacement's (docs/conditioning.md).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from pipeline.proteins.flow import ProteinState
from pipeline.proteins.replacement import MotifCondition, fit_motif

if TYPE_CHECKING:
    from pipeline.proteins.sampler import Prediction

__all__ = ["DEFAULT_GUIDANCE", "guided_prediction", "motif_residual"]

#: gamma (A^2) of the ``guided`` motif method: the best of 0, 1, 4, 16, 24, 32, 64 on the benchmark's tuning motifs
#: (``--seed 1``, not the reported set; docs/conditioning.md, "Motif guidance")
DEFAULT_GUIDANCE = 16.0


def motif_residual(motif: MotifCondition, pred_trans: Tensor) -> Tensor:
    """sum_j |R m_j + o - x1_hat_j|^2 over each chain's motif residues ``[B]`` (A^2), (R, o) fitted to the
    prediction and held fixed (no gradient through the fit)."""
    rotation, offset = fit_motif(motif, pred_trans.detach())
    target = motif.trans.to(pred_trans) @ rotation.transpose(1, 2) + offset  # [B, N, 3]
    return (((pred_trans - target) ** 2).sum(-1) * motif.mask.to(pred_trans.dtype)).sum(-1)


def guided_prediction(predict: Callable[[ProteinState, float], Prediction], state: ProteinState, t: float,
                      motif: MotifCondition, res_mask: Tensor, gamma: float) -> Prediction:
    """The prediction of ``predict`` at (state, t) with the free residues' translations guided toward a chain in
    which the network predicts the motif (module docstring). ``predict`` must be differentiable in the translations
    (the network, or an exact posterior); a predictor with ``self_condition_on(pred, state)`` is then
    self-conditioned on the guided prediction."""
    x = state.trans.detach().clone().requires_grad_(True)  # [B, N, 3]
    with torch.enable_grad():
        pred = predict(replace(state, trans=x), t)
        (grad,) = torch.autograd.grad(motif_residual(motif, pred.trans).sum(), x)  # chains are independent
    free = (res_mask.bool() & ~motif.mask)[..., None]
    trans = torch.where(free, pred.trans.detach() - 0.5 * gamma * grad, pred.trans.detach())
    guided = replace(pred, trans=trans, rotmats=pred.rotmats.detach(), logits=pred.logits.detach())
    hook = getattr(predict, "self_condition_on", None)
    if hook is not None:
        hook(guided, state)
    return guided
