"""Conditioned sampling with the shipped models (few steps, small n): every condition reaches the tokens.

Measured rates (the assertions below leave room): presence guidance for one required element among
Ba,Sr,Ti,Zr,O: 24/24 samples at 12 steps (unguided 3-15 of 24); for two (Ti and Zr): 23-24/24 (unguided 1/24).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.crystals.conditioning import condition_batch, group_samples, refinement_steps
from pipeline.crystals.conditions import CrystalConditions
from pipeline.crystals.generate import CrystalGenerateConfig, generate_crystals, load_model, sample_tokens
from structures.crystals.tokens import ELEMENT_OFFSET, MASK, PAD, decode_batch, encode_batch
from structures.errors import InputError

FAST = CrystalGenerateConfig(steps=12)


@pytest.fixture(scope="module")
def perov() -> object:
    return load_model("perov_5")


@pytest.fixture(scope="module")
def carbon() -> object:
    return load_model("carbon_24")


@pytest.fixture(scope="module")
def perov_seed():
    from pymatgen.core import Structure

    from structures.data import load_crystals

    s = load_crystals("perov_5", "test", limit=2).structures[1]
    return Structure.from_sites([s[i] for i in (4, 1, 3, 0, 2)])  # a site order that is not the canonical one


def draw(model, conditions: list, counts, seed: int = 0, config: CrystalGenerateConfig = FAST) -> torch.Tensor:
    return sample_tokens(model, np.asarray(counts), config, torch.Generator().manual_seed(seed), conditions=conditions)


def z_of(tokens: torch.Tensor) -> list[list[int]]:
    """Atomic numbers of every row's atoms (padding dropped)."""
    return [[int(t) - ELEMENT_OFFSET + 1 for t in row[6::4] if t != PAD] for row in tokens]


