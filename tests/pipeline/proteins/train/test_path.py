"""The protein trainer draws x_t from the protein flow's product path (GM Prop. 4), with the source draw coupled to
the data; the hand-built construction it replaced (MultiFlow ``corrupt_batch``, kept below as ``reference_corrupt``)
gives the same x_t for the same random draws."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from torch import Tensor

from manifolds import so3
from manifolds.discrete import mask_source, scheduler_by_name
from manifolds.paths import AffineGaussianPath, ExpRate, GeodesicSO3Path, LinearRate
from pipeline.proteins.flow import ProteinFlow, ProteinState
from pipeline.proteins.sampler import SamplerConfig
from pipeline.proteins.sequence import MaskedSequence, PuritySequence
from pipeline.proteins.train.interpolant import (Interpolant, InterpolantConfig, NoisyProteins, ProteinTarget,
                                                 sample_times)
from structures.proteins.residue_constants import MASK_INDEX, NUM_TOKENS

#: translations are ~10 Angstrom and rotations O(1): both constructions do the same float32 operations, so the
#: results agree to rounding (measured: exactly); amino acids must be equal
ATOL = 1e-6
RTOL = 1e-6


# ------------------------------------------------------------------------ reference: the replaced construction

def _ref_centred_gaussian(res_mask: Tensor, scale: float, g: torch.Generator | None = None) -> Tensor:
    m = res_mask.to(torch.float32)[..., None]  # [B, N, 1]
    eps = torch.randn(res_mask.shape + (3,), generator=g, device=res_mask.device)
    mean = (eps * m).sum(-2, keepdim=True) / m.sum(-2, keepdim=True).clamp_min(1)
    return scale * (eps - mean) * m


def _ref_kabsch(x: Tensor, y: Tensor, mask: Tensor) -> Tensor:
    h = (x * mask[..., None]).transpose(-1, -2) @ y  # [..., 3, 3]
    u, _, vh = torch.linalg.svd(h.double())
    d = torch.sign(torch.det(u @ vh))
    d = torch.where(d == 0, torch.ones_like(d), d)
    fix = torch.diag_embed(torch.stack([torch.ones_like(d), torch.ones_like(d), d], -1))
    return (u @ fix @ vh).to(x.dtype)


def _ref_minibatch_ot(x1: Tensor, res_mask: Tensor, scale: float, g: torch.Generator | None = None) -> Tensor:
    from scipy.optimize import linear_sum_assignment

    b = x1.shape[0]
    eps = scale * torch.randn(x1.shape, generator=g, device=x1.device)  # [B, N, 3]
    m = res_mask.to(x1.dtype)  # [B, N]
    mi = m[None, :, :, None]
    noise = eps[:, None] * mi  # [B(noise), B(target), N, 3]
    noise = (noise - noise.sum(-2, keepdim=True) / mi.sum(-2, keepdim=True).clamp_min(1)) * mi
    target = x1[None].expand_as(noise)
    rot = _ref_kabsch(noise, target, m[None].expand(b, b, -1))
    aligned = noise @ rot
    cost = ((aligned - target).norm(dim=-1) * m[None]).sum(-1) / m.sum(-1)[None].clamp_min(1)
    noise_idx, target_idx = linear_sum_assignment(cost.detach().cpu().double().numpy())
    order = np.empty(b, dtype=np.int64)
    order[target_idx] = noise_idx
    return aligned[torch.as_tensor(order, device=x1.device), torch.arange(b, device=x1.device)]


def _ref_mask_sequence(aatypes_1: Tensor, t: Tensor, scheduler: str, res_mask: Tensor,
                       g: torch.Generator | None = None) -> Tensor:
    sched = scheduler_by_name(scheduler, mask_source(NUM_TOKENS, MASK_INDEX, dtype=torch.float64))
    kappa = sched.data_kappa(t.double()).to(t.dtype)  # [B]
    u = torch.rand(aatypes_1.shape, generator=g, device=aatypes_1.device)
    keep = (u < kappa[:, None]) & res_mask.bool()
    return torch.where(keep, aatypes_1, torch.full_like(aatypes_1, MASK_INDEX))


def reference_corrupt(target: ProteinTarget, cfg: InterpolantConfig, g: torch.Generator | None = None,
                      times: tuple[Tensor, Tensor] | None = None) -> NoisyProteins:
    """The trainer's x_t before it sampled the flow's path (``pipeline/train/protein_interpolant.corrupt``)."""
    mask = target.res_mask.bool()
    b, device = mask.shape[0], mask.device
    m = mask.to(target.trans_1.dtype)
    structure_t, cat_t = times if times is not None else sample_times(b, cfg, g, device)
    if cfg.batch_ot and b > 1:
        trans_0 = _ref_minibatch_ot(target.trans_1, mask, cfg.trans_prior_scale, g)
    else:
        trans_0 = _ref_centred_gaussian(mask, cfg.trans_prior_scale, g)
    s = structure_t[:, None, None]
    trans_t = ((1 - s) * trans_0 + s * target.trans_1) * m[..., None]
    noise_rot = so3.sample_igso3(torch.eye(3, device=device).expand(*mask.shape, 3, 3), cfg.rot_prior_sigma, g)
    rot_0 = target.rotmats_1 @ noise_rot.to(target.rotmats_1.dtype)
    rot_t = so3.geodesic(rot_0, target.rotmats_1, structure_t[:, None].expand(mask.shape))
    rot_t = torch.where(mask[..., None, None], rot_t, torch.eye(3, dtype=rot_t.dtype, device=device))
    aatypes_t = _ref_mask_sequence(target.aatypes_1, cat_t, cfg.seq_scheduler, mask, g)
    return NoisyProteins(target=target, trans_t=trans_t, rotmats_t=rot_t, aatypes_t=aatypes_t,
                         r3_t=structure_t, so3_t=structure_t.clone(), cat_t=cat_t)


# ------------------------------------------------------------------------ helpers

def _target(b: int = 6, n: int = 40, seed: int = 0) -> ProteinTarget:
    """B synthetic chains of lengths n, n - 7, n - 14, ... (padded to n), centred, with random frames and residues."""
    g = torch.Generator().manual_seed(seed)
    mask = torch.arange(n)[None] < torch.tensor([n - 7 * (i % 4) for i in range(b)])[:, None]  # [B, N]
    trans = torch.cumsum(3.8 * so3.random_unit_vectors((b, n), g, dtype=torch.float32), 1) * mask[..., None]
    trans = (trans - trans.sum(1, keepdim=True) / mask.sum(1)[:, None, None]) * mask[..., None]
    rots = torch.where(mask[..., None, None], so3.uniform((b, n), g, dtype=torch.float32), torch.eye(3))
    aatypes = torch.where(mask, torch.randint(0, 20, (b, n), generator=g), MASK_INDEX)
    return ProteinTarget(trans, rots, aatypes, mask)


def _assert_same(new: NoisyProteins, old: NoisyProteins) -> None:
    torch.testing.assert_close(new.trans_t, old.trans_t, atol=ATOL, rtol=RTOL)
    torch.testing.assert_close(new.rotmats_t, old.rotmats_t, atol=ATOL, rtol=RTOL)
    assert torch.equal(new.aatypes_t, old.aatypes_t)
    for name in ("r3_t", "so3_t", "cat_t"):
        assert torch.equal(getattr(new, name), getattr(old, name)), name


CASES = [dict(separate_t=s, batch_ot=ot) for s in (True, False) for ot in (True, False)]


# ------------------------------------------------------------------------ tests

@pytest.mark.parametrize("kw", CASES, ids=lambda kw: f"separate_t={kw['separate_t']}-batch_ot={kw['batch_ot']}")
@pytest.mark.parametrize("scheduler", ["linear", "kinetic_optimal"])
def test_path_sample_equals_the_replaced_construction(kw: dict, scheduler: str) -> None:
    """Same generator seed -> same times, same x_0 draws, same x_t (translations, rotations, amino acids)."""
    cfg = InterpolantConfig(seq_scheduler=scheduler, **kw)
    target = _target()
    interp = Interpolant.build(cfg)
    for seed in range(3):
        new = interp.sample(target, torch.Generator().manual_seed(seed))
        old = reference_corrupt(target, cfg, torch.Generator().manual_seed(seed))
        _assert_same(new, old)
    # the draws are not degenerate: some residues are masked, some revealed, x_t is not x_1
    assert 0 < int(((new.aatypes_t == MASK_INDEX) & target.res_mask).sum()) < int(target.res_mask.sum())
    assert float((new.trans_t - target.trans_1).abs().max()) > 1.0
    if not kw["separate_t"]:
        assert torch.equal(new.r3_t, new.cat_t)


def test_fixed_times_and_a_single_chain_match_too() -> None:
    """Validation's fixed time grid (``times=``) and a batch of one (no OT pairing possible)."""
    cfg = InterpolantConfig()
    times = (torch.tensor([0.05, 0.3, 0.6, 0.9]), torch.tensor([0.2, 0.5, 0.7, 0.95]))
    target = _target(4)
    _assert_same(Interpolant.build(cfg).sample(target, torch.Generator().manual_seed(7), times),
                 reference_corrupt(target, cfg, torch.Generator().manual_seed(7), times))
    one = _target(1)
    _assert_same(Interpolant.build(cfg).sample(one, torch.Generator().manual_seed(8)),
                 reference_corrupt(one, cfg, torch.Generator().manual_seed(8)))


