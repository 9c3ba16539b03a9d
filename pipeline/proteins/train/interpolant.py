"""MultiFlow's training interpolant on R^3N x SO(3)^N x [21]^N (GM Prop. 4: one path per factor).

For a batch of clean chains (C-alpha translations x_1, frames R_1, amino acids a_1) it draws
(REFERENCE.md section 1; MultiFlow ``Interpolant.corrupt_batch``):

* times t = u (1 - 2 t_min) + t_min, t_min = 0.01. With ``separate_t`` the structure time (shared by
  translations and rotations) and the sequence time are drawn independently, and a share of the
  examples are forward folding (sequence time 1) or inverse folding (structure time 1);
* translations: x_0 = s (eps - mean eps), eps ~ N(0, I), s = 10 Angstrom, centred over the real residues;
  with minibatch OT each noise is Kabsch-aligned to each target and noises are assigned to targets by
  the Hungarian method on the mean per-residue distance; x_t = (1 - t) x_0 + t x_1;
* rotations: R_0 = R_1 IGSO(3)(I, sigma), sigma = 1.5 (training prior); R_t = R_0 Exp(t Log(R_0^T R_1));
* sequence: the masking CTMC, a_t = a_1 with probability kappa(t), else MASK (= 20); kappa(t) = t for
  MultiFlow's linear scheduler, sin^2(pi t / 2) for the kinetic-optimal one (KO eq. 33, mask source).

Padded residues hold x = 0, R = I and MASK.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from manifolds import so3
from manifolds.discrete import SCHEDULER_NAMES, SchedulerName, mask_source, scheduler_by_name
from pipeline.proteins.network import ProteinNetworkInput
from structures.proteins.residue_constants import MASK_INDEX, NUM_TOKENS


@dataclass(frozen=True)
class InterpolantConfig:
    """Settings of the training interpolant (MultiFlow ``pdb_codesign`` values by default)."""

    min_t: float = 0.01
    separate_t: bool = True  # independent structure and sequence times (``codesign_separate_t``)
    forward_fold_prob: float = 0.1  # sequence time 1
    inverse_fold_prob: float = 0.1  # structure time 1
    trans_prior_scale: float = 10.0  # Angstrom
    batch_ot: bool = True
    rot_prior_sigma: float = 1.5
    seq_scheduler: SchedulerName = "linear"  # kappa(t) of the masking CTMC
    self_condition_prob: float = 0.5

    def validate(self) -> None:
        if not 0.0 <= self.min_t < 0.5:
            raise ValueError(f"min_t must be in [0, 0.5), got {self.min_t}")
        if not (0.0 <= self.forward_fold_prob and 0.0 <= self.inverse_fold_prob
                and self.forward_fold_prob + self.inverse_fold_prob <= 1.0):
            raise ValueError("forward_fold_prob and inverse_fold_prob must be >= 0 with a sum <= 1")
        if self.trans_prior_scale <= 0 or self.rot_prior_sigma <= 0:
            raise ValueError("trans_prior_scale and rot_prior_sigma must be positive")
        if self.seq_scheduler not in SCHEDULER_NAMES:
            raise ValueError(f"unknown scheduler {self.seq_scheduler!r}; choose one of {', '.join(SCHEDULER_NAMES)}")
        if not 0.0 <= self.self_condition_prob <= 1.0:
            raise ValueError(f"self_condition_prob must be in [0, 1], got {self.self_condition_prob}")


@dataclass
class ProteinTarget:
    """Clean chains, padded: C-alpha translations (centred), frames, amino acids and the residue mask."""

    trans_1: Tensor  # [B, N, 3] Angstrom
    rotmats_1: Tensor  # [B, N, 3, 3]
    aatypes_1: Tensor  # [B, N] long, 0..19 (20 = unknown / mask)
    res_mask: Tensor  # [B, N] bool


@dataclass
class NoisyProteins:
    """A point x_t of the product path with its times and the clean target."""

    target: ProteinTarget
    trans_t: Tensor  # [B, N, 3]
    rotmats_t: Tensor  # [B, N, 3, 3]
    aatypes_t: Tensor  # [B, N] long
    r3_t: Tensor  # [B]
    so3_t: Tensor  # [B]
    cat_t: Tensor  # [B]

    def network_input(self, trans_sc: Tensor | None = None, aatypes_sc: Tensor | None = None) -> ProteinNetworkInput:
        """The network's input at x_t (residue indices 0 .. N-1, as the sampler)."""
        return ProteinNetworkInput(trans=self.trans_t, rotmats=self.rotmats_t, aatypes=self.aatypes_t,
                                   res_mask=self.target.res_mask, so3_t=self.so3_t, r3_t=self.r3_t, cat_t=self.cat_t,
                                   trans_sc=trans_sc, aatypes_sc=aatypes_sc)


def sample_times(b: int, cfg: InterpolantConfig, g: torch.Generator | None = None,
                 device: torch.device | str = "cpu") -> tuple[Tensor, Tensor]:
    """(structure time, sequence time), each [B], in [t_min, 1 - t_min] or exactly 1 for folding examples."""
    def draw() -> Tensor:
        return torch.rand(b, generator=g, device=device) * (1 - 2 * cfg.min_t) + cfg.min_t

    if not cfg.separate_t:
        t = draw()
        return t, t.clone()
    u = torch.rand(b, generator=g, device=device)
    forward_fold = u < cfg.forward_fold_prob
    inverse_fold = (u >= cfg.forward_fold_prob) & (u < cfg.forward_fold_prob + cfg.inverse_fold_prob)
    structure_t, cat_t = draw(), draw()
    one = torch.ones(b, device=device)
    return torch.where(inverse_fold, one, structure_t), torch.where(forward_fold, one, cat_t)