def test_formula_fixes_the_composition(perov) -> None:
    conds = [CrystalConditions(formula="BaTiO3"), CrystalConditions(formula="SrTiO3", z=1),
             CrystalConditions(formula="Ba2Ti2O6")]
    res = generate_crystals(CrystalGenerateConfig(n=4, steps=12, conditions=conds), progress=False)
    assert res.summary.n == 12 and res.summary.decoded >= 8
    want = {"BaTiO3": [8, 8, 8, 22, 56], "SrTiO3": [8, 8, 8, 22, 38], "Ba2Ti2O6": [8] * 6 + [22] * 2 + [56] * 2}
    for sid, s in zip(res.ids, res.structures):
        label = conds[int(sid.split("_")[1]) // 4].formula
        assert sorted(site.specie.Z for site in s) == want[label]
    tok = draw(perov, [conds[2]] * 3, [10] * 3)
    assert z_of(tok) == [want["Ba2Ti2O6"]] * 3  # revealed in canonical order, sorted by Z


def test_elements_restrict_every_element_token(perov) -> None:
    allowed = {56, 38, 22, 40, 8}
    tok = draw(perov, [CrystalConditions(elements="Ba,Sr,Ti,Zr,O")] * 16, [5] * 16)
    assert set(sum(z_of(tok), [])) <= allowed
    free = draw(perov, None, [5] * 16)
    assert not set(sum(z_of(free), [])) <= allowed  # without the condition other elements appear


@pytest.mark.parametrize("required, at_least", [("Zr", 1.0), ("Ti,Zr", 0.9)])
def test_required_elements_appear(perov, required: str, at_least: float) -> None:
    els = "Ba,Sr,Ti,Zr,O"
    need = [{"Ti": 22, "Zr": 40}[r] for r in required.split(",")]
    rate = lambda tok: np.mean([all(z in row for z in need) for row in z_of(tok)])  # noqa: E731
    guided = draw(perov, [CrystalConditions(elements=els, required=required)] * 24, [5] * 24)
    plain = draw(perov, [CrystalConditions(elements=els)] * 24, [5] * 24)
    assert set(sum(z_of(guided), [])) <= {56, 38, 22, 40, 8}
    assert rate(guided) >= at_least and rate(plain) <= 0.7


def test_fix_lattice_keeps_the_seed_lattice(perov, perov_seed) -> None:
    c = CrystalConditions(seed=perov_seed, fix_lattice=True)
    tok = draw(perov, [c] * 6, [5] * 6)
    seed_tok = torch.as_tensor(c._seed.tokens)
    assert (tok[:, :6] == seed_tok[:6]).all()
    assert not (tok[:, 6:] == seed_tok[6:]).all(1).any()  # the atoms are generated
    dec, ref = decode_batch(tok), decode_batch(seed_tok[None])
    for i in np.flatnonzero(dec.valid):
        assert np.allclose(dec.structure(i).lattice.parameters, ref.structure(0).lattice.parameters)


def test_fix_sites_keep_the_sites_in_the_order_given(perov, perov_seed) -> None:
    c = CrystalConditions(seed=perov_seed, fix_sites=(0, 2))
    tok = draw(perov, [c] * 8, [5] * 8)
    seed_tok = torch.as_tensor(c._seed.tokens)
    for site in (0, 2):
        slot = c._seed.slots[site]
        atom = tok[:, 6 + 4 * slot: 10 + 4 * slot]  # [8, 4]
        assert (atom == seed_tok[6 + 4 * slot: 10 + 4 * slot]).all()
        assert int(atom[0, 0]) == ELEMENT_OFFSET + perov_seed[site].specie.Z - 1  # site i of the seed as given
    others = [s for s in range(5) if s not in (c._seed.slots[0], c._seed.slots[2])]
    rest = tok[:, 6:].reshape(8, 5, 4)[:, others]
    assert not (rest == seed_tok[6:].reshape(5, 4)[others]).all()


def test_refinement_from_near_one_returns_the_seed(perov, perov_seed) -> None:
    seed_tok = torch.as_tensor(encode_batch([perov_seed]).tokens[0])
    same = {}
    for t0 in (0.99, 0.5):
        tok = draw(perov, [CrystalConditions(seed=perov_seed, start_time=t0)] * 16, [5] * 16)
        same[t0] = (tok == seed_tok).float().mean().item()
    assert same[0.99] >= 0.98 and same[0.5] < same[0.99]  # measured: 1.0 and 0.77 (another seed)
    assert refinement_steps(250, 0.5) == 125 and refinement_steps(12, 0.99) == 1 and refinement_steps(10, 0.3) == 7


def test_refinement_noises_the_seed_on_the_path(perov, perov_seed) -> None:
    c = CrystalConditions(seed=perov_seed, start_time=0.5, elements="O,N,F,Ti,Zr")
    batch = condition_batch(perov, [c] * 64, [5] * 64, torch.Generator().manual_seed(0))
    seed_tok = torch.as_tensor(c._seed.tokens)
    masked = (batch.x_init == MASK).float().mean().item()
    assert 0.3 < masked < 0.7  # kappa_0.5 = sin^2(pi / 4) = 1/2 on the kinetic-optimal schedule
    kept = batch.x_init != MASK
    assert (batch.x_init[kept] == seed_tok.expand(64, -1)[kept]).all()  # the rest is the seed
    el = batch.x_init[:, 6::4]
    assert not ((el == ELEMENT_OFFSET + 76 - 1)).any()  # Os is not allowed: masked again when the draw kept it
    assert batch.t0 == 0.5 and batch.allowed is not None and batch.replace is None


def test_mixed_conditions_in_one_run(perov, perov_seed, tmp_path: Path) -> None:
    conds = [CrystalConditions(formula="BaTiO3"), CrystalConditions(seed=perov_seed, start_time=0.9),
             CrystalConditions(elements="Ba,Ti,O")]
    cfg = CrystalGenerateConfig(n=2, steps=8, batch_size=4, conditions=conds)
    assert [len(g) for g in group_samples(cfg.per_sample_conditions(), [5] * 6)] == [4, 2]  # t0 0 and 0.9
    mem = generate_crystals(cfg, progress=False)
    run = generate_crystals(cfg, tmp_path / "out", progress=False)
    assert [s.as_dict() for s in mem.structures] == [s.as_dict() for s in run.structures]  # the same either way
    import pandas as pd

    table = pd.read_csv(tmp_path / "out" / "manifest.csv")
    assert table["condition"].tolist() == [c.label() for c in conds for _ in range(2)]
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["summary"]["settings"]["conditions"] == [json.loads(json.dumps(c.record())) for c in conds]
    assert [r["condition_index"] for r in manifest["rows"]] == [0, 0, 1, 1, 2, 2]
    before = (tmp_path / "out" / "manifest.csv").read_bytes()
    generate_crystals(cfg, tmp_path / "out", progress=False)  # the same run resumes, unchanged
    assert (tmp_path / "out" / "manifest.csv").read_bytes() == before
    other = CrystalGenerateConfig(n=2, steps=8, batch_size=4, conditions=conds[:2])
    with pytest.raises(InputError, match="run with other .*conditions"):
        generate_crystals(other, tmp_path / "out", progress=False)


def test_carbon_formula_and_sites_through_replacement(carbon) -> None:
    from structures.data import load_crystals

    res = generate_crystals(CrystalGenerateConfig(n=3, steps=12, model="carbon_24",
                                                  conditions=CrystalConditions(formula="C8")), progress=False)
    assert res.summary.decoded == 3
    assert all(len(s) == 8 and s.composition.reduced_formula == "C" for s in res.structures)
    seed = load_crystals("carbon_24", "test", limit=1).structures[0]
    c = CrystalConditions(seed=seed, fix_sites=(0, 1, 2))
    a = len(seed)
    batch = condition_batch(carbon, [c] * 4, [a] * 4, torch.Generator().manual_seed(0))
    slots = [c._seed.slots[i] for i in (0, 1, 2)]
    coords = torch.tensor([6 + 4 * s + k for s in slots for k in (1, 2, 3)])
    assert batch.replace[:, coords].all() and not batch.fixed[:, coords].any()  # metric path: replacement
    assert batch.fixed[:, [6 + 4 * s for s in slots]].all()  # the elements sit on the mask path: fixed
    assert batch.replace.sum() == 4 * 9
    tok = draw(carbon, [c] * 4, [a] * 4)
    seed_tok = torch.as_tensor(c._seed.tokens)
    assert (tok[:, coords] == seed_tok[coords]).all()  # z at t = 1
    assert not (tok[:, 6:] == seed_tok[6:]).all(1).any()


@pytest.fixture(scope="module")
def predictor_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained (random) heat_ref / dir_gap predictor for perov_5: a fixed function of the tokens to guide by."""
    from pipeline.common.model_file import ModelFile, save_model_file
    from pipeline.crystals.predictor.network import CrystalPredictor, PredictorNetConfig

    torch.manual_seed(0)
    cfg = PredictorNetConfig(n_properties=2, hidden=32, blocks=1)
    record = {"kind": "crystal_predictor", "properties": ["heat_ref", "dir_gap"], "network": cfg.to_dict(),
              "flow": {"scheduler": "kinetic_optimal"}, "max_atoms": 20, "dataset": {"name": "perov_5"}}
    path = tmp_path_factory.mktemp("predictor") / "p.safetensors"
    save_model_file(path, ModelFile(CrystalPredictor(cfg).state_dict(), record))
    other = path.with_name("carbon.safetensors")
    save_model_file(other, ModelFile(CrystalPredictor(cfg).state_dict(), {**record, "dataset": {"name": "carbon_24"}}))
    judge = path.with_name("judge.safetensors")
    save_model_file(judge, ModelFile(CrystalPredictor(cfg).state_dict(), {**record, "judge_only": True}))
    return path


def test_predictor_guidance_moves_samples_towards_the_target(perov, predictor_file: Path) -> None:
    """Strong first-order guidance towards heat_ref <= -3 lowers the guiding predictor's own prediction at t = 1
    (measured: mean 0.156 unguided, -0.059 at strength 30; spread between samples 0.05)."""
    from pipeline.crystals.conditions import load_guidance_predictor

    pred = load_guidance_predictor(str(predictor_file))

    def predicted(tok: torch.Tensor) -> float:
        with torch.no_grad():
            return pred.net(tok, torch.ones(len(tok)), tok[:, 6::4] != PAD)[0][:, 0].mean().item()

    c = CrystalConditions(targets=("heat_ref<=-3",), predictor=predictor_file, guidance=30)
    c.check_model(perov)
    assert predicted(draw(perov, [c] * 32, [5] * 32)) < predicted(draw(perov, None, [5] * 32)) - 0.1
    exact = CrystalConditions(formula="BaTiO3", targets=("dir_gap in [1,3]",), predictor=predictor_file,
                              guidance_method="exact")
    tok = draw(perov, [exact] * 2, [5, 5], config=CrystalGenerateConfig(steps=3))
    assert z_of(tok) == [[8, 8, 8, 22, 56]] * 2 and not (tok == MASK).any()


def test_predictor_checks(perov, carbon, predictor_file: Path) -> None:
    for name, says in (("carbon.safetensors", "was trained on carbon_24, the model on perov_5"),
                       ("judge.safetensors", "is a benchmark judge")):
        with pytest.raises(InputError, match=f"CrystalConditions.predictor: .*{says}"):
            CrystalConditions(targets=("heat_ref<=0",), predictor=predictor_file.with_name(name)).check_model(perov)
    with pytest.raises(InputError, match="CrystalConditions.targets: target band_gap<=1: the predictor has no"):
        CrystalConditions(targets=("band_gap<=1",), predictor=predictor_file).check_model(perov)
    with pytest.raises(InputError, match="CrystalConditions.predictor: predictor .* is neither a file"):
        CrystalConditions(targets=("heat_ref<=0",), predictor=predictor_file.with_name("no")).check_model(perov)
    with pytest.raises(InputError, match="CrystalConditions.targets: guidance needs the closed-form"):
        CrystalConditions(targets=("heat_ref<=0",), predictor=predictor_file).check_model(carbon)