@pytest.mark.parametrize("wrong", ["rotation rate", "sequence scheduler", "translation scale"])
def test_a_wrong_path_fails_the_comparison(wrong: str) -> None:
    """The comparison can fail: the sampler's exp-rate rotation schedule, the KO scheduler on the tokens of a model
    trained on the linear one, or another prior scale give another x_t for the same draws."""
    cfg = InterpolantConfig(separate_t=False)
    path = Interpolant.build(cfg).path
    if wrong == "rotation rate":
        path = dataclasses.replace(path, rots=GeodesicSO3Path(ExpRate(10.0)))
    elif wrong == "sequence scheduler":
        path = dataclasses.replace(path, sequence=MaskedSequence("kinetic_optimal").path)
    else:
        path = dataclasses.replace(path, trans=AffineGaussianPath(noise_scale=5.0))
    target = _target()
    new = Interpolant(cfg, path).sample(target, torch.Generator().manual_seed(1))
    old = reference_corrupt(target, cfg, torch.Generator().manual_seed(1))
    with pytest.raises(AssertionError):
        _assert_same(new, old)


def test_the_trained_path_is_the_samplers() -> None:
    """The translation path trained on is the one the sampler's translation flow integrates (default settings);
    the trained mask path is MultiFlow's purity sampler's (linear) and the KO CTMC's of the training scheduler; the
    rotations are the geodesic with kappa_t = t."""
    interp = Interpolant.build(InterpolantConfig())
    sampler_flow = ProteinFlow.build(SamplerConfig().flow)
    assert interp.path.trans == sampler_flow.generator.components[0].path
    assert interp.path.rots == GeodesicSO3Path(LinearRate())
    z = torch.randint(0, 20, (5, 7))
    t = torch.linspace(0.1, 0.9, 5)
    torch.testing.assert_close(interp.path.sequence.probs(z, t), PuritySequence().path.probs(z, t), rtol=0, atol=0)
    ko = Interpolant.build(InterpolantConfig(seq_scheduler="kinetic_optimal")).path.sequence
    torch.testing.assert_close(ko.probs(z, t), MaskedSequence("kinetic_optimal").path.probs(z, t), rtol=0, atol=0)


