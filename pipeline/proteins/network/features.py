"""Node and edge feature networks of the protein network (MultiFlow's NodeFeatureNet / EdgeFeatureNet).

Node features of residue i (concatenated, then an MLP Linear-ReLU-Linear-ReLU-Linear-LayerNorm):

    [ pos(res_idx_i) * m_i,  d_i,  time(so3_t) m_i,  time(r3_t) m_i,  E[a_i],  time(cat_t) m_i,  sc_i ]

with m the residue mask, d the diffuse mask, E an Embedding(21, c_s), sc the self-conditioning
logits [21], and the sinusoids

    pos(x)_k  = sin(pi x / L^(2k/D)), cos(pi x / L^(2k/D))           k < D/2, L = 2056
    time(t)_k = sin(2056 t w_k), cos(2056 t w_k),  w_k = exp(-k log(2056) / (D/2 - 1)).

Edge features of the pair (i, j):

    [ p_i, p_j,  W_rel pos(i - j),  onehot_bin(|x_i - x_j|),  onehot_bin(|sc_i - sc_j|),  d_i, d_j ]

with p = Linear(c_s -> feat_dim)(node features), 22 distance bins with lower edges
linspace(1e-3, 20, 22) Angstrom (open intervals, last upper edge 1e8), then the same MLP to c_p, times
the pair mask. The first Linear is applied term by term (node terms per residue, one-hot terms as
table look-ups), which is the same sum without building the [B, N, N, in_features] tensor.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from pipeline.proteins.network.config import EdgeFeaturesConfig, NodeFeaturesConfig

INDEX_MAX_LEN = 2056
TIME_MAX_POSITIONS = 2056
DGRAM_MIN, DGRAM_MAX, DGRAM_TOP = 1e-3, 20.0, 1e8  # Angstrom


def index_embedding(indices: Tensor, dim: int, max_len: int = INDEX_MAX_LEN) -> Tensor:
    """Sinusoids [sin(pi x / L^(2k/D)) | cos(...)], k < D/2: ``[...] -> [..., D]`` (float input dtype)."""
    dtype = indices.dtype if indices.is_floating_point() else torch.get_default_dtype()
    k = torch.arange(dim // 2, device=indices.device, dtype=dtype)
    arg = indices.to(dtype)[..., None] * math.pi / (max_len ** (2 * k / dim))
    return torch.cat([torch.sin(arg), torch.cos(arg)], dim=-1)


def time_embedding(t: Tensor, dim: int, max_positions: int = TIME_MAX_POSITIONS) -> Tensor:
    """Sinusoidal time embedding of t in [0, 1]: ``[B] -> [B, dim]`` (see module docstring)."""
    half = dim // 2
    scale = math.log(max_positions) / (half - 1)
    freqs = torch.exp(torch.arange(half, device=t.device, dtype=t.dtype) * -scale)  # [half]
    arg = (t * max_positions)[:, None] * freqs[None]  # [B, half]
    return torch.cat([torch.sin(arg), torch.cos(arg)], dim=-1)


def distogram_bins(x: Tensor, num_bins: int) -> Tensor:
    """Bin of every pair distance |x_i - x_j| (Angstrom): ``[B, N, 3] -> [B, N, N]`` long, ``num_bins``
    where no bin holds it (d <= 1e-3 or exactly on an edge), matching the open-interval one-hot."""
    d = torch.linalg.norm(x[:, :, None] - x[:, None, :], dim=-1)  # [B, N, N]
    lower = torch.linspace(DGRAM_MIN, DGRAM_MAX, num_bins, device=x.device, dtype=x.dtype)
    upper = torch.cat([lower[1:], lower.new_tensor([DGRAM_TOP])])
    idx = torch.bucketize(d, lower, right=False) - 1  # largest k with lower_k < d
    idx = idx.clamp(min=0)
    ok = (d > lower[idx]) & (d < upper[idx])
    return torch.where(ok, idx, torch.full_like(idx, num_bins))


def _mlp(d_in: int, d: int, use_mlp: bool = True) -> nn.Module:
    if not use_mlp:
        return nn.Linear(d_in, d)
    return nn.Sequential(nn.Linear(d_in, d), nn.ReLU(), nn.Linear(d, d), nn.ReLU(), nn.Linear(d, d),
                         nn.LayerNorm(d))


class NodeFeatureNet(nn.Module):
    """Initial node embedding ``[B, N, c_s]`` (parameter names as MultiFlow's NodeFeatureNet)."""

    def __init__(self, cfg: NodeFeaturesConfig) -> None:
        super().__init__()
        self.cfg = cfg
        if cfg.embed_aatype:
            self.aatype_embedding = nn.Embedding(21, cfg.c_s)
        self.linear = _mlp(cfg.in_features, cfg.c_s, cfg.use_mlp)

    def forward(self, res_idx: Tensor, res_mask: Tensor, diffuse_mask: Tensor, times: tuple[Tensor, Tensor, Tensor],
                aatypes: Tensor, aatypes_sc: Tensor) -> Tensor:
        """``res_idx``, masks [B, N] float; times (so3_t, r3_t, cat_t) each [B]; aatypes [B, N] long;
        aatypes_sc [B, N, 21]. Returns [B, N, c_s]."""
        cfg = self.cfg
        m = res_mask[..., None]  # [B, N, 1]
        n = res_mask.shape[1]

        def embed_t(t: Tensor) -> Tensor:  # [B] -> [B, N, c_t]
            return time_embedding(t, cfg.c_timestep_emb)[:, None, :].expand(-1, n, -1) * m

        feats = [index_embedding(res_idx, cfg.c_pos_emb) * m, diffuse_mask[..., None], embed_t(times[0]),
                 embed_t(times[1])]
        if cfg.embed_aatype:
            feats += [self.aatype_embedding(aatypes), embed_t(times[2]), aatypes_sc]
        return self.linear(torch.cat(feats, dim=-1))


class EdgeFeatureNet(nn.Module):
    """Initial edge embedding ``[B, N, N, c_p]`` (parameter names as MultiFlow's EdgeFeatureNet)."""

    def __init__(self, cfg: EdgeFeaturesConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.linear_s_p = nn.Linear(cfg.c_s, cfg.feat_dim)
        self.linear_relpos = nn.Linear(cfg.feat_dim, cfg.feat_dim)
        self.edge_embedder = _mlp(cfg.in_features, cfg.c_p)

    def forward(self, s: Tensor, trans: Tensor, trans_sc: Tensor, diffuse_mask: Tensor, pair_mask: Tensor) -> Tensor:
        """``s`` [B, N, c_s] node embedding, ``trans`` / ``trans_sc`` [B, N, 3] Angstrom, ``diffuse_mask``
        [B, N], ``pair_mask`` [B, N, N]. Returns [B, N, N, c_p]."""
        cfg = self.cfg
        f, nb = cfg.feat_dim, cfg.num_bins
        b, n, _ = s.shape
        first: nn.Linear = self.edge_embedder[0]
        w = first.weight  # [c_p, in_features]: columns p_i | p_j | relpos | dgram | dgram_sc | d_i | d_j
        p = self.linear_s_p(s)  # [B, N, f]
        h_i = p @ w[:, :f].T  # [B, N, c_p]
        h_j = p @ w[:, f:2 * f].T
        if cfg.embed_diffuse_mask:
            h_i = h_i + diffuse_mask[..., None] * w[:, -2]
            h_j = h_j + diffuse_mask[..., None] * w[:, -1]
        r = torch.arange(n, device=s.device)
        rel = self.linear_relpos(index_embedding((r[:, None] - r[None, :]).to(s.dtype), f))  # [N, N, f]
        h_rel = rel @ w[:, 2 * f:3 * f].T + first.bias  # [N, N, c_p]
        zero = w.new_zeros(1, w.shape[0])
        table = torch.cat([w[:, 3 * f:3 * f + nb].T, zero])  # [nb + 1, c_p]; row nb = "no bin"
        table_sc = torch.cat([w[:, 3 * f + nb:3 * f + 2 * nb].T, zero])
        h = (h_i[:, :, None] + h_j[:, None, :] + h_rel + table[distogram_bins(trans, nb)]
             + table_sc[distogram_bins(trans_sc, nb)])  # [B, N, N, c_p]
        return self.edge_embedder[1:](h) * pair_mask[..., None]
