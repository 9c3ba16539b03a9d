"""The predictor network: long tokens and one-hot input give the same outputs, atoms carry no order, padding is
ignored, outputs are in property units, and the one-hot gradient exists (first-order guidance)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from pipeline.crystals.flow import atom_mask_of
from pipeline.crystals.predictor.network import CrystalPredictor, PredictorNetConfig
from structures.crystals.dataset import TokenizedCrystals
from structures.crystals.tokens import MASK, PAD, VOCAB_SIZE
from structures.errors import InputError


@pytest.fixture(scope="module")
def net() -> CrystalPredictor:
    torch.manual_seed(0)
    model = CrystalPredictor(PredictorNetConfig(n_properties=2, hidden=32, blocks=2, heads=4))
    for p in model.parameters():  # adaLN starts at zero: randomise it so that every path is exercised
        torch.nn.init.normal_(p, std=0.3)
    model.set_standardisation(torch.tensor([1.5, -2.0]), torch.tensor([0.5, 3.0]))
    return model.eval()


@pytest.fixture(scope="module")
def tokens() -> torch.Tensor:
    """8 Carbon-24 test crystals (6-24 atoms: real padding), partly masked."""
    ds = TokenizedCrystals.from_name("carbon_24", "test", progress=False, limit=8)
    x = torch.from_numpy(ds.tokens.astype("int64"))
    g = torch.Generator().manual_seed(1)
    masked = (torch.rand(x.shape, generator=g) < 0.4) & (x != PAD)
    return torch.where(masked, torch.full_like(x, MASK), x)


def test_one_hot_input_equals_long_tokens(net: CrystalPredictor, tokens: torch.Tensor) -> None:
    t = torch.linspace(0.0, 1.0, tokens.shape[0])
    mask = atom_mask_of(tokens)
    mean, std = net(tokens, t, mask)
    one_hot = F.one_hot(tokens, VOCAB_SIZE).float()
    mean_1h, std_1h = net(one_hot, t, mask)
    torch.testing.assert_close(mean_1h, mean, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(std_1h, std, rtol=1e-6, atol=1e-6)
    mean_d, _ = net(one_hot, t)  # the atom mask is read off the PAD column of the one-hot by default
    torch.testing.assert_close(mean_d, mean, rtol=1e-6, atol=1e-6)
    assert mean.shape == std.shape == (tokens.shape[0], 2) and (std > 0).all()


def test_one_hot_gradient_is_finite_and_nonzero(net: CrystalPredictor, tokens: torch.Tensor) -> None:
    one_hot = F.one_hot(tokens, VOCAB_SIZE).float().requires_grad_(True)
    mean, std = net(one_hot, torch.full((tokens.shape[0],), 0.5), atom_mask_of(tokens))
    (mean.sum() + std.sum()).backward()
    g = one_hot.grad  # [B, L, V]
    assert torch.isfinite(g).all()
    real = g[:, :6].abs().sum(-1)  # lattice positions are always real
    assert (real > 0).all()


def test_permutation_invariant_over_atoms(net: CrystalPredictor, tokens: torch.Tensor) -> None:
    t = torch.rand(tokens.shape[0], generator=torch.Generator().manual_seed(3))
    mean, std = net(tokens, t)
    n = int(atom_mask_of(tokens)[0].sum())
    atoms = tokens[0, 6:6 + 4 * n].reshape(n, 4)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(4))
    assert not torch.equal(perm, torch.arange(n))
    shuffled = tokens.clone()
    shuffled[0, 6:6 + 4 * n] = atoms[perm].reshape(-1)
    mean_p, std_p = net(shuffled, t)
    torch.testing.assert_close(mean_p, mean, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(std_p, std, rtol=1e-5, atol=1e-5)


def test_padding_and_lattice_order(net: CrystalPredictor, tokens: torch.Tensor) -> None:
    t = torch.full((tokens.shape[0],), 0.3)
    mean, _ = net(tokens, t)
    padded = torch.cat([tokens, torch.full((tokens.shape[0], 12), PAD)], dim=1)  # 3 more empty atom slots
    torch.testing.assert_close(net(padded, t)[0], mean, rtol=1e-5, atol=1e-5)
    swapped = tokens.clone()
    swapped[:, [0, 1]] = tokens[:, [1, 0]]  # lattice tokens have positions: not a symmetry
    assert not torch.allclose(net(swapped, t)[0], mean)


def test_property_units_and_time_dependence(net: CrystalPredictor, tokens: torch.Tensor) -> None:
    t = torch.full((tokens.shape[0],), 0.7)
    m, s = net.standardised(tokens, t)
    mean, std = net(tokens, t)
    torch.testing.assert_close(mean, torch.tensor([1.5, -2.0]) + torch.tensor([0.5, 3.0]) * m)
    torch.testing.assert_close(std, torch.tensor([0.5, 3.0]) * s)
    assert not torch.allclose(net(tokens, torch.zeros_like(t))[0], mean)


def test_bad_shapes_and_configs() -> None:
    model = CrystalPredictor(PredictorNetConfig(n_properties=1, hidden=16, blocks=1, heads=2))
    with pytest.raises(ValueError, match="6 \\+ 4a"):
        model(torch.zeros(2, 9, dtype=torch.long), torch.zeros(2))
    with pytest.raises(ValueError, match="one-hot"):
        model(torch.zeros(2, 10, 5), torch.zeros(2))
    with pytest.raises(InputError, match="divisible"):
        PredictorNetConfig(hidden=10, heads=4)
    with pytest.raises(InputError, match="n_properties"):
        PredictorNetConfig(n_properties=0)
