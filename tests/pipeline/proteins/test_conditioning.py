"""Exact oracles for the protein sampler's per-residue conditioning and refinement (pipeline.proteins.conditioning),
on the finite product data set of test_sampler.py (its exact posterior, GM Prop. 1 and 4), with the KO sampler:

* fixed amino acids (revealed tokens on the mask path): the sampler draws the exact conditional law of the data
  point given them; computing the rates as if they were masked (the tokens merely held) fails;
* allowed sets: on a data set that factorises over structure and positions, restricting the logits at every step
  samples q(x | x in S^N) exactly; restricting only the final (landing) draw fails; with the purity sampler no
  forbidden amino acid appears at any step (nothing is exact there), in co-design and inverse folding;
* refinement from t0: x_t0 ~ p_t0(. | given), then the grid from t0 to 1, draws sum_x p_t0(x | given) p(z | x_t0 = x);
  starting the clock at 0, or noising the seed to another level, fails.

Laws are over which data point a sample lands on (all components, the "other" bucket for none); tolerance TOL in
total variation (sampling noise about 0.015 at these sizes and seeds); the wrong samplers miss by more than 3 TOL.
"""

from __future__ import annotations

import importlib.util
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from manifolds import so3
from manifolds.product import ProductGenerator
from pipeline.proteins.conditioning import Conditioning, refinement_state
from pipeline.proteins.flow import ProteinFlow, ProteinState
from pipeline.proteins.sampler import Prediction, SamplerConfig, initial_state, integrate
from pipeline.proteins.sequence import PuritySequence
from structures.errors import InputError


