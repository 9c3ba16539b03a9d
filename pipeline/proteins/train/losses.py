"""MultiFlow's training losses (``FlowModule.model_step``), per example.

With the loss mask m (real residues), n = sum m, the clip c(t) = 1 - min(t, 0.9) and the network's
clean-state prediction (x_hat, R_hat, logits):

    L_trans = 2.0 * sum_i m_i |(x_1,i - x_hat_i) 0.1 / c(t_r3)|^2 / (3 n),      clamped at 5
    L_rot   = 1.0 * sum_i m_i |(v_i - v_hat_i) / c(t_so3)|^2 / (3 n),
              v = Log(R_t^T R_1), v_hat = Log(R_t^T R_hat)                      (rotation vector fields)
    L_bb    = sum_i m_i |0.1 (A_i - A_hat_i) / c(t_r3)|^2 / (3 n)                A: idealised N, CA, C
    L_dist  = sum_jk M_jk (d_jk - d_hat_jk)^2 / (sum M + 1)                      d: distances of those 3n atoms
    L_aux   = w_aux (L_bb + L_dist) [t_r3 > 0.5 and t_so3 > 0.5],                clamped at 5
    L_seq   = w_seq sum_i m_i CE(logits_i, a_1,i) / n                          (all real residues, 21 classes)
    L       = L_trans + L_rot + L_aux + L_seq

The constants are MultiFlow's ``experiment.training`` values. MultiFlow's released ``pdb_codesign``
run sets ``aux_loss_weight`` 0 (auxiliary losses off); FrameFlow, which MultiFlow builds on, uses 1,
the default here for the small CPU model.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from manifolds import so3
from pipeline.proteins.network import ProteinNetworkOutput
from pipeline.proteins.train.interpolant import NoisyProteins
from structures.proteins.frames import ideal_backbone_local
from structures.proteins.residue_constants import NUM_TOKENS


@dataclass(frozen=True)
class LossWeights:
    """MultiFlow's ``experiment.training`` constants (``aux_weight``: see the module docstring)."""

    trans_scale: float = 0.1
    translation_weight: float = 2.0
    rotation_weight: float = 1.0
    bb_atom_scale: float = 0.1
    aux_weight: float = 1.0
    aux_t_pass: float = 0.5
    t_normalize_clip: float = 0.9
    aatypes_weight: float = 1.0
    clamp: float = 5.0


@dataclass
class ProteinLossTerms:
    """Per-example loss terms, each [B]."""

    trans: Tensor
    rots: Tensor
    aux: Tensor
    aatypes: Tensor
    bb_atom: Tensor
    dist_mat: Tensor

    @property
    def total(self) -> Tensor:
        """[B] L_trans + L_rot + L_aux + L_seq."""
        return self.trans + self.rots + self.aux + self.aatypes

    def means(self) -> dict[str, float]:
        return {k: float(getattr(self, k).detach().mean()) for k in ("trans", "rots", "aux", "aatypes")}


def backbone_atoms(trans: Tensor, rotmats: Tensor) -> Tensor:
    """Idealised N, CA, C of frames (``structures.proteins.frames``): [B, N, 3, 3] Angstrom."""
    local = ideal_backbone_local(trans.dtype, trans.device)  # [3 atoms, 3]
    return torch.einsum("bnij,aj->bnai", rotmats, local) + trans[..., None, :]


def _cdist(x: Tensor) -> Tensor:
    """[B, M, 3] -> [B, M, M] Euclidean distances (direct differences: exact, finite gradients at 0)."""
    return torch.cdist(x, x, compute_mode="donot_use_mm_for_euclid_dist")


def protein_losses(noisy: NoisyProteins, out: ProteinNetworkOutput, w: LossWeights = LossWeights()) -> ProteinLossTerms:
    """The loss terms of the module docstring for one batch, per example."""
    tgt = noisy.target
    m = tgt.res_mask.to(out.pred_trans.dtype)  # [B, N]
    n_res = m.sum(-1)  # [B]
    denom = 3 * n_res.clamp_min(1)
    b, n = m.shape
    r3_scale = 1 - torch.clamp(noisy.r3_t, max=w.t_normalize_clip)  # [B]
    so3_scale = 1 - torch.clamp(noisy.so3_t, max=w.t_normalize_clip)

    trans_err = (tgt.trans_1 - out.pred_trans) * w.trans_scale / r3_scale[:, None, None]
    trans = w.translation_weight * (trans_err.pow(2) * m[..., None]).sum((-1, -2)) / denom
    trans = trans.clamp(max=w.clamp)

    v_true = so3.log_between(noisy.rotmats_t, tgt.rotmats_1)  # [B, N, 3]
    v_pred = so3.log_between(noisy.rotmats_t, out.pred_rotmats)
    rot_err = (v_true - v_pred) / so3_scale[:, None, None]
    rots = w.rotation_weight * (rot_err.pow(2) * m[..., None]).sum((-1, -2)) / denom

    scale = (w.bb_atom_scale / r3_scale)[:, None, None, None]
    bb_true = backbone_atoms(tgt.trans_1, tgt.rotmats_1) * scale  # [B, N, 3, 3]
    bb_pred = backbone_atoms(out.pred_trans, out.pred_rotmats) * scale
    bb_atom = ((bb_true - bb_pred).pow(2) * m[..., None, None]).sum((-1, -2, -3)) / denom

    flat_m = m[:, :, None].expand(b, n, 3).reshape(b, 3 * n)  # [B, 3N]
    pair_m = flat_m[:, :, None] * flat_m[:, None, :]  # [B, 3N, 3N]
    d_true = _cdist(bb_true.reshape(b, 3 * n, 3)) * pair_m
    d_pred = _cdist(bb_pred.reshape(b, 3 * n, 3)) * pair_m
    dist_mat = ((d_true - d_pred).pow(2) * pair_m).sum((1, 2)) / (pair_m.sum((1, 2)) + 1)

    gate = ((noisy.r3_t > w.aux_t_pass) & (noisy.so3_t > w.aux_t_pass)).to(m.dtype)
    aux = (w.aux_weight * (bb_atom + dist_mat) * gate).clamp(max=w.clamp)

    ce = torch.nn.functional.cross_entropy(out.pred_logits.reshape(-1, NUM_TOKENS).float(),
                                           tgt.aatypes_1.reshape(-1).long(), reduction="none").reshape(b, n)
    aatypes = w.aatypes_weight * (ce * m).sum(-1) / n_res.clamp_min(1)
    return ProteinLossTerms(trans=trans, rots=rots, aux=aux, aatypes=aatypes, bb_atom=bb_atom, dist_mat=dist_mat)
