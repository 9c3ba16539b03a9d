"""Trunk pieces of the protein network: node transition, edge transition, backbone update, frame update.

One trunk block b (MultiFlow's FlowModel; m residue mask, e pair mask, T frames in nm):

    s <- LN(s + IPA(s, z, T) m)
    s <- s + Linear(SeqTransformer(s))            (post-LN encoder, key padding = 1 - m)
    s <- Transition(s) m                          (LN(s + L3 ReLU L2 ReLU L1 s))
    T <- T o update(Linear(s))                    (see :func:`compose_update`)
    z <- EdgeTransition(s, z) e                   (all blocks but the last)

Parameter names are MultiFlow's (``trunk.ipa_{b}``, ``trunk.seq_tfmr_{b}.layers.{l}...``).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from manifolds.so3 import quat_to_matrix
from pipeline.proteins.network.config import ProteinNetworkConfig
from pipeline.proteins.network.ipa import InvariantPointAttention
from structures.proteins.frames import Frames

_TRUNC_STD = 0.87962566103423978  # std of a standard normal truncated to [-2, 2]


def lecun_init_(linear: nn.Linear, scale: float = 1.0) -> None:
    """OpenFold's init: weights ~ truncated normal, variance scale / fan_in; bias 0."""
    std = math.sqrt(scale / max(1, linear.weight.shape[1])) / _TRUNC_STD
    with torch.no_grad():
        nn.init.trunc_normal_(linear.weight, std=std, a=-2 * std, b=2 * std)
        if linear.bias is not None:
            linear.bias.zero_()


def zero_init_(linear: nn.Linear) -> None:
    """OpenFold's "final" init: weights and bias 0 (the block starts as the identity)."""
    with torch.no_grad():
        linear.weight.zero_()
        if linear.bias is not None:
            linear.bias.zero_()


