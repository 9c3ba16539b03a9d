"""MultiFlow's training interpolant, drawn from the protein flow's product path (GM Prop. 4).

The path is :meth:`pipeline.proteins.flow.ProteinFlow.training_path` of the flow built from the settings
(:meth:`InterpolantConfig.flow_config`): the same translation path object that the sampler's translation flow
integrates, the geodesic rotation path (kappa_t = t) and the mask path of the sequence generator. For a batch of clean
chains x_1 (C-alpha translations, frames R_1, amino acids a_1) a training point is drawn in three steps
(MultiFlow ``Interpolant.corrupt_batch``):

1. times t = u (1 - 2 t_min) + t_min, t_min = 0.01. With ``separate_t`` the structure time (shared by translations
   and rotations) and the sequence time are drawn independently, and a share of the examples are forward folding
   (sequence time 1) or inverse folding (structure time 1) (:func:`sample_times`);
2. the source draw x_0, paired with x_1 by a coupling (conditioning on (x_0, x_1) instead of x_1 alone, GM
   section 2, remark) (:meth:`Interpolant.coupling`):

   * translations: without minibatch OT, the sampler's prior (:func:`pipeline.proteins.flow.centred_gaussian`:
     s (eps - mean eps), s = 10 Angstrom, centred over the real residues), independent of x_1; with minibatch OT,
     B draws of the path's source N(0, s^2 I), each centred on and Kabsch-aligned to each target and assigned to
     the targets by the Hungarian method on the mean per-residue distance (:func:`ot_coupling`);
   * rotations: R_0 = R_1 IGSO(3)(I, sigma), sigma = 1.5 (MultiFlow's training source);
   * sequence: MASK (= 20) everywhere, the mask path's source;
3. x_t ~ p_t(. | x_0, x_1) of the product path (:meth:`pipeline.proteins.flow.ProteinPath.sample_from`):
   x_t = (1 - t) x_0 + t x_1; R_t = R_0 Exp(t Log(R_0^T R_1)); a_t = a_1 with probability kappa(t), else MASK, with
   kappa(t) = t for MultiFlow's linear scheduler, sin^2(pi t / 2) for the kinetic-optimal one (KO eq. 33).

With ``motif_prob`` > 0 (the amortised motif method, issue 24; FrameFlow's motif scaffolding, Yim et al. 2024) that
share of the training examples are motif examples (:func:`sample_motif_masks`): 1-3 random segments holding 5-40 % of
the residues form the motif mu. The chain is translated so that the motif's CA centroid is the origin (the sampler
places a motif there: nothing else fixes where a motif sits in its chain), the motif residues are clean (x_t = x_1,
R_t = R_1; their amino acids revealed in half of the motif examples, as ``--motif-sequence``) and the free residues'
translation source is N(0, s^2 I) around that origin, not centred and not OT-coupled (the amortised sampler's
source). The network is told mu (``ProteinNetworkInput.motif_mask``).

Padded residues hold x = 0, R = I and MASK. Every random draw comes from the generator ``g``, in the order times,
translation source, rotation source, sequence uniforms.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from manifolds import so3
from manifolds.discrete import SCHEDULER_NAMES, SchedulerName
from pipeline.proteins.flow import (ProteinFlow, ProteinFlowConfig, ProteinPath, ProteinState, SequenceConfig,
                                    centred_gaussian, kabsch_rotation)
from pipeline.proteins.network import ProteinNetworkInput
from structures.proteins.residue_constants import MASK_INDEX

__all__ = ["Interpolant", "InterpolantConfig", "NoisyProteins", "ProteinTarget", "centred_gaussian",
           "kabsch_rotation", "ot_coupling", "sample_motif_masks", "sample_times"]


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
    motif_prob: float = 0.0  # share of motif examples (module docstring); 0: MultiFlow's unconditional objective

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
        if not 0.0 <= self.motif_prob <= 1.0:
            raise ValueError(f"motif_prob must be in [0, 1], got {self.motif_prob}")

    def flow_config(self) -> ProteinFlowConfig:
        """The flow whose product path is trained: translation prior scale and t_min from here, and as sequence
        generator the KO mask CTMC on the training scheduler (it integrates exactly the trained mask path)."""
        return ProteinFlowConfig(sequence=SequenceConfig(kind="ko", scheduler=self.seq_scheduler), min_t=self.min_t,
                                 trans_scale=self.trans_prior_scale)


@dataclass
class ProteinTarget:
    """Clean chains, padded: C-alpha translations (centred), frames, amino acids and the residue mask."""

    trans_1: Tensor  # [B, N, 3] Angstrom
    rotmats_1: Tensor  # [B, N, 3, 3]
    aatypes_1: Tensor  # [B, N] long, 0..19 (20 = unknown / mask)
    res_mask: Tensor  # [B, N] bool

    def state(self) -> ProteinState:
        """x_1 as a point of the product space."""
        return ProteinState(self.trans_1, self.rotmats_1, self.aatypes_1)


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
    motif_mask: Tensor | None = None  # [B, N] bool: clean motif residues (motif examples only), None: no motif

    def network_input(self, trans_sc: Tensor | None = None, aatypes_sc: Tensor | None = None) -> ProteinNetworkInput:
        """The network's input at x_t (residue indices 0 .. N-1, as the sampler)."""
        return ProteinNetworkInput(trans=self.trans_t, rotmats=self.rotmats_t, aatypes=self.aatypes_t,
                                   res_mask=self.target.res_mask, so3_t=self.so3_t, r3_t=self.r3_t, cat_t=self.cat_t,
                                   trans_sc=trans_sc, aatypes_sc=aatypes_sc, motif_mask=self.motif_mask)


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