def _load_sampler_tests():
    """tests/pipeline/proteins/test_sampler.py (its oracle), by path: another test_sampler module exists."""
    spec = importlib.util.spec_from_file_location("protein_sampler_oracle", Path(__file__).with_name("test_sampler.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    return mod


ORACLE = _load_sampler_tests()
TOL, STEPS = 0.04, 51
#: the oracle's first call looks at t = 0+: at t = 0 the mask path gives a revealed token probability 0 under every
#: data point (p_t(a | z) = kappa_t 1[a = z]), so the posterior given revealed tokens is the limit t -> 0+
T_FIRST = 1e-6


pytestmark = pytest.mark.usefixtures("float64_one_thread")  # tests/conftest.py


def _outcomes(state: ProteinState, data, m: int) -> torch.Tensor:
    """Per sample: the data point it landed on in every component (data points may share a structure), or m."""
    near = (state.trans[:, None] - data[0][None]).norm(dim=-1).amax(-1) <= 1e-6  # [B, M]
    angle = so3.rotation_angle_between(data[1][None], state.rotmats[:, None]).amax(-1)  # [B, M]
    hit = near & (angle <= 1e-6) & (state.aatypes[:, None] == data[2][None]).all(-1)  # [B, M]
    return torch.where(hit.any(1), hit.to(torch.uint8).argmax(1), m)


def _tv(state: ProteinState, data, target: torch.Tensor) -> float:
    m = target.shape[0]
    freq = torch.bincount(_outcomes(state, data, m), minlength=m + 1).double() / state.trans.shape[0]
    return 0.5 * float((freq - torch.cat([target, target.new_zeros(1)])).abs().sum())


def _batch(data, k: int, n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Data point k's (trans, rotmats, sequence) repeated n times."""
    return tuple(x[k].expand((n,) + x.shape[1:]).clone() for x in data)  # type: ignore[return-value]


def _run(flow, paths, data, cond, config, seed, prior=None, predict=None, trajectory=False, start=None):
    """The sampler with the oracle (``predict`` wraps it: a wrong variant) from ``initial_state`` under ``start``
    (default ``config``: a refinement noises the seed to its start time)."""
    g = torch.Generator().manual_seed(seed)
    state = initial_state(cond, start or config, g, torch.float64, flow)
    oracle = ORACLE.Oracle(paths, data, g, ORACLE.PRIOR if prior is None else prior)
    oracle = predict(oracle) if predict else oracle
    return integrate(flow, lambda x, t: oracle(x, max(t, T_FIRST)), state, cond, config, g, trajectory)


# --------------------------------------------------------------------------------------- fixed amino acids

def test_fixed_amino_acids_sample_the_exact_conditional_law():
    flow, paths = ORACLE._oracle_flow("flow", "kinetic_optimal")
    data, n = ORACLE._oracle_data(), 2000
    fixed = torch.tensor([[False, True, False]]).expand(n, 3)
    cond = Conditioning(torch.ones(n, 3, dtype=torch.bool), sequence=torch.full((n, 3), 5), fixed_sequence=fixed)
    config = SamplerConfig(steps=STEPS, flow=flow.config)
    # residue 1 is 5 in data points 0, 1, 2 (prior 0.1, 0.2, 0.3), 1 in data point 3
    target = ORACLE.PRIOR * (data[2][:, 1] == 5)
    target = target / target.sum()
    res = _run(flow, paths, data, cond, config, seed=21)
    assert bool((res.state.aatypes[:, 1] == 5).all())
    assert _tv(res.state, data, target) < TOL  # measured 0.0045

    def blind(oracle):  # the rates ignore the revealed token: the posterior of the state with it masked
        return lambda state, t: oracle(replace(state, aatypes=torch.where(fixed, 20, state.aatypes)), t)

    wrong = _run(flow, paths, data, cond, config, seed=21, predict=blind)
    assert _tv(wrong.state, data, target) > 3 * TOL  # measured 0.39


# ------------------------------------------------------------------------------------------- allowed sets

#: a data set that factorises: 2 structures x 3 x 2 x 3 amino acids, independent, with these marginals
STRUCT_P, TOKENS = torch.tensor([0.4, 0.6]), ([0, 3, 7], [5, 1], [9, 12, 2])
TOKEN_P = (torch.tensor([0.2, 0.3, 0.5]), torch.tensor([0.5, 0.5]), torch.tensor([0.3, 0.4, 0.3]))
ALLOWED_TOKENS = ([0, 3], [5], [9, 2])  # 7 forbidden at residue 0, 12 at residue 2; residue 1 fixed to 5


def _product_data():
    trans, rots, _ = ORACLE._oracle_data()
    grid = torch.cartesian_prod(torch.arange(2), *(torch.arange(len(t)) for t in TOKENS))  # [36, 4]
    seq = torch.stack([torch.tensor(t)[grid[:, 1 + i]] for i, t in enumerate(TOKENS)], 1)  # [36, 3]
    prior = STRUCT_P[grid[:, 0]] * torch.stack([p[grid[:, 1 + i]] for i, p in enumerate(TOKEN_P)], 1).prod(1)
    ok = torch.stack([torch.isin(seq[:, i], torch.tensor(a)) for i, a in enumerate(ALLOWED_TOKENS)], 1).all(1)
    return (trans[grid[:, 0]], rots[grid[:, 0]], seq), prior, (prior * ok) / (prior * ok).sum()


def _allowed(n: int) -> torch.Tensor:
    allowed = torch.zeros(1, 3, 20, dtype=torch.bool)
    for i, a in enumerate(ALLOWED_TOKENS):
        allowed[0, i, a] = True
    return allowed.expand(n, 3, 20)


def _allowed_cond(n: int, allowed: bool = True, mode_structure=None) -> Conditioning:
    fixed = torch.tensor([[False, True, False]]).expand(n, 3)
    cond = Conditioning(torch.ones(n, 3, dtype=torch.bool), sequence=torch.full((n, 3), 5), fixed_sequence=fixed,
                        allowed=_allowed(1) if allowed else None)
    if mode_structure is not None:
        cond.trans, cond.rotmats = mode_structure
    return cond


def test_allowed_sets_restrict_the_rates_not_only_the_last_draw():
    """8 outcomes (sampling noise about 0.023 in TV at 2,000 samples): tolerance 0.05; 31 time points (36 data
    points make the oracle 9x dearer than the 4-point one)."""
    flow, paths = ORACLE._oracle_flow("flow", "kinetic_optimal")
    data, prior, target = _product_data()
    n, config = 2000, SamplerConfig(steps=31, flow=flow.config)
    res = _run(flow, paths, data, _allowed_cond(n), config, seed=31, prior=prior)
    assert bool(_allowed(n).gather(-1, res.state.aatypes[..., None]).all())
    assert _tv(res.state, data, target) < 0.05  # measured 0.014 (0.033 with 51 points)

    def final_only(oracle):  # the landing draw restricted; tokens unmasked before it keep their own posterior
        def predict(state, t):
            pred = oracle(state, t)
            if t < 1.0:
                return pred
            keep = _allowed(n_bad) | torch.nn.functional.one_hot(state.aatypes, 21)[..., :20].bool()
            logits = pred.logits.clone()
            logits[..., :20] = logits[..., :20].masked_fill(~keep, float("-inf"))
            return Prediction(pred.trans, pred.rotmats, logits)
        return predict

    n_bad = 500
    got = _run(flow, paths, data, _allowed_cond(n_bad, allowed=False), config, seed=31, prior=prior,
               predict=final_only)
    assert _tv(got.state, data, target) > 0.2  # measured 0.68


@pytest.mark.parametrize("mode", ["codesign", "inverse_folding"])
@pytest.mark.parametrize("kind", ["purity", "ko"])
def test_no_forbidden_amino_acid_at_any_step(mode, kind):
    """Both sequence samplers, co-design and inverse folding: every state of the trajectory keeps the fixed amino acid
    and holds no forbidden one; without the set forbidden ones do appear (the check can fail)."""
    flow, paths = ORACLE._oracle_flow("flow", "kinetic_optimal")
    if kind == "purity":
        trans, rots, _ = flow.generator.components
        flow = ProteinFlow(ProductGenerator((trans, rots, PuritySequence(temperature=1.0, noise=2.0))), flow.config)
    data, prior, _ = _product_data()
    n, config = 200, SamplerConfig(steps=21, flow=flow.config, mode=mode)
    structure = _batch(data, 0, 200)[:2] if mode == "inverse_folding" else None
    seen = {}
    for allowed in (True, False):
        res = _run(flow, paths, data, _allowed_cond(n, allowed, structure), config, seed=41, prior=prior,
                   trajectory=True)
        states = torch.stack([s.aatypes for s in res.trajectory])  # [T + 1, B, 3]
        assert bool((states[:, :, 1] == 5).all())
        ok = _allowed(n).expand(states.shape + (20,)).gather(-1, states.clamp_max(19)[..., None])[..., 0]
        seen[allowed] = bool((ok | (states == 20)).all())
        if mode == "inverse_folding":
            assert torch.equal(res.state.trans, structure[0])
    assert seen == {True: True, False: False}


# --------------------------------------------------------------------------------------------- refinement

def _refinement_target(flow, paths, data, k: int, t0: float, n: int = 20000) -> torch.Tensor:
    """E[p(z_m | x_t0)] over x_t0 ~ p_t0(. | z_k): the exact posterior averaged over exact path draws."""
    g = torch.Generator().manual_seed(1)
    given = ProteinState(*_batch(data, k, n))
    x = refinement_state(flow, given, torch.ones(n, 3, dtype=torch.bool), t0, g)
    return ORACLE.Oracle(paths, data, g).posterior(x, t0).mean(0)


def test_refinement_samples_the_posterior_of_the_noised_seed():
    """Seed = data point 0 at t0 = 0.02: the exp-rate geodesic (kappa = 1 - exp(-10 t)) gives the random rotations
    away fast, so at larger t0 the law is nearly a point mass and every variant would pass; here it is
    (0.45, 0.11, 0.18, 0.27)."""
    flow, paths = ORACLE._oracle_flow("flow", "kinetic_optimal")
    data, n, t0 = ORACLE._oracle_data(), 2000, 0.02
    target = _refinement_target(flow, paths, data, 0, t0)
    assert float(target.max()) < 0.6
    trans, rots, seq = _batch(data, 0, n)
    cond = Conditioning(torch.ones(n, 3, dtype=torch.bool), sequence=seq, trans=trans, rotmats=rots)
    config = SamplerConfig(steps=STEPS, flow=flow.config, start_time=t0)
    assert config.grid()[0] == t0 and len(config.grid()) == 50  # the full run's step size
    res = _run(flow, paths, data, cond, config, seed=2)
    assert _tv(res.state, data, target) < TOL  # measured 0.007
    # the same noised seeds, the clock started at 0 (min_t): the posterior reads x_t0 as a draw of p_0
    clock0 = _run(flow, paths, data, cond, replace(config, start_time=None), seed=2, start=config)
    assert _tv(clock0.state, data, target) > 3 * TOL  # measured 0.26
    # noised to 3 t0 or t0 / 3 while the clock says t0
    for level in (3 * t0, t0 / 3):
        wrong = _run(flow, paths, data, cond, config, seed=2, start=replace(config, start_time=level))
        assert _tv(wrong.state, data, target) > 3 * TOL  # measured 0.16, 0.22


def test_refinement_state_follows_the_path_and_keeps_fixed_residues():
    flow, _ = ORACLE._oracle_flow("flow", "kinetic_optimal")
    data, n = ORACLE._oracle_data(), 4000
    trans, rots, seq = _batch(data, 0, n)
    mask = torch.ones(n, 3, dtype=torch.bool)
    mask[:, 2] = False  # padding
    fixed = torch.tensor([[True, False, False]]).expand(n, 3)
    cond = Conditioning(mask, sequence=seq, trans=trans, rotmats=rots, fixed_sequence=fixed, fixed_structure=fixed)
    config = SamplerConfig(steps=STEPS, flow=flow.config, start_time=0.5)
    x = initial_state(cond, config, torch.Generator().manual_seed(3), torch.float64, flow)
    assert torch.equal(x.trans[:, 0], trans[:, 0]) and torch.equal(x.aatypes[:, 0], seq[:, 0])
    assert bool((x.trans[:, 2] == 0).all()) and bool((x.aatypes[:, 2] == 0).all())
    kappa = float(flow.sequence.path.probs(seq[:1], torch.tensor([0.5]))[0, 1, seq[0, 1]])  # P(revealed at t0)
    assert 0.05 < kappa < 0.95
    revealed = float((x.aatypes[:, 1] == seq[:, 1]).double().mean())
    assert abs(revealed - kappa) < 0.03 and bool(((x.aatypes[:, 1] == seq[:, 1]) | (x.aatypes[:, 1] == 20)).all())
    spread = (x.trans[:, 1] - 0.5 * trans[:, 1]).std(0)  # (1 - t0) x centred noise of 2 residues: 5 / sqrt(2)
    assert bool(((spread - 5.0 / 2 ** 0.5).abs() < 0.2).all())
    cond = Conditioning(mask, sequence=seq, trans=trans, rotmats=rots)  # structure only: the sequence stays masked
    x = initial_state(cond, replace(config, mode="structure"), torch.Generator().manual_seed(3), torch.float64, flow)
    assert bool((x.aatypes[:, :2] == 20).all())


def test_an_allowed_set_of_everything_changes_nothing():
    """The restriction draws no random numbers: allowing all 20 amino acids gives the unconditioned run exactly."""
    flow, paths = ORACLE._oracle_flow("flow", "kinetic_optimal")
    data, n = ORACLE._oracle_data(), 50
    config = SamplerConfig(steps=11, flow=flow.config)
    mask = torch.ones(n, 3, dtype=torch.bool)
    free = _run(flow, paths, data, Conditioning(mask), config, seed=5, trajectory=True)
    every = _run(flow, paths, data, Conditioning(mask, allowed=torch.ones(1, 3, 20, dtype=torch.bool)), config,
                 seed=5, trajectory=True)
    for a, b in zip(free.trajectory, every.trajectory, strict=True):
        assert all(torch.equal(u, v) for u, v in zip(a.as_tuple(), b.as_tuple(), strict=True))


# ------------------------------------------------------------------------------------------------ refusals

def test_impossible_conditions_are_refused():
    n, mask = 2, torch.ones(2, 3, dtype=torch.bool)
    config = SamplerConfig(steps=5)
    fixed = torch.tensor([[True, False, False]] * 2)
    with pytest.raises(InputError, match="needs their amino acids"):
        initial_state(Conditioning(mask, fixed_sequence=fixed), config, None, torch.float32)
    with pytest.raises(InputError, match="needs the structure"):
        initial_state(Conditioning(mask, fixed_structure=fixed), config, None, torch.float32)
    with pytest.raises(InputError, match="refinement needs the structure"):
        initial_state(Conditioning(mask), replace(config, start_time=0.5), None, torch.float32)
    with pytest.raises(InputError, match="outside"):
        initial_state(Conditioning(mask), replace(config, start_time=1.0), None, torch.float32)
    no_c = torch.ones(1, 3, 20, dtype=torch.bool)
    no_c[..., 4] = False  # forbid C (index 4 in ARNDC...)
    seq = torch.full((n, 3), 4)
    with pytest.raises(InputError, match="not in its allowed set"):
        initial_state(Conditioning(mask, sequence=seq, fixed_sequence=fixed, allowed=no_c), config, None, torch.float32)
    with pytest.raises(InputError, match="no allowed amino acid"):
        initial_state(Conditioning(mask, allowed=torch.zeros(1, 3, 20, dtype=torch.bool)), config, None, torch.float32)
    with pytest.raises(InputError, match="20"):
        initial_state(Conditioning(mask, allowed=torch.ones(1, 3, 21, dtype=torch.bool)), config, None, torch.float32)
    with pytest.raises(InputError, match="not one of the 20"):
        initial_state(Conditioning(mask, sequence=torch.full((n, 3), 20), fixed_sequence=fixed), config, None,
                      torch.float32)
    with pytest.raises(InputError, match="bool mask"):
        initial_state(Conditioning(mask, sequence=seq, fixed_sequence=fixed[:, :2]), config, None, torch.float32)
    with pytest.raises(InputError, match="mode 'structure'"):
        initial_state(Conditioning(mask, sequence=seq, fixed_sequence=fixed), replace(config, mode="structure"), None,
                      torch.float32)
