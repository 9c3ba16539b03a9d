"""The amortised motif method (issue 24, item 2 (a); FrameFlow's motif scaffolding, Yim et al. 2024).

* Exact oracle: on the finite data set of test_replacement.py (4 chains of 3 residues, point 1 sharing point 0's motif
  = residues 0, 1; exact law given the motif (1/3, 2/3, 0, 0)) the amortised sampler with the exact *conditional*
  posterior in the motif-centroid frame (GM Prop. 1, 4) draws that law; the unconditional posterior, or the
  conditional one on chains left centred on their whole CA centroid, miss it by far.
* Network: the zero motif input changes no prediction, the trunk holds motif frames, MultiFlow's names plus two,
  gradients; interpolant: motif masks, motif examples, nothing changed at motif_prob 0; trainer; sampler.
"""

from __future__ import annotations

import importlib.util
import json
import math
import warnings
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from torch import Tensor

from manifolds import so3
from pipeline.common.model_file import load_model_file
from pipeline.proteins.conditioning import Conditioning
from pipeline.proteins.flow import ProteinFlow, ProteinState
from pipeline.proteins.network import CONFIGS, ProteinNetwork
from pipeline.proteins.network.checkpoint import load_protein_model, load_protein_network
from pipeline.proteins.replacement import MotifCondition
from pipeline.proteins.sampler import NetworkPredictor, SamplerConfig, initial_state, integrate, sample_proteins
from pipeline.proteins.train.interpolant import (Interpolant, InterpolantConfig, NoisyProteins, ProteinTarget,
                                                sample_motif_masks, sample_times)