def sample_motif_masks(res_mask: Tensor, prob: float, g: torch.Generator | None = None,
                       fraction: tuple[float, float] = (0.05, 0.4), max_segments: int = 3) -> Tensor:
    """Random motif masks ``[B, N]`` bool: with probability ``prob`` per chain, k ~ U{1..max_segments} segments of
    about f L / k residues each at uniform starts (they may touch or overlap), f ~ U(fraction), L the chain's
    length; at least one residue, never all of them. Other chains get an empty mask."""
    b, n = res_mask.shape
    dev = res_mask.device
    lengths = res_mask.sum(-1)  # [B]
    out = torch.zeros(b, n, dtype=torch.bool, device=dev)
    use = torch.rand(b, generator=g, device=dev) < prob
    frac = torch.rand(b, generator=g, device=dev) * (fraction[1] - fraction[0]) + fraction[0]
    segments = torch.randint(1, max_segments + 1, (b,), generator=g, device=dev)
    starts = torch.rand(b, max_segments, generator=g, device=dev)  # uniforms for the segment starts
    idx = torch.arange(n, device=dev)
    for i in range(b):
        length, k = int(lengths[i]), int(segments[i])
        if not bool(use[i]) or length < 2:
            continue
        size = max(1, min(length - 1, round(float(frac[i]) * length / k)))
        for j in range(k):
            start = int(float(starts[i, j]) * (length - size + 1))
            out[i] |= (idx >= start) & (idx < start + size)
        if bool(out[i, :length].all()):
            out[i, length - 1] = False
    return out & res_mask.bool()


def ot_coupling(noise: Tensor, x1: Tensor, res_mask: Tensor) -> Tensor:
    """The minibatch OT coupling of source draws ``noise`` [B, N, 3] (uncentred) with the targets ``x1`` [B, N, 3]
    (MultiFlow ``_batch_ot``): each draw is centred over each target's residues and Kabsch-aligned to it, and the
    draws are assigned to the targets by the Hungarian method on the mean per-residue distance. Returns x_0
    [B, N, 3] for each target, zero on padding (a permutation of the draws, each rotated and centred)."""
    from scipy.optimize import linear_sum_assignment

    b = x1.shape[0]
    m = res_mask.to(x1.dtype)  # [B, N]
    mi = m[None, :, :, None]  # [1, B(target), N, 1]
    pairs = noise[:, None] * mi  # [B(noise), B(target), N, 3]
    pairs = (pairs - pairs.sum(-2, keepdim=True) / mi.sum(-2, keepdim=True).clamp_min(1)) * mi
    target = x1[None].expand_as(pairs)
    rot = kabsch_rotation(pairs, target, m[None].expand(b, b, -1))  # [B, B, 3, 3]
    aligned = pairs @ rot  # [B, B, N, 3]
    cost = ((aligned - target).norm(dim=-1) * m[None]).sum(-1) / m.sum(-1)[None].clamp_min(1)  # [B, B]
    noise_idx, target_idx = linear_sum_assignment(cost.detach().cpu().double().numpy())
    order = np.empty(b, dtype=np.int64)
    order[target_idx] = noise_idx
    return aligned[torch.as_tensor(order, device=x1.device), torch.arange(b, device=x1.device)]


