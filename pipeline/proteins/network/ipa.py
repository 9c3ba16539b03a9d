"""Invariant Point Attention (AF2 Algorithm 22, the OpenFold / FrameFlow variant with ``down_z``).

For heads h, residues i, j with frames T_i = (R_i, t_i) (nm inside the trunk):

    logit_hij = sqrt(1/(3C)) q_hi . k_hj + sqrt(1/3) b_hij
                - (w_h / 2) sum_p |T_i Q_hip - T_j K_hjp|^2 + 1e5 (m_i m_j - 1)
    w_h       = softplus(gamma_h) sqrt(1 / (3 * 4.5 P_q))
    a_hij     = softmax_j(logit_hij)
    o_hi      = sum_j a_hij v_hj,      O_hip = T_i^-1 sum_j a_hij T_j V_hjp,      z'_hi = sum_j a_hij D z_ij
    out_i     = Linear([o_i, O_i.x, O_i.y, O_i.z, |O_i| (with eps), z'_i])

All point terms are batched matrix products: the squared distance is expanded as
|X_i|^2 + |Y_j|^2 - 2 X_i.Y_j and the |X_i|^2 term, constant along the softmax axis j, is
dropped (the attention weights are exactly the same). Scalar and point keys are one matrix
product, scalar and point values another. The attention runs in the frames' dtype (float32 or
float64) even under autocast. Parameter names and shapes are those of MultiFlow's IPA.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pipeline.proteins.network.config import IPAConfig
from structures.proteins.frames import Frames

MASK_INF = 1e5
NORM_EPS = 1e-8


def apply_frames(frames: Frames, points: Tensor) -> Tensor:
    """Local points [B, N, P, 3] -> global ``R_i p + t_i`` [B, N, P, 3]."""
    return points @ frames.rots.transpose(-1, -2) + frames.trans[:, :, None, :]


def invert_apply_frames(frames: Frames, points: Tensor) -> Tensor:
    """Global points [B, N, P, 3] -> local ``R_i^T (p - t_i)`` [B, N, P, 3]."""
    return (points - frames.trans[:, :, None, :]) @ frames.rots


class InvariantPointAttention(nn.Module):
    """IPA with MultiFlow's parameter names: ``linear_q``, ``linear_kv``, ``linear_q_points``,
    ``linear_kv_points``, ``linear_b``, ``down_z``, ``head_weights``, ``linear_out``."""

    def __init__(self, cfg: IPAConfig) -> None:
        super().__init__()
        self.cfg = cfg
        h, c, pq, pv = cfg.no_heads, cfg.c_hidden, cfg.no_qk_points, cfg.no_v_points
        self.linear_q = nn.Linear(cfg.c_s, h * c)
        self.linear_kv = nn.Linear(cfg.c_s, 2 * h * c)
        self.linear_q_points = nn.Linear(cfg.c_s, h * pq * 3)
        self.linear_kv_points = nn.Linear(cfg.c_s, h * (pq + pv) * 3)
        self.linear_b = nn.Linear(cfg.c_z, h)
        self.down_z = nn.Linear(cfg.c_z, cfg.c_z // 4)
        self.head_weights = nn.Parameter(torch.zeros(h))
        self.linear_out = nn.Linear(h * (cfg.c_z // 4 + c + pv * 4), cfg.c_s)
        self.dropout = nn.Dropout(cfg.dropout)

    def _points(self, raw: Tensor, frames: Frames, n_points: int) -> Tensor:
        """Global points [B, N, H, P, 3] from a linear output [B, N, 3 H P] split as (x | y | z)."""
        b, n, _ = raw.shape
        local = raw.view(b, n, 3, -1).transpose(-1, -2).to(frames.trans.dtype)  # [B, N, H*P, 3]
        return apply_frames(frames, local).view(b, n, self.cfg.no_heads, n_points, 3)

    def forward(self, s: Tensor, z: Tensor, frames: Frames, mask: Tensor) -> Tensor:
        """``s`` [B, N, c_s], ``z`` [B, N, N, c_z], ``frames`` rots [B, N, 3, 3] / trans [B, N, 3],
        ``mask`` [B, N]. Returns the update [B, N, c_s]."""
        cfg = self.cfg
        h, c, pq, pv = cfg.no_heads, cfg.c_hidden, cfg.no_qk_points, cfg.no_v_points
        b, n, _ = s.shape
        q = self.linear_q(s).view(b, n, h, c)
        k, v = self.linear_kv(s).view(b, n, h, 2 * c).split(c, dim=-1)  # [B, N, H, C] each
        q_raw, kv_raw = self.linear_q_points(s), self.linear_kv_points(s)
        pair = nn.functional.linear(z, torch.cat([self.linear_b.weight, self.down_z.weight]),
                                    torch.cat([self.linear_b.bias, self.down_z.bias]))  # one pass over z
        pair_bias, pair_z = pair[..., :h], pair[..., h:]  # [B, N, N, H], [B, N, N, c_z / 4]
        dtype = frames.trans.dtype
        with torch.autocast(device_type=s.device.type, enabled=False):
            q_pts = self._points(q_raw, frames, pq)  # [B, N, H, Pq, 3]
            k_pts, v_pts = self._points(kv_raw, frames, pq + pv).split([pq, pv], dim=-2)
            w = F.softplus(self.head_weights.to(dtype)) * math.sqrt(1.0 / (3 * (pq * 9.0 / 2)))  # [H]
            qp = q_pts.reshape(b, n, h, pq * 3) * w[:, None]  # [B, N, H, 3 Pq]
            kp = k_pts.reshape(b, n, h, pq * 3)
            k_sq = (-0.5 * w) * kp.square().sum(-1)  # [B, N, H]
            ones = torch.ones_like(k_sq)[..., None]
            query = torch.cat([q.to(dtype) * math.sqrt(1.0 / (3 * c)), qp, ones], dim=-1)  # [B, N, H, D]
            key = torch.cat([k.to(dtype), kp, k_sq[..., None]], dim=-1)
            logits = query.transpose(1, 2) @ key.permute(0, 2, 3, 1)  # [B, H, N, N]
            logits = logits + math.sqrt(1.0 / 3) * pair_bias.to(dtype).permute(0, 3, 1, 2)
            mask = mask.to(dtype)
            logits = logits + (MASK_INF * (mask[:, :, None] * mask[:, None, :] - 1))[:, None]
            a = torch.softmax(self.dropout(logits), dim=-1)  # [B, H, N, N]
            values = torch.cat([v.to(dtype), v_pts.reshape(b, n, h, pv * 3)], dim=-1).transpose(1, 2)
            o_all = (a @ values).transpose(1, 2)  # [B, N, H, C + 3 Pv]
            o = o_all[..., :c].reshape(b, n, h * c)
            o_pt = invert_apply_frames(frames, o_all[..., c:].reshape(b, n, h * pv, 3))  # [B, N, H Pv, 3]
            o_norm = torch.sqrt(o_pt.square().sum(-1) + NORM_EPS)  # [B, N, H Pv]
            o_pair = (a.transpose(1, 2) @ pair_z.to(dtype)).reshape(b, n, -1)  # [B, N, H c_z/4]
            feats = torch.cat([o, o_pt[..., 0], o_pt[..., 1], o_pt[..., 2], o_norm, o_pair], dim=-1)
        return self.linear_out(feats.to(s.dtype))
