"""Permutation-invariant Diffusion Transformer for tokenised crystals (KO appendix E.2).

A crystal with ``a`` atoms is the token sequence ``[l1 l2 l3 a1 a2 a3 | (el x y z) * a]`` of
length ``6 + 4a`` (padded to ``6 + 4 a_max`` with an atom mask). The network

1. embeds every token (vocabulary ``V``);
2. flattens each atom's 4 embeddings and maps them with Linear + SiLU to one atom token, so the
   sequence becomes ``6 + a`` long;
3. adds a learned positional embedding to each of the 6 lattice tokens and ONE shared embedding to
   every atom token (so atom order carries no information: permutation equivariance);
4. runs DiT blocks with adaLN conditioning on time (shift / scale / gate for attention and MLP,
   zero-initialised modulation; the SEDD-style block), with padded atoms masked out of attention;
5. expands every atom token with 4 independent linear maps back to 4 positions (``6 + 4a``) and
   computes logits over the vocabulary after a final adaLN layer.

Permuting the atoms of the input permutes the atom quadruples of the output the same way.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from structures.crystals.tokens import LATTICE_TOKENS as N_LATTICE
from structures.crystals.tokens import TOKENS_PER_ATOM, VOCAB_SIZE


@dataclass(frozen=True)
class CrystalDiTConfig:
    vocab_size: int = VOCAB_SIZE
    hidden: int = 256
    blocks: int = 16
    heads: int = 16
    mlp_ratio: int = 4
    dropout: float = 0.1
    time_freq_dim: int = 256
    max_atoms: int = 20

    def __post_init__(self) -> None:
        if self.hidden % self.heads:
            raise ValueError(f"hidden ({self.hidden}) must be divisible by heads ({self.heads}); "
                             "set --hidden and --heads together")

    def to_dict(self) -> dict:
        return asdict(self)


CONFIGS: dict[str, CrystalDiTConfig] = {
    "paper": CrystalDiTConfig(hidden=256, blocks=16, heads=16, dropout=0.1),
    "small": CrystalDiTConfig(hidden=128, blocks=4, heads=4, dropout=0.0),
}


def timestep_embedding(t: Tensor, dim: int, max_period: float = 10_000.0) -> Tensor:
    """Sinusoidal embedding of t in [0, 1] (scaled by 1000 as in DiT/SEDD): ``[B] -> [B, dim]``."""
    half = dim // 2
    t = t if t.is_floating_point() else t.float()
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=t.dtype) / half)
    args = 1000.0 * t[:, None] * freqs[None]  # [B, half]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    return F.pad(emb, (0, dim % 2))


def _modulate(x: Tensor, shift: Tensor, scale: Tensor) -> Tensor:
    return x * (1 + scale[:, None]) + shift[:, None]


class DiTBlock(nn.Module):
    """Pre-LN transformer block with adaLN-Zero conditioning (shift/scale/gate for attn and MLP)."""

    def __init__(self, cfg: CrystalDiTConfig) -> None:
        super().__init__()
        h = cfg.hidden
        self.heads = cfg.heads
        self.norm1 = nn.LayerNorm(h, elementwise_affine=False, eps=1e-6)
        self.qkv = nn.Linear(h, 3 * h)
        self.attn_out = nn.Linear(h, h)
        self.norm2 = nn.LayerNorm(h, elementwise_affine=False, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(h, cfg.mlp_ratio * h), nn.GELU(approximate="tanh"),
                                 nn.Linear(cfg.mlp_ratio * h, h))
        self.dropout = nn.Dropout(cfg.dropout)
        self.ada = nn.Linear(h, 6 * h)
        nn.init.zeros_(self.ada.weight)
        nn.init.zeros_(self.ada.bias)

    def forward(self, x: Tensor, c: Tensor, attn_mask: Tensor) -> Tensor:
        # x [B, S, H], c [B, H], attn_mask [B, 1, 1, S] bool (True = attend)
        B, S, H = x.shape
        sh1, sc1, g1, sh2, sc2, g2 = self.ada(c).chunk(6, dim=-1)  # each [B, H]
        q, k, v = self.qkv(_modulate(self.norm1(x), sh1, sc1)).view(B, S, 3, self.heads, H // self.heads) \
            .permute(2, 0, 3, 1, 4)  # each [B, heads, S, H/heads]
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask,
                                           dropout_p=self.dropout.p if self.training else 0.0)
        a = self.attn_out(a.transpose(1, 2).reshape(B, S, H))
        x = x + g1[:, None] * self.dropout(a)
        m = self.mlp(_modulate(self.norm2(x), sh2, sc2))
        return x + g2[:, None] * self.dropout(m)


class CrystalDiT(nn.Module):
    """Permutation-equivariant DiT over atoms: tokens ``[B, 6 + 4 a_max]`` -> logits ``[B, 6 + 4 a_max, V]``."""

    def __init__(self, cfg: CrystalDiTConfig = CONFIGS["paper"]) -> None:
        super().__init__()
        self.cfg = cfg
        h = cfg.hidden
        self.embed = nn.Embedding(cfg.vocab_size, h)
        self.atom_in = nn.Sequential(nn.Linear(TOKENS_PER_ATOM * h, h), nn.SiLU())
        self.lattice_pos = nn.Parameter(torch.randn(N_LATTICE, h) * 0.02)
        self.atom_pos = nn.Parameter(torch.randn(h) * 0.02)  # ONE embedding shared by all atoms
        self.time = nn.Sequential(nn.Linear(cfg.time_freq_dim, h), nn.SiLU(), nn.Linear(h, h))
        self.blocks = nn.ModuleList(DiTBlock(cfg) for _ in range(cfg.blocks))
        self.atom_out = nn.Linear(h, TOKENS_PER_ATOM * h)  # 4 independent linear maps per atom
        self.norm_out = nn.LayerNorm(h, elementwise_affine=False, eps=1e-6)
        self.ada_out = nn.Linear(h, 2 * h)
        nn.init.zeros_(self.ada_out.weight)
        nn.init.zeros_(self.ada_out.bias)
        self.head = nn.Linear(h, cfg.vocab_size)

    def forward(self, tokens: Tensor, t: Tensor, atom_mask: Tensor | None = None) -> Tensor:
        """Logits of the posterior p(x1 | x_t) per position.

        Args:
            tokens: ``[B, 6 + 4A]`` token ids (A = padded atom count).
            t: ``[B]`` times in [0, 1].
            atom_mask: ``[B, A]`` bool, True for real atoms (default: all real).
        Returns:
            ``[B, 6 + 4A, V]`` logits (padded positions carry arbitrary values).
        """
        B, L = tokens.shape
        A, rem = divmod(L - N_LATTICE, TOKENS_PER_ATOM)
        if rem or A < 0:
            raise ValueError(f"token length {L} is not 6 + 4a")
        if atom_mask is None:
            atom_mask = torch.ones(B, A, dtype=torch.bool, device=tokens.device)
        e = self.embed(tokens)  # [B, L, H]
        H = e.shape[-1]
        lattice = e[:, :N_LATTICE] + self.lattice_pos  # [B, 6, H]
        atoms = self.atom_in(e[:, N_LATTICE:].reshape(B, A, TOKENS_PER_ATOM * H)) + self.atom_pos  # [B, A, H]
        x = torch.cat([lattice, atoms], dim=1)  # [B, 6 + A, H]
        keep = torch.cat([torch.ones(B, N_LATTICE, dtype=torch.bool, device=tokens.device), atom_mask], 1)
        attn_mask = keep[:, None, None, :]  # [B, 1, 1, 6 + A]
        c = self.time(timestep_embedding(t, self.cfg.time_freq_dim).to(e.dtype))  # [B, H]
        for block in self.blocks:
            x = block(x, c, attn_mask)
        atoms_out = self.atom_out(x[:, N_LATTICE:]).reshape(B, A * TOKENS_PER_ATOM, H)  # [B, 4A, H]
        y = torch.cat([x[:, :N_LATTICE], atoms_out], dim=1)  # [B, 6 + 4A, H]
        shift, scale = self.ada_out(c).chunk(2, dim=-1)
        return self.head(_modulate(self.norm_out(y), shift, scale))  # [B, 6 + 4A, V]

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