@dataclass(frozen=True)
class Interpolant:
    """The training interpolant (module docstring): times, the coupling (x_0, x_1), then x_t from ``path``."""

    config: InterpolantConfig
    path: ProteinPath

    @classmethod
    def build(cls, config: InterpolantConfig = InterpolantConfig()) -> "Interpolant":
        """The interpolant of ``config`` on the product path of its flow (:meth:`InterpolantConfig.flow_config`)."""
        config.validate()
        return cls(config, ProteinFlow.build(config.flow_config()).training_path())

    def coupling(self, target: ProteinTarget, g: torch.Generator | None = None) -> ProteinState:
        """x_0 paired with x_1 = ``target``: translations (OT-coupled or the sampler's prior), R_1 IGSO(3) frames
        and MASK tokens (module docstring, step 2); on padding 0 and MASK."""
        mask = target.res_mask.bool()  # [B, N]
        x1 = target.trans_1  # [B, N, 3]
        if self.config.batch_ot and mask.shape[0] > 1:
            trans_0 = ot_coupling(self.path.trans.sample_source(x1, g), x1, mask)
        else:
            trans_0 = centred_gaussian(mask, self.path.trans.noise_scale, g, x1.dtype)
        eye = torch.eye(3, device=mask.device).expand(*mask.shape, 3, 3)
        noise_rot = so3.sample_igso3(eye, self.config.rot_prior_sigma, g)  # [B, N, 3, 3]
        rot_0 = target.rotmats_1 @ noise_rot.to(target.rotmats_1.dtype)
        return ProteinState(trans_0, rot_0, self.path.sequence.sample_source(target.aatypes_1))

    def sample(self, target: ProteinTarget, g: torch.Generator | None = None,
               times: tuple[Tensor, Tensor] | None = None, motifs: bool = True) -> NoisyProteins:
        """x_t ~ p_t(. | x_0, x_1) at drawn times (module docstring); ``times`` (structure time, sequence time),
        each [B], replace the drawn ones (validation on a fixed time grid); ``motifs=False``: no motif examples
        (validation measures the unconditional objective)."""
        mask = target.res_mask.bool()  # [B, N]
        structure_t, cat_t = times if times is not None else sample_times(mask.shape[0], self.config, g, mask.device)
        source = self.coupling(target, g)
        motif = None
        if motifs and self.config.motif_prob > 0:
            motif = sample_motif_masks(mask, self.config.motif_prob, g)  # [B, N]
            target, source = self._motif_frame(target, source, motif, g)
        x_t = self.path.sample_from(source, target.state(), structure_t, cat_t, g)
        trans_t, rot_t, aatypes_t = x_t.trans, x_t.rotmats, x_t.aatypes
        if motif is not None:
            reveal = motif & (torch.rand(mask.shape[0], 1, generator=g, device=mask.device) < 0.5)  # [B, N]
            trans_t = torch.where(motif[..., None], target.trans_1, trans_t)
            rot_t = torch.where(motif[..., None, None], target.rotmats_1, rot_t)
            aatypes_t = torch.where(reveal, target.aatypes_1, aatypes_t)
        trans_t = trans_t * mask.to(trans_t.dtype)[..., None]
        eye = torch.eye(3, dtype=rot_t.dtype, device=mask.device)
        rot_t = torch.where(mask[..., None, None], rot_t, eye)
        aatypes_t = torch.where(mask, aatypes_t, torch.full_like(aatypes_t, MASK_INDEX))
        return NoisyProteins(target=target, trans_t=trans_t, rotmats_t=rot_t, aatypes_t=aatypes_t,
                             r3_t=structure_t, so3_t=structure_t.clone(), cat_t=cat_t, motif_mask=motif)

    def _motif_frame(self, target: ProteinTarget, source: ProteinState, motif: Tensor,
                     g: torch.Generator | None) -> tuple[ProteinTarget, ProteinState]:
        """Motif chains moved so that their motif's CA centroid is the origin, with the free residues' translation
        source N(0, s^2 I) (module docstring); chains without a motif unchanged."""
        has = motif.any(-1)  # [B]
        m = motif.to(target.trans_1.dtype)[..., None]  # [B, N, 1]
        centre = (target.trans_1 * m).sum(1, keepdim=True) / m.sum(1, keepdim=True).clamp_min(1.0)  # [B, 1, 3]
        res = target.res_mask.bool()[..., None]
        trans_1 = torch.where(has[:, None, None] & res, target.trans_1 - centre, target.trans_1)
        noise = torch.randn(target.trans_1.shape, generator=g, device=motif.device, dtype=target.trans_1.dtype)
        trans_0 = torch.where(has[:, None, None], noise * self.path.trans.noise_scale * res, source.trans)
        moved = ProteinTarget(trans_1, target.rotmats_1, target.aatypes_1, target.res_mask)
        return moved, ProteinState(trans_0, source.rotmats, source.aatypes)