class NodeTransition(nn.Module):
    """``s -> LN(s + L3 ReLU L2 ReLU L1 s)`` (MultiFlow's StructureModuleTransition)."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.linear_1, self.linear_2, self.linear_3 = nn.Linear(c, c), nn.Linear(c, c), nn.Linear(c, c)
        self.ln = nn.LayerNorm(c)

    def forward(self, s: Tensor) -> Tensor:  # [B, N, c] -> [B, N, c]
        x = self.linear_3(torch.relu(self.linear_2(torch.relu(self.linear_1(s)))))
        return self.ln(s + x)


class EdgeTransition(nn.Module):
    """Pair update from node pairs: x_ij = [z_ij, u_i, u_j] with u = Linear(s) (c_s / 2 wide),

        z'_ij = LN(W_f (MLP(x_ij) + x_ij) + b_f),   MLP = (Linear, ReLU) x 2.

    The first Linear and W_f act on x_ij term by term (node terms once per residue), so the
    [B, N, N, c_z + c_s] concatenation is never built.
    """

    def __init__(self, node_size: int, edge_size: int, num_layers: int = 2, node_dilation: int = 2) -> None:
        super().__init__()
        self.bias_size = node_size // node_dilation
        hidden = 2 * self.bias_size + edge_size
        self.initial_embed = nn.Linear(node_size, self.bias_size)
        layers: list[nn.Module] = []
        for _ in range(num_layers):
            layers += [nn.Linear(hidden, hidden), nn.ReLU()]
        self.trunk = nn.Sequential(*layers)
        self.final_layer = nn.Linear(hidden, edge_size)
        self.layer_norm = nn.LayerNorm(edge_size)

    @staticmethod
    def _split_apply(lin: nn.Linear, z: Tensor, u: Tensor, with_bias: bool, base: Tensor | None = None) -> Tensor:
        """``lin([z_ij, u_i, u_j]) (+ base_ij)`` [B, N, N, out] from z [B, N, N, c_z], u [B, N, c_u]: one
        broadcast sum of the node terms, then one ``addmm`` over the pairs."""
        b, n, _, cz = z.shape
        cu = u.shape[-1]
        w = lin.weight
        ui = nn.functional.linear(u, w[:, cz:cz + cu], lin.bias if with_bias else None)  # [B, N, out]
        uj = nn.functional.linear(u, w[:, cz + cu:])
        pre = ui[:, :, None] + uj[:, None, :]  # [B, N, N, out]
        if base is not None:
            pre = pre + base
        out = torch.addmm(pre.reshape(b * n * n, -1), z.reshape(b * n * n, cz), w[:, :cz].T)
        return out.view(b, n, n, -1)

    def forward(self, s: Tensor, z: Tensor) -> Tensor:
        """``s`` [B, N, c_s], ``z`` [B, N, N, c_z] -> [B, N, N, c_z]."""
        u = self.initial_embed(s)  # [B, N, c_s / 2]
        layers = list(self.trunk)
        h = layers[1](self._split_apply(layers[0], z, u, with_bias=True))
        for layer in layers[2:]:
            h = layer(h)
        b, n, _, c = h.shape
        fin = self.final_layer
        skip = self._split_apply(fin, z, u, with_bias=True)  # W_f x_ij + b_f
        out = torch.addmm(skip.reshape(b * n * n, -1), h.reshape(b * n * n, c), fin.weight.T)  # + W_f MLP(x_ij)
        return self.layer_norm(out.view(b, n, n, -1))


class BackboneUpdate(nn.Module):
    """``Linear(c_s -> 6)``: quaternion-update vector (x, y, z of (1, x, y, z)), translation update."""

    def __init__(self, c_s: int) -> None:
        super().__init__()
        self.linear = nn.Linear(c_s, 6)

    def forward(self, s: Tensor) -> Tensor:  # [B, N, c_s] -> [B, N, 6]
        return self.linear(s)


def compose_update(frames: Frames, update: Tensor, mask: Tensor) -> Frames:
    """Frames after one backbone update (OpenFold ``compose_q_update_vec``).

    With update (v, u) and mask m per residue: the quaternion becomes q (1, m v) (normalised),
    i.e. ``R' = R Rot((1, m v) / |(1, m v)|)``, and ``t' = t + m R u`` (old R). Equal to
    OpenFold's ``q + m q (0, v)`` without converting R to a quaternion. ``update`` [B, N, 6],
    ``mask`` [B, N]; the result has the frames' dtype.
    """
    dtype = frames.trans.dtype
    with torch.autocast(device_type=update.device.type, enabled=False):  # frames stay >= float32
        m = mask.to(dtype)[..., None]  # [B, N, 1]
        v = update[..., :3].to(dtype) * m
        quat = torch.cat([torch.ones_like(v[..., :1]), v], dim=-1)
        quat = quat / torch.linalg.norm(quat, dim=-1, keepdim=True)  # [B, N, 4]
        rots = frames.rots @ quat_to_matrix(quat)
        trans = frames.trans + m * (frames.rots @ update[..., 3:].to(dtype)[..., None])[..., 0]
    return Frames(rots=rots, trans=trans)


def build_trunk(cfg: ProteinNetworkConfig) -> nn.ModuleDict:
    """The ``trunk`` ModuleDict with MultiFlow's key names and order."""
    ipa = cfg.ipa
    trunk = nn.ModuleDict()
    for b in range(ipa.num_blocks):
        trunk[f"ipa_{b}"] = InvariantPointAttention(ipa)
        trunk[f"ipa_ln_{b}"] = nn.LayerNorm(ipa.c_s)
        layer = nn.TransformerEncoderLayer(d_model=ipa.c_s, nhead=ipa.seq_tfmr_num_heads, dim_feedforward=ipa.c_s,
                                           dropout=cfg.transformer_dropout, batch_first=True, norm_first=False)
        trunk[f"seq_tfmr_{b}"] = nn.TransformerEncoder(layer, ipa.seq_tfmr_num_layers, enable_nested_tensor=False)
        trunk[f"post_tfmr_{b}"] = nn.Linear(ipa.c_s, ipa.c_s)
        trunk[f"node_transition_{b}"] = NodeTransition(ipa.c_s)
        trunk[f"bb_update_{b}"] = BackboneUpdate(ipa.c_s)
        if b < ipa.num_blocks - 1:  # no edge update after the last block
            trunk[f"edge_transition_{b}"] = EdgeTransition(ipa.c_s, cfg.edge_embed_size)
    return trunk


def init_trunk_(trunk: nn.ModuleDict) -> None:
    """OpenFold-style initialisation of a freshly built trunk (as MultiFlow trains from scratch)."""
    for name, module in trunk.items():
        if name.startswith("ipa_") and isinstance(module, InvariantPointAttention):
            for lin in (module.linear_q, module.linear_kv, module.linear_q_points, module.linear_kv_points,
                        module.linear_b, module.down_z):
                lecun_init_(lin)
            zero_init_(module.linear_out)
            with torch.no_grad():
                module.head_weights.fill_(0.541324854612918)  # softplus^-1(1)
        elif isinstance(module, NodeTransition):
            lecun_init_(module.linear_1, 2.0), lecun_init_(module.linear_2, 2.0), zero_init_(module.linear_3)
        elif isinstance(module, EdgeTransition):
            lecun_init_(module.initial_embed, 2.0)
            for layer in module.trunk:
                if isinstance(layer, nn.Linear):
                    lecun_init_(layer, 2.0)
            zero_init_(module.final_layer)
        elif isinstance(module, BackboneUpdate) or name.startswith("post_tfmr_"):
            zero_init_(module.linear if isinstance(module, BackboneUpdate) else module)