def centred_gaussian(res_mask: Tensor, scale: float, g: torch.Generator | None = None) -> Tensor:
    """scale (eps - mean over real residues), eps ~ N(0, I); zero on padding. [B, N, 3]."""
    m = res_mask.to(torch.float32)[..., None]  # [B, N, 1]
    eps = torch.randn(res_mask.shape + (3,), generator=g, device=res_mask.device)
    mean = (eps * m).sum(-2, keepdim=True) / m.sum(-2, keepdim=True).clamp_min(1)
    return scale * (eps - mean) * m


def kabsch_rotation(x: Tensor, y: Tensor, mask: Tensor) -> Tensor:
    """Rotation R [..., 3, 3] minimising sum_n m_n |x_n R - y_n|^2 for centred x, y [..., N, 3] (row vectors)."""
    h = (x * mask[..., None]).transpose(-1, -2) @ y  # [..., 3, 3]
    u, _, vh = torch.linalg.svd(h.double())
    d = torch.sign(torch.det(u @ vh))
    d = torch.where(d == 0, torch.ones_like(d), d)
    fix = torch.diag_embed(torch.stack([torch.ones_like(d), torch.ones_like(d), d], -1))
    return (u @ fix @ vh).to(x.dtype)


def minibatch_ot(x1: Tensor, res_mask: Tensor, scale: float, g: torch.Generator | None = None) -> Tensor:
    """Noise for targets ``x1`` [B, N, 3]: B centred Gaussians, each Kabsch-aligned to each target (centred
    over that target's residues), assigned to targets by the Hungarian method on the mean per-residue
    distance (MultiFlow ``_batch_ot``). Returns [B, N, 3], zero on padding."""
    from scipy.optimize import linear_sum_assignment

    b = x1.shape[0]
    eps = scale * torch.randn(x1.shape, generator=g, device=x1.device)  # [B, N, 3]
    m = res_mask.to(x1.dtype)  # [B, N]
    mi = m[None, :, :, None]  # [1, B(target), N, 1]
    noise = eps[:, None] * mi  # [B(noise), B(target), N, 3]
    noise = (noise - noise.sum(-2, keepdim=True) / mi.sum(-2, keepdim=True).clamp_min(1)) * mi
    target = x1[None].expand_as(noise)
    rot = kabsch_rotation(noise, target, m[None].expand(b, b, -1))  # [B, B, 3, 3]
    aligned = noise @ rot  # [B, B, N, 3]
    cost = ((aligned - target).norm(dim=-1) * m[None]).sum(-1) / m.sum(-1)[None].clamp_min(1)  # [B, B]
    noise_idx, target_idx = linear_sum_assignment(cost.detach().cpu().double().numpy())
    order = np.empty(b, dtype=np.int64)
    order[target_idx] = noise_idx
    return aligned[torch.as_tensor(order, device=x1.device), torch.arange(b, device=x1.device)]


def sequence_kappa(t: Tensor, scheduler: str) -> Tensor:
    """kappa(t) [B] of the masking path: the probability that a residue already shows its amino acid."""
    sched = scheduler_by_name(scheduler, mask_source(NUM_TOKENS, MASK_INDEX, dtype=torch.float64))
    return sched.data_kappa(t.double()).to(t.dtype)


def mask_sequence(aatypes_1: Tensor, kappa: Tensor, res_mask: Tensor, g: torch.Generator | None = None) -> Tensor:
    """a_t: each real residue keeps a_1 with probability kappa [B], else MASK; padding is MASK. [B, N]."""
    u = torch.rand(aatypes_1.shape, generator=g, device=aatypes_1.device)
    keep = (u < kappa[:, None]) & res_mask.bool()
    return torch.where(keep, aatypes_1, torch.full_like(aatypes_1, MASK_INDEX))


def corrupt(target: ProteinTarget, cfg: InterpolantConfig, g: torch.Generator | None = None,
            times: tuple[Tensor, Tensor] | None = None) -> NoisyProteins:
    """x_t ~ p_t(. | x_1) for the whole product space (see the module docstring); ``times`` (structure time,
    sequence time), each [B], replace the drawn ones (validation on a fixed time grid)."""
    mask = target.res_mask.bool()
    b, device = mask.shape[0], mask.device
    m = mask.to(target.trans_1.dtype)
    structure_t, cat_t = times if times is not None else sample_times(b, cfg, g, device)
    if cfg.batch_ot and b > 1:
        trans_0 = minibatch_ot(target.trans_1, mask, cfg.trans_prior_scale, g)
    else:
        trans_0 = centred_gaussian(mask, cfg.trans_prior_scale, g)
    s = structure_t[:, None, None]
    trans_t = ((1 - s) * trans_0 + s * target.trans_1) * m[..., None]
    noise_rot = so3.sample_igso3(torch.eye(3, device=device).expand(*mask.shape, 3, 3), cfg.rot_prior_sigma, g)
    rot_0 = target.rotmats_1 @ noise_rot.to(target.rotmats_1.dtype)
    rot_t = so3.geodesic(rot_0, target.rotmats_1, structure_t[:, None].expand(mask.shape))
    eye = torch.eye(3, dtype=rot_t.dtype, device=device)
    rot_t = torch.where(mask[..., None, None], rot_t, eye)
    aatypes_t = mask_sequence(target.aatypes_1, sequence_kappa(cat_t, cfg.seq_scheduler), mask, g)
    return NoisyProteins(target=target, trans_t=trans_t, rotmats_t=rot_t, aatypes_t=aatypes_t,
                         r3_t=structure_t, so3_t=structure_t.clone(), cat_t=cat_t)
