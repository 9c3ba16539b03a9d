"""The protein network: MultiFlow's FlowModel behind a typed boundary.

``ProteinNetwork(ProteinNetworkInput) -> ProteinNetworkOutput``. Inputs are the noisy state at the
per-modality times (translations in Angstrom, rotations, amino acids with 20 = mask) plus the
self-conditioning inputs; outputs are the predicted clean frames and the 21 amino-acid logits:

    s0 = NodeFeatureNet(...) m,   z0 = EdgeFeatureNet(s0, x, x_sc) e,   T0 = (R, 0.1 x)    (nm)
    (s, z, T) <- trunk block b,   b = 0 .. num_blocks - 1                  (see ``trunk.py``)
    pred_trans = 10 t_T,   pred_rotmats = R_T,   pred_logits = MLP(s)       (Linear-ReLU x 2, Linear)

With a motif mask mu (``motif_mask``, the amortised motif method of issue 24, as FrameFlow's motif scaffolding,
Yim et al. 2024) the motif residues' frames are never updated by the trunk (their clean frames are the input and
the prediction), and a network with ``motif_input`` adds the motif embeddings

    s0 <- s0 + W_s mu_i,      z0 <- z0 + W_z mu_i mu_j                          (W_s [c_s], W_z [c_z], zero-initialised)

so that a motif network made from an unconditional one predicts exactly as it did until it is fine-tuned.

Parameter names and shapes equal MultiFlow's ``FlowModel`` (``pdb_codesign``): a released
state dict loads with ``strict=True`` once the ``model.`` prefix is stripped
(:mod:`pipeline.proteins.network.checkpoint`). Frames are kept in at least float32.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, fields

import torch
from torch import Tensor, nn

from pipeline.proteins.network.config import CONFIGS, ProteinNetworkConfig
from pipeline.proteins.network.features import EdgeFeatureNet, NodeFeatureNet
from pipeline.proteins.network.trunk import build_trunk, compose_update, init_trunk_, lecun_init_, zero_init_
from structures.proteins.frames import Frames
from structures.proteins.residue_constants import MASK_INDEX, NUM_TOKENS

ANG_TO_NM = 0.1
NM_TO_ANG = 10.0


@dataclass
class ProteinNetworkInput:
    """The network's input for a batch of B chains padded to N residues.

    Times may be [B] or [B, 1]. Optional fields default to: ``diffuse_mask`` = 1, ``res_idx`` =
    0 .. N-1 (as MultiFlow's sampler), ``trans_sc`` = 0 and ``aatypes_sc`` = 0 (no self-conditioning).
    """

    trans: Tensor  # [B, N, 3] Angstrom, noisy translations x_t
    rotmats: Tensor  # [B, N, 3, 3] noisy rotations R_t (act on column vectors)
    aatypes: Tensor  # [B, N] long, 0..19 AF2 order, 20 = mask
    res_mask: Tensor  # [B, N] bool or 0/1
    so3_t: Tensor  # [B] or [B, 1] rotation time
    r3_t: Tensor  # [B] or [B, 1] translation time
    cat_t: Tensor  # [B] or [B, 1] sequence time
    trans_sc: Tensor | None = None  # [B, N, 3] Angstrom, self-conditioning translations
    aatypes_sc: Tensor | None = None  # [B, N, 21] self-conditioning logits
    diffuse_mask: Tensor | None = None  # [B, N] 1 = generated, 0 = fixed
    res_idx: Tensor | None = None  # [B, N] residue index for the positional embedding
    motif_mask: Tensor | None = None  # [B, N] 1 = motif residue (clean frame, held); None: no motif

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> "ProteinNetworkInput":
        """Move tensors to ``device``; floating tensors (not ``aatypes``) to ``dtype``."""
        out = {}
        for f in fields(self):
            x = getattr(self, f.name)
            if x is not None:
                x = x.to(device=device, dtype=dtype if (dtype is not None and x.is_floating_point()) else None)
            out[f.name] = x
        return ProteinNetworkInput(**out)


@dataclass
class ProteinNetworkOutput:
    """Predicted clean state: frames (Angstrom) and amino-acid logits (index 20 = mask)."""

    pred_trans: Tensor  # [B, N, 3] Angstrom
    pred_rotmats: Tensor  # [B, N, 3, 3]
    pred_logits: Tensor  # [B, N, 21]

    @property
    def pred_aatypes(self) -> Tensor:
        """[B, N] argmax over the 20 amino acids (the mask token excluded), as MultiFlow's sampler."""
        return self.pred_logits[..., :MASK_INDEX].argmax(dim=-1)


def _time(t: Tensor, batch: int, like: Tensor) -> Tensor:
    t = t.to(device=like.device, dtype=like.dtype)
    t = t.reshape(-1) if t.dim() > 0 else t.reshape(1)
    return t.expand(batch) if t.numel() == 1 else t


class ProteinNetwork(nn.Module):
    """MultiFlow's FlowModel (node/edge features, IPA trunk with sequence transformers, aa head)."""

    def __init__(self, cfg: ProteinNetworkConfig | str = "small", init: bool = True) -> None:
        super().__init__()
        self.cfg = CONFIGS[cfg] if isinstance(cfg, str) else cfg
        self.node_feature_net = NodeFeatureNet(self.cfg.node_features)
        self.edge_feature_net = EdgeFeatureNet(self.cfg.edge_features)
        if self.cfg.aatype_pred:
            d = self.cfg.node_embed_size
            self.aatype_pred_net = nn.Sequential(nn.Linear(d, d), nn.ReLU(), nn.Linear(d, d), nn.ReLU(),
                                                 nn.Linear(d, self.cfg.aatype_pred_num_tokens))
        self.trunk = build_trunk(self.cfg)
        if self.cfg.motif_input:
            self.motif_node_embedding = nn.Linear(1, self.cfg.node_embed_size, bias=False)
            self.motif_edge_embedding = nn.Linear(1, self.cfg.edge_embed_size, bias=False)
            zero_init_(self.motif_node_embedding)
            zero_init_(self.motif_edge_embedding)
        if init:
            init_trunk_(self.trunk)
            if self.cfg.aatype_pred:
                for layer in self.aatype_pred_net[:-1]:
                    if isinstance(layer, nn.Linear):
                        lecun_init_(layer, 2.0)
                zero_init_(self.aatype_pred_net[-1])

    @classmethod
    def build(cls, cfg: ProteinNetworkConfig | str = "small", device: torch.device | str = "cpu",
              dtype: torch.dtype = torch.float32) -> "ProteinNetwork":
        """A new network on ``device`` in ``dtype`` (float32 by default)."""
        return cls(cfg).to(device=device, dtype=dtype)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype

    def with_motif_input(self) -> "ProteinNetwork":
        """This network with the motif input added (zero-initialised, module docstring): the same predictions until
        it is trained; itself when it has one."""
        if self.cfg.motif_input:
            return self
        from dataclasses import replace

        net = ProteinNetwork(replace(self.cfg, motif_input=True), init=True).to(device=self.device, dtype=self.dtype)
        missing, unexpected = net.load_state_dict(self.state_dict(), strict=False)
        assert not unexpected and all(k.startswith("motif_") for k in missing), (missing, unexpected)
        return net.train(self.training)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def predict(self, inp: ProteinNetworkInput, bf16: bool = False) -> ProteinNetworkOutput:
        """Forward on the network's device and dtype; ``bf16`` runs it under bfloat16 autocast (meant
        for GPUs; frames, IPA attention and outputs stay float32)."""
        inp = inp.to(self.device, self.dtype)
        ctx = (torch.autocast(device_type=self.device.type, dtype=torch.bfloat16) if bf16
               else contextlib.nullcontext())
        with ctx:
            out = self(inp)
        if bf16:
            out = ProteinNetworkOutput(out.pred_trans.float(), out.pred_rotmats.float(), out.pred_logits.float())
        return out

    def forward(self, inp: ProteinNetworkInput) -> ProteinNetworkOutput:
        """See the module docstring. All inputs must be on the network's device."""
        cfg = self.cfg
        ref = next(self.parameters())
        dtype = ref.dtype
        frame_dtype = torch.promote_types(dtype, torch.float32)
        b, n = inp.aatypes.shape
        node_mask = inp.res_mask.to(dtype)  # [B, N]
        pair_mask = node_mask[:, None, :] * node_mask[:, :, None]  # [B, N, N]
        diffuse = node_mask.new_ones(b, n) if inp.diffuse_mask is None else inp.diffuse_mask.to(dtype)
        res_idx = (torch.arange(n, device=ref.device, dtype=dtype).expand(b, n) if inp.res_idx is None
                   else inp.res_idx.to(dtype))
        trans = inp.trans.to(frame_dtype)
        trans_sc = torch.zeros_like(trans) if inp.trans_sc is None else inp.trans_sc.to(frame_dtype)
        aatypes = inp.aatypes.long()
        aatypes_sc = (node_mask.new_zeros(b, n, NUM_TOKENS) if inp.aatypes_sc is None else inp.aatypes_sc.to(dtype))
        times = tuple(_time(t, b, node_mask) for t in (inp.so3_t, inp.r3_t, inp.cat_t))

        motif = None if inp.motif_mask is None else inp.motif_mask.to(dtype) * node_mask  # [B, N]
        s = self.node_feature_net(res_idx, node_mask, diffuse, times, aatypes, aatypes_sc)  # [B, N, c_s]
        if motif is not None and cfg.motif_input:
            s = s + self.motif_node_embedding(motif[..., None])
        z = self.edge_feature_net(s, trans, trans_sc, diffuse, pair_mask)  # [B, N, N, c_z]
        if motif is not None and cfg.motif_input:
            z = z + self.motif_edge_embedding((motif[:, :, None] * motif[:, None, :])[..., None])
        s = s * node_mask[..., None]
        z = z * pair_mask[..., None]
        frames = Frames(rots=inp.rotmats.to(frame_dtype), trans=trans * ANG_TO_NM)
        update_mask = node_mask * diffuse if motif is None else node_mask * diffuse * (1 - motif)
        pad = ~inp.res_mask.bool()
        last = cfg.ipa.num_blocks - 1
        for blk in range(cfg.ipa.num_blocks):
            t = self.trunk
            ipa = t[f"ipa_{blk}"](s, z, frames, node_mask) * node_mask[..., None]
            s = t[f"ipa_ln_{blk}"](s + ipa)
            s = s + t[f"post_tfmr_{blk}"](t[f"seq_tfmr_{blk}"](s, src_key_padding_mask=pad))
            s = t[f"node_transition_{blk}"](s) * node_mask[..., None]
            frames = compose_update(frames, t[f"bb_update_{blk}"](s), update_mask)
            if blk < last:
                z = t[f"edge_transition_{blk}"](s, z) * pair_mask[..., None]
        if cfg.aatype_pred:
            logits = self.aatype_pred_net(s)
        else:
            logits = nn.functional.one_hot(aatypes, cfg.aatype_pred_num_tokens).to(dtype)
        return ProteinNetworkOutput(pred_trans=frames.trans * NM_TO_ANG, pred_rotmats=frames.rots, pred_logits=logits)

