"""Permutation-invariant crystal DiT (KO appendix E.2): shapes, equivariance, padding, configs."""

from __future__ import annotations

import pytest
import torch

from pipeline.crystals.network import CONFIGS, CrystalDiT, CrystalDiTConfig

TINY = CrystalDiTConfig(hidden=32, blocks=2, heads=4, dropout=0.0, time_freq_dim=16)


def _randomised(cfg: CrystalDiTConfig, seed: int = 0) -> CrystalDiT:
    """Random weights everywhere, zero-initialised adaLN included, so every path carries signal."""
    torch.manual_seed(seed)
    net = CrystalDiT(cfg).double().eval()
    with torch.no_grad():
        for p in net.parameters():
            p.normal_(0, 0.3)
    return net


def _batch(B: int, A: int, V: int = 878, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, V, (B, 6 + 4 * A), generator=g), torch.rand(B, generator=g, dtype=torch.float64)


def _permute_atoms(x: torch.Tensor, perm: torch.Tensor) -> torch.Tensor:
    """Permute the atom quadruples of ``x`` [B, 6 + 4A, ...]."""
    B = x.shape[0]
    atoms = x[:, 6:].reshape(B, -1, 4, *x.shape[2:])[:, perm]
    return torch.cat([x[:, :6], atoms.reshape(B, -1, *x.shape[2:])], dim=1)


def test_output_shape_and_time_dependence() -> None:
    net = _randomised(TINY)
    tok, t = _batch(3, 5)
    out = net(tok, t)
    assert out.shape == (3, 26, 878)
    assert not torch.allclose(out, net(tok, t * 0.5)), "time must enter the network"


def test_atom_permutation_equivariance() -> None:
    net = _randomised(TINY)
    tok, t = _batch(4, 7)
    perm = torch.randperm(7, generator=torch.Generator().manual_seed(3))
    out = net(tok, t)
    out_p = net(_permute_atoms(tok, perm), t)
    torch.testing.assert_close(out_p, _permute_atoms(out, perm), rtol=1e-10, atol=1e-10)
    # the lattice logits are invariant
    torch.testing.assert_close(out_p[:, :6], out[:, :6], rtol=1e-10, atol=1e-10)


def test_within_atom_order_matters() -> None:
    """Swapping two tokens inside one atom (element <-> x) is NOT a symmetry: the output changes."""
    net = _randomised(TINY)
    tok, t = _batch(2, 3)
    swapped = tok.clone()
    swapped[:, 6], swapped[:, 7] = tok[:, 7], tok[:, 6]
    assert not torch.allclose(net(tok, t)[:, :6], net(swapped, t)[:, :6])


def test_padded_atoms_do_not_influence_real_ones() -> None:
    net = _randomised(TINY)
    tok, t = _batch(2, 6)
    mask = torch.tensor([[True] * 4 + [False] * 2] * 2)
    out = net(tok, t, mask)
    tok2 = tok.clone()
    tok2[:, 6 + 16:] = torch.randint(0, 878, tok2[:, 6 + 16:].shape)  # change only the padded atoms
    out2 = net(tok2, t, mask)
    torch.testing.assert_close(out[:, : 6 + 16], out2[:, : 6 + 16], rtol=1e-10, atol=1e-10)
    # and equals the unpadded 4-atom crystal
    torch.testing.assert_close(out[:, : 6 + 16], net(tok[:, : 6 + 16], t), rtol=1e-10, atol=1e-10)


def test_bad_length_is_a_clear_error() -> None:
    net = CrystalDiT(TINY)
    with pytest.raises(ValueError, match="6 \\+ 4a"):
        net(torch.zeros(1, 9, dtype=torch.long), torch.zeros(1))


def test_configs_sizes() -> None:
    n_paper = CrystalDiT(CONFIGS["paper"]).num_parameters()
    assert 18e6 < n_paper < 26e6  # hidden 256, 16 blocks, 16 heads
    assert CrystalDiT(CONFIGS["small"]).num_parameters() < 2.5e6  # trains on a CPU; < 10 MB in fp32