from pipeline.proteins.train.trainer import train_proteins
from structures.errors import InputError
from structures.proteins.residue_constants import MASK_INDEX


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"protein_{name}_amortised", Path(__file__).with_name(f"{name}.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    return mod


REPL = _load("test_replacement")  # _motif_data, _motif_cond, _real_motif, MOTIF, TARGET
COND, ORACLE = REPL.COND, REPL.ORACLE  # _outcomes / _tv; the product oracle of test_sampler.py
TRAIN = _load("test_train")  # tiny_config, TINY
N, N_WRONG, STEPS = 2000, 500, 51
T_FIRST = 1e-6  # the oracle's first look (t = 0+: revealed tokens have density 0 at t = 0 on the mask path)


# ------------------------------------------------------------------------------------------------ exact oracle

def motif_frame(data: tuple[Tensor, Tensor, Tensor], motif: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """The data with every chain translated so that its motif's CA centroid is the origin (the training and sampling
    convention of the amortised method): trans [M, N, 3] -> trans - mean_{i in motif} trans_i."""
    trans, rots, seq = data
    return trans - trans[:, motif].mean(1, keepdim=True), rots, seq


def motif_matches(data: tuple[Tensor, Tensor, Tensor], cond: MotifCondition, tol: float = 1e-9) -> Tensor:
    """[M] bool: data point m's motif frames (in the motif-centroid frame) equal the given motif's (first chain)."""
    m = cond.mask[0]
    moved, rots, _ = motif_frame(data, m)
    dt = (moved[:, m] - cond.trans[0, m]).abs().amax((-1, -2))
    dr = (rots[:, m] - cond.rotmats[0, m]).abs().flatten(1).amax(-1)
    return (dt <= tol) & (dr <= tol)


class ConditionalOracle(ORACLE.Oracle):
    """The exact posterior of a finite data set given the state x_t *and* a motif (GM Prop. 1, 4), what a perfectly
    trained amortised network predicts: p(z_m | x_t, motif) = pi_m 1[motif of z_m = motif] prod_{i free} p_t(x^i |
    z_m^i) prod_i p_t(a^i | z_m^i) / Z. Translations p_t(x | z) = N(t z, (1 - t)^2 s^2 I) (the uncentred source of
    the free residues), rotations on the flow's geodesic path, at the free residues; amino acids on the mask path at
    every residue (the motif's are generated too). ``allowed`` [M] bool is the motif indicator (all True: the
    unconditional posterior, a wrong variant); ``free`` [N] bool."""

    def __init__(self, paths, data, rng, prior: Tensor, allowed: Tensor, free: Tensor) -> None:
        super().__init__(paths, data, rng, prior)
        self.log_prior = torch.log(prior) + torch.log(allowed.to(prior.dtype))  # [M], -inf off the motif
        self.free = free

    def posterior(self, state: ProteinState, t: float) -> Tensor:
        t = min(t, 1.0 - 1e-3)  # p_1 is a point mass: the final call looks just before t = 1
        b, m = state.trans.shape[0], self.prior.shape[0]
        parts = []
        for k, (path, x, z) in enumerate(zip(self.paths, state.as_tuple(), self.data)):
            if k < 2:  # structure: the free residues only (the motif is the condition)
                x, z = x[:, self.free], z[:, self.free]
            xe = x.unsqueeze(1).expand((b, m) + x.shape[1:]).reshape((b * m,) + x.shape[1:])
            ze = z.unsqueeze(0).expand((b, m) + z.shape[1:]).reshape((b * m,) + z.shape[1:])
            parts.append(path.log_prob(xe, ze, t).reshape(b, m))
        logp = self.log_prior + sum(parts)
        dead = ~torch.isfinite(logp.amax(1))  # off every support (see Oracle.posterior): by the translations alone
        logp[dead] = (self.log_prior + parts[0])[dead]
        return torch.softmax(logp, dim=1)


def run_amortised(data, n: int, seed: int = 3, conditional: bool = True, moved: bool = True):
    """The amortised sampler (``integrate`` with method "amortised", ``initial_state``'s N(0, s^2 I) free source) with
    the exact posterior of ``data`` in the motif-centroid frame (``moved=False``: as given, each chain centred on its
    whole CA centroid) restricted to the motif's points (``conditional=False``: all points). Returns
    (final state, the data in the motif frame, the conditioning)."""
    flow, paths = ORACLE._oracle_flow("flow", "kinetic_optimal")
    assert float(paths[0].noise_scale) == flow.config.trans_scale  # the oracle's path is the sampler's source
    cond = REPL._motif_cond(data, n, "amortised")
    allowed = motif_matches(data, cond.motif) if conditional else torch.ones(4, dtype=torch.bool)
    config = SamplerConfig(steps=STEPS, flow=flow.config)
    g = torch.Generator().manual_seed(seed)
    state = initial_state(cond, config, g, torch.float64, flow)
    seen = motif_frame(data, REPL.MOTIF) if moved else data
    oracle = ConditionalOracle(paths, seen, g, ORACLE.PRIOR, allowed, ~REPL.MOTIF)
    res = integrate(flow, lambda x, t: oracle(x, max(t, T_FIRST)), state, cond, config, g)
    return res.state, motif_frame(data, REPL.MOTIF), cond


@pytest.mark.usefixtures("float64_one_thread")
def test_amortised_sampler_draws_the_exact_conditional_law():
    """TV to (1/3, 2/3, 0, 0) over which data point (in the motif frame, all components) a sample lands on, 51 time
    points, seed 3 (measured): the exact conditional posterior 0.020 at 2,000 samples (0.006, 0.013 at seeds 4, 5;
    sampling noise ~0.015); wrong, 500 samples: (i) the unconditional posterior with the motif held 0.68 (lands on
    0.10 / 0.22 / no point 0.68: points 2 and 3 are not excluded, and their free residue lands beside the wrong
    motif); (ii) the conditional posterior on chains centred on their whole CA centroid while the sampler holds the
    motif at its own 1.0 (every free residue lands off the motif frame). Not detected here: the free source centred
    as the unconditional prior (0.018; one free residue): initial_state's source is checked on its own below."""
    data = REPL._motif_data()
    assert motif_matches(data, REPL._motif_cond(data, 2).motif).tolist() == [True, True, False, False]
    state, moved, cond = run_amortised(data, N)
    m = REPL.MOTIF
    # the motif is held clean where it is given: its own centroid at the origin, no re-centring of the chain
    assert torch.equal(state.trans[:, m], cond.motif.trans[:, m])
    assert torch.equal(state.rotmats[:, m], cond.motif.rotmats[:, m])
    assert float(state.trans[:, m].mean(1).abs().max()) < 1e-12
    assert float(state.trans.mean(1).norm(dim=-1).min()) > 0.1  # the whole chain is not centred
    tv = COND._tv(state, moved, REPL.TARGET)
    assert tv < 0.04, tv  # measured 0.020
    wrong = run_amortised(data, N_WRONG, conditional=False)[0]
    assert COND._tv(wrong, moved, REPL.TARGET) > 0.5  # measured 0.68
    unmoved = run_amortised(data, N_WRONG, moved=False)[0]
    assert COND._tv(unmoved, moved, REPL.TARGET) > 0.9  # measured 1.0


# ----------------------------------------------------------------------------------------------------- network

def _fixture_motif() -> Tensor:
    """[2, 12] bool: residues 2-5 of chain 0 and 7-9 of chain 1 (the fixture's input)."""
    return (torch.arange(12)[None] >= torch.tensor([[2], [7]])) & (torch.arange(12)[None] < torch.tensor([[6], [10]]))


def _reference_net(fx) -> ProteinNetwork:
    """MultiFlow's small reference network (its weights, float64)."""
    net = ProteinNetwork(fx.config, init=False).to(torch.float64)
    net.load_state_dict(fx.state_dict, strict=True)
    return net


def _outputs(net, inp) -> tuple[Tensor, Tensor, Tensor]:
    with torch.no_grad():
        out = net(inp)
    return out.pred_trans, out.pred_rotmats, out.pred_logits


def test_motif_input_starts_as_the_network_it_came_from_and_holds_motif_frames(multiflow_fixture):
    """MultiFlow's small reference network (float64): ``with_motif_input()`` predicts exactly as the network it came
    from, with and without a motif mask (W_s = W_z = 0 in s0 + W_s mu_i, z0 + W_z mu_i mu_j); the motif residues'
    predicted frames are their input frames (the trunk never updates them); without the mask they move (the check
    can fail)."""
    fx = multiflow_fixture
    net = _reference_net(fx).eval()
    motif_net = net.with_motif_input()
    assert motif_net.cfg.motif_input and not net.cfg.motif_input and motif_net.with_motif_input() is motif_net
    assert not motif_net.training and motif_net.dtype == torch.float64
    plain_inp, mask = fx.input(), _fixture_motif()
    inp = replace(plain_inp, motif_mask=mask)
    for x in (plain_inp, inp):
        assert all(torch.equal(a, b) for a, b in zip(_outputs(net, x), _outputs(motif_net, x)))
    trans, rots, _ = _outputs(motif_net, inp)
    assert float((trans[mask] - inp.trans[mask]).abs().max()) <= 1e-12  # Angstrom -> nm -> Angstrom rounding
    assert float((rots[mask] - inp.rotmats[mask]).abs().max()) <= 1e-12
    free_trans, free_rots, _ = _outputs(motif_net, plain_inp)
    assert float((free_trans[mask] - inp.trans[mask]).abs().min()) > 1e-3
    assert float((free_rots[mask] - inp.rotmats[mask]).abs().amax((-1, -2)).min()) > 1e-3


def test_motif_network_has_multiflows_parameter_names_plus_two(multiflow_fixture):
    """MultiFlow's released key list (tests/fixtures/multiflow): the multiflow config without motif input has exactly
    those names (strict loading: test_model.py); with it, those and the two zero-initialised motif tensors."""
    lines = (multiflow_fixture.folder / "released_state_dict_keys.tsv").read_text().splitlines()
    released = {line.split("\t")[0][len("model."):] for line in filter(None, lines)}
    cfg = CONFIGS["multiflow"]
    assert not cfg.motif_input and set(ProteinNetwork(cfg, init=False).state_dict()) == released
    state = ProteinNetwork(replace(cfg, motif_input=True), init=True).state_dict()
    extra = {"motif_node_embedding.weight": (cfg.node_embed_size, 1),
             "motif_edge_embedding.weight": (cfg.edge_embed_size, 1)}
    assert set(state) == released | set(extra)
    assert all(tuple(state[k].shape) == shape and not bool(state[k].any()) for k, shape in extra.items())


def test_zero_initialised_motif_weights_get_a_gradient(multiflow_fixture):
    """A loss on the predictions of a motif network made from MultiFlow's (trained) reference weights, given a motif
    mask, has a nonzero gradient in both motif weights (fine-tuning can learn them; measured max |grad| 0.08 and
    4e-4); without a mask they take no part (no gradient). (A freshly initialised network gives them 0: its output
    layers are zero-initialised as well, so nothing upstream has a gradient before the first step.)"""
    fx = multiflow_fixture
    net = _reference_net(fx).with_motif_input().train()
    for mask in (_fixture_motif(), None):
        net.zero_grad(set_to_none=True)
        out = net(replace(fx.input(), motif_mask=mask))
        loss = out.pred_trans.square().mean() + out.pred_logits.logsumexp(-1).mean() + out.pred_rotmats.sum()
        loss.backward()
        grads = [net.motif_node_embedding.weight.grad, net.motif_edge_embedding.weight.grad]
        if mask is None:
            assert grads == [None, None]
        else:
            assert all(g is not None and bool(torch.isfinite(g).all()) and float(g.abs().max()) > 0 for g in grads)


# ------------------------------------------------------------------------------------------------- interpolant

def _lengths_mask(lengths: Tensor, n: int) -> Tensor:
    return torch.arange(n)[None] < lengths[:, None]  # [B, N] bool


def test_motif_masks_share_size_and_bounds():
    """4,000 chains of 1-64 residues, prob 0.3: the share of chains with a motif is 0.3 (4.5 binomial standard
    errors) among chains of >= 2 residues (shorter ones never get one); a motif is 1-3 segments, at least one residue
    and at most 0.4 L + 1.5 (k segments of round(f L / k), f <= 0.4), never every residue, never padding; the mean
    motif share of chains of >= 40 residues is 0.21 (measured; E f = 0.225, less the overlaps)."""
    g = torch.Generator().manual_seed(0)
    b, n = 4000, 64
    lengths = torch.randint(1, n + 1, (b,), generator=g)
    res_mask = _lengths_mask(lengths, n)
    mask = sample_motif_masks(res_mask, 0.3, g)
    has, size = mask.any(-1), mask.sum(-1)
    ok = lengths >= 2
    assert not bool(has[~ok].any()) and not bool((mask & ~res_mask).any())
    share = float(has[ok].double().mean())
    assert abs(share - 0.3) <= 4.5 * math.sqrt(0.21 / int(ok.sum())), share
    assert bool((size[has] < lengths[has]).all()) and bool((size[has] <= 0.4 * lengths[has] + 1.5).all())
    starts = (mask & ~torch.nn.functional.pad(mask[:, :-1], (1, 0))).sum(-1)  # contiguous runs
    assert int(starts.max()) == 3 and bool((starts[has] >= 1).all())
    long = has & (lengths >= 40)
    mean_share = float((size[long] / lengths[long]).mean())
    assert 0.17 < mean_share < 0.24, mean_share
    assert not bool(sample_motif_masks(res_mask, 0.0, g).any())
    assert bool(sample_motif_masks(res_mask, 1.0, g).any(-1)[ok].all())
    tiny = torch.tensor([2, 3] * 200)
    short = sample_motif_masks(_lengths_mask(tiny, 3), 1.0, g).sum(-1)  # 3 segments on 2-3 residues: never all
    assert bool(((short >= 1) & (short < tiny)).all())


def _synthetic_target(b: int, n: int, seed: int) -> ProteinTarget:
    """Random chains of n // 2 .. n residues (centred CA, Haar frames, amino acids 0-19), padded with 0, I, MASK."""
    g = torch.Generator().manual_seed(seed)
    mask = _lengths_mask(torch.randint(n // 2, n + 1, (b,), generator=g), n)
    m = mask[..., None].float()
    trans = 8.0 * torch.randn(b, n, 3, generator=g) * m
    trans = (trans - (trans * m).sum(1, keepdim=True) / m.sum(1, keepdim=True)) * m
    rots = torch.where(mask[..., None, None], so3.uniform((b, n), rng=g, dtype=torch.float32), torch.eye(3))
    seq = torch.where(mask, torch.randint(0, 20, (b, n), generator=g), MASK_INDEX)
    return ProteinTarget(trans, rots, seq, mask)


def _free_mean_z(noisy: NoisyProteins, motif: Tensor, scale: float) -> Tensor:
    """Per chain and axis: sqrt(F) / s x the mean of x_t over the F free residues ([B, 3]; at t = 0 that is x_0).
    N(0, 1) for the uncentred source N(0, s^2 I); about sqrt(|motif| / L) N(0, 1) for a source centred on the chain."""
    free = (noisy.target.res_mask & ~motif)[..., None].float()
    return (noisy.trans_t * free).sum(1) / free.sum(1).sqrt() / scale


def test_motif_examples_centre_the_motif_hold_it_clean_and_use_an_uncentred_source():
    """motif_prob 1, 200 chains at structure and sequence time 0: the chain moved rigidly so that its motif's CA
    centroid is 0; x_t = x_1 at the motif (frames); amino acids either all revealed at a motif (share 0.5, binomial
    4.5 SE; measured 0.45) or all masked; the free residues' x_0 has std s = 10 (9.87) and per-chain free means of
    z-score std 1 (measured 1.02; MultiFlow's centred OT source, motif_prob 0: 0.48)."""
    target = _synthetic_target(200, 30, 1)
    zero = (torch.zeros(200), torch.zeros(200))
    noisy = Interpolant.build(InterpolantConfig(motif_prob=1.0)).sample(target, torch.Generator().manual_seed(2),
                                                                        times=zero)
    motif = noisy.motif_mask
    assert motif is not None and bool(motif.any(-1).all())
    moved, res = noisy.target, target.res_mask
    w = motif[..., None].float()
    assert float(((moved.trans_1 * w).sum(1) / w.sum(1)).abs().max()) < 1e-5  # motif centroid at the origin
    shift = (target.trans_1 - moved.trans_1)[:, :1]  # one translation per chain, padding kept at 0
    assert float(((target.trans_1 - moved.trans_1 - shift) * res[..., None]).abs().max()) < 1e-4
    assert bool((moved.trans_1[~res] == 0).all()) and bool((noisy.trans_t[~res] == 0).all())
    assert torch.equal(noisy.trans_t[motif], moved.trans_1[motif])
    assert torch.equal(noisy.rotmats_t[motif], moved.rotmats_1[motif])
    shown = (noisy.aatypes_t == moved.aatypes_1) & motif
    revealed = shown.sum(-1) == motif.sum(-1)
    assert bool((revealed | (shown.sum(-1) == 0)).all()) and bool((noisy.aatypes_t[res & ~motif] == MASK_INDEX).all())
    assert abs(float(revealed.double().mean()) - 0.5) <= 4.5 * math.sqrt(0.25 / 200)
    assert abs(float(noisy.trans_t[res & ~motif].std()) - 10.0) < 0.5
    assert abs(float(_free_mean_z(noisy, motif, 10.0).std()) - 1.0) < 0.15
    plain = Interpolant.build(InterpolantConfig()).sample(target, torch.Generator().manual_seed(2), times=zero)
    assert float(_free_mean_z(plain, motif, 10.0).std()) < 0.7  # the centred OT source fails the check


def _before_issue_24(interp: Interpolant, target: ProteinTarget, g: torch.Generator) -> tuple[Tensor, ...]:
    """x_t as MultiFlow's objective draws it (times, coupling, path, padding): the draws before motif examples."""
    mask = target.res_mask
    structure_t, cat_t = sample_times(mask.shape[0], interp.config, g)
    x_t = interp.path.sample_from(interp.coupling(target, g), target.state(), structure_t, cat_t, g)
    return (x_t.trans * mask[..., None], torch.where(mask[..., None, None], x_t.rotmats, torch.eye(3)),
            torch.where(mask, x_t.aatypes, MASK_INDEX), structure_t, cat_t)


def test_motif_prob_zero_and_validation_draw_exactly_as_before():
    """Same generator seed: motif_prob 0, and motif_prob 0.5 with ``motifs=False`` (validation), give MultiFlow's
    draws bit for bit (no motif, no extra random numbers); motif_prob 0.5 with motifs changes them."""
    target = _synthetic_target(8, 20, 3)

    def draws(cfg: InterpolantConfig, **kw) -> tuple[tuple[Tensor, ...], Tensor | None]:
        x = Interpolant.build(cfg).sample(target, torch.Generator().manual_seed(4), **kw)
        return (x.trans_t, x.rotmats_t, x.aatypes_t, x.r3_t, x.cat_t), x.motif_mask

    before = _before_issue_24(Interpolant.build(InterpolantConfig()), target, torch.Generator().manual_seed(4))
    for cfg, kw in ((InterpolantConfig(), {}), (InterpolantConfig(motif_prob=0.0), {}),
                    (InterpolantConfig(motif_prob=0.5), {"motifs": False})):
        got, motif = draws(cfg, **kw)
        assert motif is None and all(torch.equal(a, b) for a, b in zip(got, before, strict=True)), (cfg, kw)
    got, motif = draws(InterpolantConfig(motif_prob=0.5))
    assert motif is not None and bool(motif.any()) and not torch.equal(got[0], before[0])


# ----------------------------------------------------------------------------------------------------- trainer

def test_motif_training_writes_a_motif_network_and_old_runs_keep_their_settings(tmp_path: Path):
    """motif_prob 0 leaves the run folder's settings as before issue 24 (no motif_prob key: older runs resume), and a
    motif run in that folder is refused as another run; a 2-step motif_prob 0.5 run writes a model that
    ``load_protein_network`` reads with ``cfg.motif_input`` (the record keeps motif_prob)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        train_proteins(TRAIN.tiny_config(max_steps=2, val_every=2), tmp_path / "plain", progress=False)
        settings = json.loads((tmp_path / "plain" / "run.json").read_text())["settings"]
        assert "motif_prob" not in settings and "self_condition_prob" in settings
        with pytest.raises(InputError, match="motif_prob"):
            train_proteins(TRAIN.tiny_config(max_steps=2, val_every=2, motif_prob=0.5), tmp_path / "plain",
                           progress=False)
        res = train_proteins(TRAIN.tiny_config(max_steps=2, val_every=2, motif_prob=0.5), tmp_path / "motif",
                             progress=False)
    assert json.loads((tmp_path / "motif" / "run.json").read_text())["settings"]["motif_prob"] == 0.5
    assert res.record["training"]["step"] == 2
    net = load_protein_network(res.model_path)
    assert net.cfg.motif_input and net.cfg == replace(TRAIN.TINY, motif_input=True)
    rec = load_model_file(res.model_path).record
    assert rec["training"]["motif_prob"] == 0.5 and rec["flow"]["interpolant"]["motif_prob"] == 0.5
    assert not load_protein_network(tmp_path / "plain" / "model.safetensors").cfg.motif_input


# ----------------------------------------------------------------------------------------------------- sampler

def _amortised(motif: MotifCondition, b: int) -> Conditioning:
    """``motif`` (one chain) repeated b times, method "amortised"."""
    rep = MotifCondition(motif.trans.expand(b, -1, -1).clone(), motif.rotmats.expand(b, -1, -1, -1).clone(),
                         motif.mask.expand(b, -1).clone(), "amortised")
    return Conditioning(torch.ones(b, motif.mask.shape[1], dtype=torch.bool), motif=rep)


def test_amortised_source_is_uncentred_and_the_network_is_told_the_motif():
    """``initial_state``: translations N(0, s^2 I) (std 10; the chain's mean x sqrt(L) / s has std 1, where the
    centred prior of replacement gives 0); ``NetworkPredictor`` passes the motif mask for "amortised" only."""
    _, motif, _ = REPL._real_motif(length=33)  # a 10-residue motif in 33
    config = SamplerConfig(steps=4)
    for method, want in (("amortised", 1.0), ("replacement", 0.0)):
        cond = _amortised(motif, 1000)
        cond.motif.method = method
        x = initial_state(cond, config, torch.Generator().manual_seed(0), torch.float32)
        z = x.trans.sum(1) / math.sqrt(33) / config.flow.trans_scale  # [B, 3]
        assert abs(float(z.std()) - want) < 0.1, (method, float(z.std()))
    assert abs(float(x.trans.std()) - 10.0) < 0.3
    net = ProteinNetwork(TRAIN.TINY).with_motif_input().eval()
    flow = ProteinFlow.build(config.flow)
    for method in ("amortised", "replacement"):
        cond = _amortised(motif, 2)
        cond.motif.method = method
        predictor = NetworkPredictor(net, cond, config, flow, keep_history=True)
        predictor(initial_state(cond, config, torch.Generator().manual_seed(0), torch.float32), 0.5)
        told = predictor.history[0][0].motif_mask
        assert (torch.equal(told, cond.motif.mask) if method == "amortised" else told is None), method


def test_amortised_needs_a_motif_network_and_keeps_a_real_motif_where_it_is_given():
    """Without a motif input: InputError naming the fix. ``protein_small`` (shipped with a trained motif input since
    its re-ship; ``with_motif_input`` is then itself), a real 10-residue motif at residues 10-19 of 40, 8 steps of
    co-design: finite, the motif frames exactly the given ones (its CA centroid at the origin; the chain is not
    re-centred around it)."""
    _, motif, _ = REPL._real_motif()
    cond, config = _amortised(motif, 2), SamplerConfig(steps=8)
    with pytest.raises(InputError, match="motif-prob.*method 'replacement'"):
        sample_proteins(ProteinNetwork(TRAIN.TINY).eval(), cond, config, torch.Generator().manual_seed(0))
    net = load_protein_model("protein_small", "cpu").net.with_motif_input().eval()
    res = sample_proteins(net, cond, config, torch.Generator().manual_seed(0))
    m = cond.motif.mask
    assert all(bool(torch.isfinite(x).all()) for x in (res.state.trans, res.state.rotmats))
    assert torch.equal(res.state.trans[m], cond.motif.trans[m])
    assert torch.equal(res.state.rotmats[m], cond.motif.rotmats[m])
    assert float(res.state.trans[:, 10:20].mean(1).abs().max()) < 1e-5
    assert float(res.state.trans.mean(1).norm(dim=-1).min()) > 0.1  # no re-centring of the chain
    assert bool((res.state.aatypes < 20).all())
