"""CrystalConditions without sampling: formulas, element sets, seeds, the checks made when conditions are made and
those against a model (every failure an InputError naming the field), records and labels, atom counts."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from pipeline.crystals.conditions import CrystalConditions
from pipeline.crystals.formulas import (element_z, formula_atom_counts, model_elements, parse_elements, parse_formula,
                                        read_formulas)
from pipeline.crystals.generate import CrystalGenerateConfig, atom_counts, load_model
from pipeline.crystals.targets import PropertyTarget
from structures.crystals.tokens import ELEMENT_OFFSET, encode_batch
from structures.errors import InputError


@pytest.fixture(scope="module")
def perov() -> object:
    return load_model("perov_5")


@pytest.fixture(scope="module")
def carbon() -> object:
    return load_model("carbon_24")


@pytest.fixture(scope="module")
def seed():
    from structures.data import load_crystals

    return load_crystals("perov_5", "test", limit=1).structures[0]


# ------------------------------------------------------------------------------------------------ formulas

@pytest.mark.parametrize("text, counts, reduced", [
    ("BaTiO3", {56: 1, 22: 1, 8: 3}, True), ("Ba2Ti2O6", {56: 2, 22: 2, 8: 6}, False), ("C", {6: 1}, True),
    ("C10", {6: 10}, False), ("Ba(TiO3)2", {56: 1, 22: 2, 8: 6}, True), (" Ba Ti O3 ", {56: 1, 22: 1, 8: 3}, True)])
def test_parse_formula(text: str, counts: dict[int, int], reduced: bool) -> None:
    f = parse_formula(text, "f")
    assert dict(f.counts) == counts and f.is_reduced == reduced
    assert f.num_atoms == sum(counts.values())


@pytest.mark.parametrize("text, says", [("Xx2", "not an element symbol"), ("D2O", "not an element symbol"),
                                        ("BaTiO3.5", "integer counts"), ("Am2O3", "beyond Pu"),
                                        ("", "not a chemical formula"), ("C0", "count of 0"),
                                        ("Ba(TiO3", "not a chemical formula"), ("bato3", "not a chemical formula"),
                                        (5, "must be a chemical formula")])
def test_bad_formulas_name_the_field(text: object, says: str) -> None:
    with pytest.raises(InputError, match=r"^CrystalConditions\.formula") as err:
        CrystalConditions(formula=text)
    assert says in str(err.value)


def test_element_tokens_are_sorted_by_z() -> None:
    f = parse_formula("BaTiO3", "f")
    assert (f.element_tokens(10) - ELEMENT_OFFSET + 1).tolist() == [8] * 6 + [22] * 2 + [56] * 2
    with pytest.raises(ValueError):
        f.element_tokens(7)


def test_formula_atom_counts() -> None:
    rng = np.random.default_rng(0)
    p = np.zeros(25)
    p[[6, 8, 10, 12, 14]] = [0.3, 0.3, 0.2, 0.1, 0.1]
    reduced, whole = parse_formula("AlN2", "f"), parse_formula("C8", "f")  # 3 atoms per unit; 8 atoms
    drawn = formula_atom_counts(reduced, None, p, 200, rng, "f")
    assert set(drawn.tolist()) == {6, 12}  # the multiples of 3 that the distribution knows, both drawn
    assert (formula_atom_counts(reduced, 2, p, 3, rng, "f") == 6).all()
    assert (formula_atom_counts(whole, None, p, 3, rng, "f") == 8).all()  # not reduced: the whole cell
    assert (formula_atom_counts(whole, 3, p, 3, rng, "f") == 3).all()  # z reduced units of C
    with pytest.raises(InputError, match="knows crystals of 6, 8, 10, 12, 14 atoms, none a multiple of the 9"):
        formula_atom_counts(parse_formula("Ba3TiO5", "f"), None, p, 1, rng, "CrystalConditions.formula")


def test_elements_parse_and_order() -> None:
    assert parse_elements("Ba, Sr,Ti,O,Ba", "e") == ("O", "Ti", "Sr", "Ba")
    assert parse_elements(["Ti", "O"], "e") == ("O", "Ti")
    for bad in ("", "Ba,Qq", 3):
        with pytest.raises(InputError, match="^e"):
            parse_elements(bad, "e")


def test_read_formulas(tmp_path: Path) -> None:
    f = tmp_path / "f.txt"
    f.write_text("# CSP targets\nBaTiO3\n\n  SrTiO3   # a comment\nC8\n")
    assert read_formulas(f, "--formulas") == ["BaTiO3", "SrTiO3", "C8"]
    f.write_text("BaTiO3\nXx\n")
    with pytest.raises(InputError, match=r"--formulas .*f\.txt:2: 'Xx' is not an element symbol"):
        read_formulas(f, "--formulas")
    f.write_text("# nothing\n\n")
    with pytest.raises(InputError, match="holds no formula"):
        read_formulas(f, "--formulas")
    with pytest.raises(InputError, match="not found"):
        read_formulas(tmp_path / "none.txt", "--formulas")


# ---------------------------------------------------------------------------------------- made conditions

@pytest.mark.parametrize("fields, field, says", [
    (dict(z=2), "z", "need a formula"),
    (dict(formula="BaTiO3", z=0), "z", ">= 1"),
    (dict(elements="Ba,Ti", required="O"), "required", "not among the allowed elements"),
    (dict(formula="BaTiO3", elements="Ba,Ti"), "elements", "has O"),
    (dict(formula="BaTiO3", required="Sr"), "required", "not in the formula"),
    (dict(required=[f"{s}" for s in "H He Li Be B C N O F Ne Na".split()]), "required", "at most 10"),
    (dict(start_time=0.5), "start_time", "needs a seed"),
    (dict(fix_lattice=True), "fix_lattice", "needs a seed"),
    (dict(fix_sites=(0,)), "fix_sites", "needs a seed"),
    (dict(fix_lattice=1), "fix_lattice", "True or False"),
    (dict(fix_sites="0,1"), "fix_sites", "list of site indices"),
    (dict(fix_sites=(1, 1)), "fix_sites", "repeated"),
    (dict(fix_sites=(-1,)), "fix_sites[0]", ">= 0"),
    (dict(start_time=1.0), "start_time", "(0, 1)"),
    (dict(start_time=0.0), "start_time", "> 0.0"),
    (dict(start_time=math.nan), "start_time", "finite"),
    (dict(targets=("heat_ref<=1",)), "targets", "needs a predictor"),
    (dict(targets=("heat_ref<<1",), predictor="p"), "targets", "expected NAME<=V"),
    (dict(targets=("dir_gap in [3,1]",), predictor="p"), "targets", "empty range"),
    (dict(targets=(3,), predictor="p"), "targets", "expected a string"),
    (dict(predictor="p"), "predictor", "give targets too"),
    (dict(targets=("heat_ref<=1",), predictor="p", guidance=0), "guidance", "> 0"),
    (dict(targets=("heat_ref<=1",), predictor="p", guidance_method="second"), "guidance_method", "first_order"),
])
def test_bad_conditions_name_the_field(fields: dict, field: str, says: str) -> None:
    with pytest.raises(InputError) as err:
        CrystalConditions(**fields)
    assert str(err.value).startswith(f"CrystalConditions.{field}") and says in str(err.value), str(err.value)


@pytest.mark.parametrize("fields, field, says", [
    (dict(formula="BaTiO3", start_time=0.5), "seed", "not both"),
    (dict(), "seed", "say what to keep"),
    (dict(fix_sites=(5,)), "fix_sites", "site 5 does not exist; the seed has 5 sites"),
    (dict(fix_sites=(0,), elements="O,N"), "fix_sites", "not among the allowed elements"),
])
def test_bad_seed_conditions(seed, fields: dict, field: str, says: str) -> None:
    with pytest.raises(InputError) as err:
        CrystalConditions(seed=seed, **fields)
    assert str(err.value).startswith(f"CrystalConditions.{field}") and says in str(err.value), str(err.value)


def test_bad_seeds(tmp_path: Path) -> None:
    from pymatgen.core import Lattice, Structure

    with pytest.raises(InputError, match="CrystalConditions.seed: input not found"):
        CrystalConditions(seed=tmp_path / "none.cif", start_time=0.5)
    (tmp_path / "bad.cif").write_text("not a CIF\n")
    with pytest.raises(InputError, match="CrystalConditions.seed: .*bad.cif"):
        CrystalConditions(seed=tmp_path / "bad.cif", start_time=0.5)
    long = Structure(Lattice.tetragonal(3.0, 60.0), ["Ti"], [[0, 0, 0]])  # c beyond the 49.9 A length tokens
    with pytest.raises(InputError, match="CrystalConditions.seed: .*49.9"):
        CrystalConditions(seed=long, fix_lattice=True)
    with pytest.raises(InputError, match="CrystalConditions.seed must be a pymatgen Structure"):
        CrystalConditions(seed=3, fix_lattice=True)


def test_fix_sites_count_in_the_order_the_sites_are_given(seed, tmp_path: Path) -> None:
    """Site i of the seed as given (file order, not the canonical order of the tokens) is the one kept."""
    from pymatgen.core import Structure

    shuffled = Structure.from_sites([seed[i] for i in (3, 0, 4, 2, 1)])  # canonical order differs from this one
    cif = tmp_path / "seed.cif"
    shuffled.to(filename=str(cif))
    read_back = Structure.from_file(str(cif))
    for value in (shuffled, cif):
        c = CrystalConditions(seed=value, fix_sites=(0, 1, 2, 3, 4))
        tokens = c._seed.tokens
        assert tokens.tolist() == encode_batch([seed]).tokens[0].tolist()  # the same crystal, the same tokens
        for i, site in enumerate(read_back if value is cif else shuffled):
            assert tokens[6 + 4 * c._seed.slots[i]] == ELEMENT_OFFSET + site.specie.Z - 1
        assert sorted(c._seed.slots) == [0, 1, 2, 3, 4] and list(c._seed.slots) != [0, 1, 2, 3, 4]


def test_record_and_label(seed) -> None:
    c = CrystalConditions(formula="BaTiO3", z=1, elements="Ba,Sr,Ti,O", required="Ti")
    assert c.label() == "BaTiO3 z=1 elements=O,Ti,Sr,Ba require=Ti" and not c.guided  # the formula fixes Ti
    assert c.record() == {"formula": "BaTiO3", "z": 1, "elements": ["O", "Ti", "Sr", "Ba"], "required": ["Ti"]}
    g = CrystalConditions(targets=("heat_ref<=-1.5", PropertyTarget("dir_gap", 1, 3)), predictor="p", guidance=2)
    assert g.label() == "target=heat_ref<=-1.5;dir_gap in [1,3] guidance=2" and g.guided
    assert g.record()["targets"] == [{"name": "heat_ref", "low": None, "high": -1.5},
                                     {"name": "dir_gap", "low": 1.0, "high": 3.0}]
    s = CrystalConditions(seed=seed, start_time=0.5, fix_lattice=True, fix_sites=(2, 0))
    assert s.label() == "seed=TiOsNOF t0=0.5 fix_lattice fix_sites=0,2"
    rec = json.loads(json.dumps(s.record()))
    assert rec["seed"]["tokens"] == encode_batch([seed]).tokens[0].tolist() and rec["fix_sites"] == [0, 2]
    assert CrystalConditions().label() == "unconditional" and CrystalConditions().record() == {}
    assert replace(c, z=2).record()["z"] == 2  # a replaced copy is validated again


# ------------------------------------------------------------------------------------------- model checks

def test_model_elements(perov, carbon) -> None:
    known = model_elements(perov)
    assert {8, 22, 56} <= known and 6 not in known and len(known) == 56
    assert model_elements(carbon) == frozenset({6})
    other = replace(perov, record={**perov.record, "dataset": {**perov.record["dataset"], "elements": ["C", "O"]}})
    assert model_elements(other) == frozenset({6, 8})  # the record's own list wins
    mine = replace(perov, record={**perov.record, "dataset": {"name": "my_csv", "split": None}})
    assert model_elements(mine) is None  # unknown: no element check


@pytest.mark.parametrize("model, fields, says", [
    ("perov", dict(formula="C8"), "CrystalConditions.formula: C8: the model (perov_5) was never trained on C"),
    ("perov", dict(elements="Ba,Ti,C"), "CrystalConditions.elements: the model (perov_5) was never trained on C"),
    ("perov", dict(required="C"), "CrystalConditions.required: the model (perov_5) was never trained on C"),
    ("perov", dict(formula="Ba5Ti5O15"), "Ba5Ti5O15: 25 atoms, more than the 20 this model holds"),
    ("perov", dict(formula="BaTiO3", z=5), "BaTiO3: 25 atoms, more than the 20"),
    ("perov", dict(formula="Ba2TiO4"), "the model knows crystals of 5 atoms, none a multiple of the 7 atoms"),
    ("carbon", dict(formula="C30"), "C30: 30 atoms, more than the 24"),
    ("carbon", dict(formula="C", required="C"), None),  # the formula fixes C: no guidance needed
    ("carbon", dict(required="C"), "CrystalConditions.required: guidance needs the closed-form marginal rates"),
    ("carbon", dict(seed="perov", start_time=0.5), "CrystalConditions.seed: the model (carbon_24) was never trained"),
])
def test_conditions_the_model_cannot_meet(request, seed, model: str, fields: dict, says: str | None) -> None:
    if fields.get("seed") == "perov":
        fields = {**fields, "seed": seed}
    c = CrystalConditions(**fields)
    if says is None:
        c.check_model(request.getfixturevalue(model))
        return
    with pytest.raises(InputError) as err:
        c.check_model(request.getfixturevalue(model))
    assert says in str(err.value), str(err.value)


def test_generate_config_takes_conditions(perov) -> None:
    c = CrystalConditions(formula="BaTiO3")
    cfg = CrystalGenerateConfig(n=3, conditions=c)
    assert cfg.conditions == (c,) and cfg.total == 3
    assert cfg.run_settings(perov)["conditions"] == [c.record()]
    assert "conditions" not in CrystalGenerateConfig(n=3).run_settings(perov)  # unconditional runs: as before
    two = CrystalGenerateConfig(n=2, conditions=[c, CrystalConditions(elements="Ba,O")])
    assert two.total == 4 and [x.label() if x else None for x in two.per_sample_conditions()] == \
        ["BaTiO3", "BaTiO3", "elements=O,Ba", "elements=O,Ba"]
    for bad, says in (([], " must be a CrystalConditions or a non-empty list"), ("BaTiO3", " must be a "),
                      ([c, "x"], "[1] must be a CrystalConditions")):
        with pytest.raises(InputError) as err:
            CrystalGenerateConfig(conditions=bad)
        assert str(err.value).startswith("CrystalGenerateConfig.conditions" + says), str(err.value)
    with pytest.raises(InputError, match="CrystalGenerateConfig.corrector: guidance"):
        CrystalGenerateConfig(corrector=1.0, conditions=CrystalConditions(required="Ti"))


def test_atom_counts_of_conditions(perov, carbon) -> None:
    cfg = CrystalGenerateConfig(n=4, conditions=[CrystalConditions(formula="BaTiO3"),
                                                 CrystalConditions(formula="Ba2Ti2O6"),
                                                 CrystalConditions(elements="Ba,Ti,O")], num_atoms=None)
    assert atom_counts(cfg, perov).tolist() == [5] * 4 + [10] * 4 + [5] * 4
    counts = atom_counts(CrystalGenerateConfig(n=50, model="carbon_24", conditions=CrystalConditions(formula="C2")),
                         carbon)  # C2 is not reduced: 2 atoms
    assert (counts == 2).all()
    counts = atom_counts(CrystalGenerateConfig(n=200, conditions=CrystalConditions(formula="C")), carbon)
    assert set(counts.tolist()) == {a for a, p in enumerate(carbon.atom_count_distribution) if p > 0}
    with pytest.raises(InputError, match="num_atoms: the conditions set the atom count"):
        atom_counts(CrystalGenerateConfig(n=2, num_atoms=5, conditions=CrystalConditions(formula="BaTiO3")), perov)
    with pytest.raises(InputError, match="3 required elements in crystals of 2 atoms"):
        atom_counts(CrystalGenerateConfig(n=2, num_atoms=2, conditions=CrystalConditions(required="Ba,Ti,O")),
                    perov)
    mixed = CrystalGenerateConfig(n=2, num_atoms=(4, 5), conditions=[CrystalConditions(elements="Ba,O")] * 2)
    assert atom_counts(mixed, perov).tolist() == [4, 5, 4, 5]  # n counts, for each condition


def test_a_trained_model_records_its_elements(tiny_model_file: Path) -> None:
    """``train crystals`` writes ``dataset.elements``: what conditions are checked against for a model of one's own."""
    from pipeline.crystals.flow import load_crystal_model
    from structures.data import load_crystals

    model = load_crystal_model(tiny_model_file)
    symbols = model.record["dataset"]["elements"]
    trained_on = load_crystals("perov_5", "val", limit=64).structures  # the tiny model's training rows
    assert set(symbols) == {el.symbol for s in trained_on for el in s.composition.elements}
    assert model_elements(model) == frozenset(element_z(s, "x") for s in symbols)
    with pytest.raises(InputError, match="was never trained on C"):
        CrystalConditions(formula="C8").check_model(model)
