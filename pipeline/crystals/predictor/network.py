"""The property predictor p_phi(y | x_t, t) on noisy crystal token sequences (Nisonoff et al. 2024 predictor guidance).

A crystal state is the KO E.2 token sequence ``[l1 l2 l3 a1 a2 a3 | (el x y z) * A]`` (length ``6 + 4A``,
padded atoms masked), partly masked (or, on a metric coordinate path, with noisy coordinates) at time t of the
generator's path. The network reuses the crystal DiT's building blocks (:mod:`pipeline.crystals.network`):

1. token embedding as ``one_hot(x) @ W`` (so a float one-hot or soft input ``[B, L, V]`` gives exactly the output
   of the long tokens ``[B, L]``, and first-order guidance can differentiate w.r.t. the one-hot);
2. each atom's 4 embeddings -> one atom token (Linear + SiLU); learned positions for the 6 lattice tokens, ONE
   shared embedding for every atom (no order over atoms);
3. DiT blocks with adaLN conditioning on t, padded atoms masked out of attention;
4. pooling: the mean of the lattice tokens and the masked mean of the atom tokens (permutation invariant), then an
   MLP to a standardised mean m and a standard deviation s = softplus(r) + min_std per property;
5. property units: mean = mu + sigma m, std = sigma s, with the training targets' mean mu and standard deviation
   sigma stored as buffers (and in the model record).

Trained with the Gaussian negative log-likelihood of the standardised targets (heteroscedastic), see
:mod:`pipeline.crystals.predictor.train`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pipeline.crystals.network import CrystalDiTConfig, DiTBlock, timestep_embedding
from structures.crystals.tokens import LATTICE_TOKENS as N_LATTICE
from structures.crystals.tokens import PAD, TOKENS_PER_ATOM, VOCAB_SIZE
from structures.errors import InputError
from structures.validate import check_float, check_int


@dataclass(frozen=True)
class PredictorNetConfig:
    """Size of the predictor network; ``n_properties`` outputs (a mean and a std each)."""

    n_properties: int = 1
    hidden: int = 64
    blocks: int = 3
    heads: int = 4
    mlp_ratio: int = 2
    time_freq_dim: int = 32
    min_std: float = 0.1  # floor of the standardised std (an over-confident predictor over-steers guidance)
    dropout: float = 0.0  # in the transformer blocks (training only)
    vocab_size: int = VOCAB_SIZE

    def __post_init__(self) -> None:
        name = type(self).__name__
        for field in ("n_properties", "hidden", "blocks", "heads", "mlp_ratio", "time_freq_dim", "vocab_size"):
            check_int(f"{name}.{field}", getattr(self, field), minimum=1)
        check_float(f"{name}.min_std", self.min_std, 0.0, strict_minimum=True)
        check_float(f"{name}.dropout", self.dropout, 0.0, 0.9)
        if self.hidden % self.heads:
            raise InputError(f"{name}.hidden ({self.hidden}) must be divisible by heads ({self.heads})")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def block_config(self) -> CrystalDiTConfig:
        return CrystalDiTConfig(vocab_size=self.vocab_size, hidden=self.hidden, blocks=self.blocks, heads=self.heads,
                                mlp_ratio=self.mlp_ratio, dropout=self.dropout, time_freq_dim=self.time_freq_dim)


class CrystalPredictor(nn.Module):
    """``forward(x, t, atom_mask) -> (mean [B, P], std [B, P])`` in property units (module docstring)."""

    def __init__(self, cfg: PredictorNetConfig) -> None:
        super().__init__()
        self.cfg = cfg
        h = cfg.hidden
        self.embed = nn.Parameter(torch.randn(cfg.vocab_size, h) * 0.1)  # used as one_hot @ embed
        self.atom_in = nn.Sequential(nn.Linear(TOKENS_PER_ATOM * h, h), nn.SiLU())
        self.lattice_pos = nn.Parameter(torch.randn(N_LATTICE, h) * 0.02)
        self.atom_pos = nn.Parameter(torch.randn(h) * 0.02)  # ONE embedding shared by all atoms
        self.time = nn.Sequential(nn.Linear(cfg.time_freq_dim, h), nn.SiLU(), nn.Linear(h, h))
        block_cfg = cfg.block_config()
        self.blocks = nn.ModuleList(DiTBlock(block_cfg) for _ in range(cfg.blocks))
        self.norm = nn.LayerNorm(2 * h)
        self.head = nn.Sequential(nn.Linear(3 * h, h), nn.SiLU(), nn.Linear(h, 2 * cfg.n_properties))
        self.register_buffer("loc", torch.zeros(cfg.n_properties))  # [P] training-target mean (property units)
        self.register_buffer("scale", torch.ones(cfg.n_properties))  # [P] training-target std

    def set_standardisation(self, loc: Tensor, scale: Tensor) -> None:
        self.loc.copy_(loc)
        self.scale.copy_(scale)

    def _embed(self, x: Tensor) -> Tensor:
        """``[B, L]`` long or ``[B, L, V]`` float -> ``[B, L, H]``; for one-hot input both are the same rows."""
        if x.is_floating_point():
            if x.ndim != 3 or x.shape[-1] != self.cfg.vocab_size:
                raise ValueError(f"a float input must be one-hot / soft tokens [B, L, {self.cfg.vocab_size}], got "
                                 f"{tuple(x.shape)}")
            return x.to(self.embed.dtype) @ self.embed
        if x.ndim != 2:
            raise ValueError(f"token input must be [B, L] long, got {tuple(x.shape)}")
        return F.embedding(x, self.embed)

    def standardised(self, x: Tensor, t: Tensor, atom_mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """(m, s) ``[B, P]`` each: the mean and std of the standardised targets (y - loc) / scale."""
        e = self._embed(x)  # [B, L, H]
        B, L, H = e.shape
        A, rem = divmod(L - N_LATTICE, TOKENS_PER_ATOM)
        if rem or A < 0:
            raise ValueError(f"token length {L} is not 6 + 4a")
        if atom_mask is None:
            atom_mask = (x[:, N_LATTICE::TOKENS_PER_ATOM, PAD] < 0.5) if x.is_floating_point() else \
                (x[:, N_LATTICE::TOKENS_PER_ATOM] != PAD)  # [B, A]
        lattice = e[:, :N_LATTICE] + self.lattice_pos  # [B, 6, H]
        atoms = self.atom_in(e[:, N_LATTICE:].reshape(B, A, TOKENS_PER_ATOM * H)) + self.atom_pos  # [B, A, H]
        h = torch.cat([lattice, atoms], dim=1)  # [B, 6 + A, H]
        keep = torch.cat([torch.ones(B, N_LATTICE, dtype=torch.bool, device=e.device), atom_mask], 1)
        c = self.time(timestep_embedding(t.to(e.dtype), self.cfg.time_freq_dim))  # [B, H]
        for block in self.blocks:
            h = block(h, c, keep[:, None, None, :])
        w = atom_mask.to(h.dtype)[..., None]  # [B, A, 1]
        pooled_atoms = (h[:, N_LATTICE:] * w).sum(1) / w.sum(1).clamp_min(1.0)  # [B, H]
        pooled = self.norm(torch.cat([h[:, :N_LATTICE].mean(1), pooled_atoms], dim=-1))  # [B, 2H]
        out = self.head(torch.cat([pooled, c], dim=-1))  # [B, 2P]
        m, r = out.chunk(2, dim=-1)
        return m, F.softplus(r) + self.cfg.min_std

    def forward(self, x: Tensor, t: Tensor, atom_mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Predicted mean and std of each property, ``[B, P]`` each, in property units.

        Args:
            x: ``[B, 6 + 4A]`` long tokens, or ``[B, 6 + 4A, V]`` float one-hot / soft tokens.
            t: ``[B]`` times in [0, 1] on the generator path the predictor was trained on (its own time).
            atom_mask: ``[B, A]`` bool, True for real atoms (default: the atom slots that are not PAD).
        """
        m, s = self.standardised(x, t, atom_mask)
        return self.loc + self.scale * m, self.scale * s

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