def test_path_sample_from_its_source_is_its_sample() -> None:
    """For the continuous factors, sample(z, t) = sample_from(sample_source(z), z, t) for the same draws; for the
    mask path, sample_from reveals a fraction kappa_t of the tokens."""
    g = torch.Generator().manual_seed(3)
    t = torch.rand(8, generator=g)
    for path, z in ((AffineGaussianPath(noise_scale=10.0), 5 * torch.randn(8, 12, 3, generator=g)),
                    (GeodesicSO3Path(LinearRate()), so3.uniform((8, 12), g, dtype=torch.float32))):
        drawn = path.sample(z, t, torch.Generator().manual_seed(4))
        x0 = path.sample_source(z, torch.Generator().manual_seed(4))
        torch.testing.assert_close(path.sample_from(x0, z, t), drawn, rtol=0, atol=0)
    seq = Interpolant.build(InterpolantConfig(seq_scheduler="kinetic_optimal")).path.sequence
    z = torch.randint(0, 20, (3, 40_000), generator=g)
    tt = torch.tensor([0.2, 0.5, 0.8])
    x = seq.sample_from(seq.sample_source(z), z, tt, g)
    assert bool(((x == z) | (x == MASK_INDEX)).all())
    revealed = (x == z).double().mean(1)
    torch.testing.assert_close(revealed, torch.sin(torch.pi * tt.double() / 2) ** 2, atol=0.01, rtol=0)


def test_coupling_keeps_padding_and_pairs_by_ot() -> None:
    """x_0 of the coupling: zero / MASK on padding, centred translations; with OT they are closer to the data
    than the independent prior draw of the same seed."""
    target = _target(8)
    mask = target.res_mask
    ot = Interpolant.build(InterpolantConfig()).coupling(target, torch.Generator().manual_seed(2))
    plain = Interpolant.build(InterpolantConfig(batch_ot=False)).coupling(target, torch.Generator().manual_seed(2))
    for x0 in (ot, plain):
        assert isinstance(x0, ProteinState)
        assert bool((x0.trans[~mask] == 0).all()) and bool((x0.aatypes == MASK_INDEX).all())
        m = mask[..., None].float()
        assert float(((x0.trans * m).sum(1) / m.sum(1)).abs().max()) < 1e-3

    def cost(x: Tensor) -> float:
        return float(((x - target.trans_1).norm(dim=-1) * mask).sum() / mask.sum())

    assert cost(ot.trans) < cost(plain.trans)
