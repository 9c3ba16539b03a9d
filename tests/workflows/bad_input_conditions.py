"""The bad-input cases of conditioned crystal generation (issue 23): every option of ``generate crystals``'
conditions (formula, formulas file, elements, required elements, seed structure, start time, fixed lattice and
sites, targets, predictor, guidance), each refused with exit 2 before anything is written. The cases join
``ERRORS`` of ``test_bad_input_crystals.py`` and run with its corpus and contract (``bad_input_corpus.py``)."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from bad_input_corpus import GEN, C, Case, Corpus

E = "{OUT}"


def text_file(name: str, text: str) -> Callable[[Corpus, Path], None]:
    def prepare(c: Corpus, tmp: Path) -> None:
        (tmp / name).write_text(text)

    return prepare


def big_seed(c: Corpus, tmp: Path) -> None:
    """A 40-atom seed (a 2x2x2 supercell of a Perov-5 crystal): more atoms than the perov_5 model holds."""
    from pymatgen.core import Structure

    Structure.from_file(str(c["good"] / "g0.cif")).make_supercell(2).to(filename=str(tmp / "big.cif"))


def predictor_for(dataset: str) -> Callable[[Corpus, Path], None]:
    """An (untrained) heat_ref predictor model file whose record names ``dataset``: ``{tmp}/p.safetensors``."""

    def prepare(c: Corpus, tmp: Path) -> None:
        from pipeline.common.model_file import ModelFile, save_model_file
        from pipeline.crystals.predictor.network import CrystalPredictor, PredictorNetConfig

        cfg = PredictorNetConfig(n_properties=1, hidden=16, blocks=1)
        record = {"kind": "crystal_predictor", "properties": ["heat_ref"], "network": cfg.to_dict(),
                  "flow": {"scheduler": "kinetic_optimal"}, "max_atoms": 20, "dataset": {"name": dataset}}
        save_model_file(tmp / "p.safetensors", ModelFile(CrystalPredictor(cfg).state_dict(), record))

    return prepare


SEED = ["--seed-structure", "{good}/g0.cif"]
TARGET = ["--target", "heat_ref<=0"]
CONDITION_ERRORS: dict[str, Case] = {  # name -> case
    "gen-formula-unknown-element": C("generate", "crystals", *GEN, "--formula", "Xx2", "--out", E,
                                     text="'Xx' is not an element symbol"),
    "gen-formula-not-integer": C("generate", "crystals", *GEN, "--formula", "BaTiO3.5", "--out", E,
                                 text="integer counts"),
    "gen-formula-unseen-element": C("generate", "crystals", *GEN, "--formula", "C8", "--out", E,
                                    text="C8: the model (perov_5) was never trained on C"),
    "gen-formula-too-many-atoms": C("generate", "crystals", *GEN, "--formula", "Ba5Ti5O15", "--out", E,
                                    text="25 atoms, more than the 20 this model holds"),
    "gen-formula-z-too-many-atoms": C("generate", "crystals", *GEN, "--formula", "BaTiO3", "--z", "5", "--out", E,
                                      text="25 atoms, more than the 20"),
    "gen-formula-no-multiple": C("generate", "crystals", *GEN, "--formula", "Ba2TiO4", "--out", E,
                                 text="knows crystals of 5 atoms, none a multiple of the 7 atoms"),
    "gen-z-0": C("generate", "crystals", *GEN, "--formula", "BaTiO3", "--z", "0", "--out", E, text="--z"),
    "gen-z-without-formula": C("generate", "crystals", *GEN, "--z", "2", "--out", E, text="need a formula"),
    "gen-formula-and-formulas": C("generate", "crystals", *GEN, "--formula", "BaTiO3", "--formulas", "{tmp}/f.txt",
                                  "--out", E, text="--formula or --formulas, not both",
                                  prepare=text_file("f.txt", "BaTiO3\n")),
    "gen-formulas-missing": C("generate", "crystals", *GEN, "--formulas", "{root}/none.txt", "--out", E,
                              text="none.txt not found"),
    "gen-formulas-empty": C("generate", "crystals", *GEN, "--formulas", "{tmp}/f.txt", "--out", E,
                            text="holds no formula", prepare=text_file("f.txt", "# nothing here\n\n")),
    "gen-formulas-bad-line": C("generate", "crystals", *GEN, "--formulas", "{tmp}/f.txt", "--out", E,
                               text="f.txt:3: 'Xx' is not an element symbol",
                               prepare=text_file("f.txt", "BaTiO3\n# a comment\nXx\n")),
    "gen-formulas-unseen-element": C("generate", "crystals", *GEN, "--formulas", "{tmp}/f.txt", "--out", E,
                                     text="C8: the model (perov_5) was never trained on C",
                                     prepare=text_file("f.txt", "BaTiO3\nC8\n")),
    "gen-elements-unknown": C("generate", "crystals", *GEN, "--elements", "Ba,Qq", "--out", E,
                              text="'Qq' is not an element symbol"),
    "gen-elements-unseen": C("generate", "crystals", *GEN, "--elements", "C,O", "--out", E,
                             text="elements: the model (perov_5) was never trained on C"),
    "gen-require-outside-elements": C("generate", "crystals", *GEN, "--elements", "Ba,O", "--require", "Ti",
                                      "--out", E, text="Ti not among the allowed elements"),
    "gen-require-metric-model": C("generate", "crystals", *GEN, "--model", "carbon_24", "--require", "C", "--out", E,
                                  text="guidance needs the closed-form marginal rates"),
    "gen-require-more-than-atoms": C("generate", "crystals", *GEN, "--num-atoms", "2", "--require", "Ba,Ti,O",
                                     "--out", E, text="3 required elements in crystals of 2 atoms"),
    "gen-start-time-1": C("generate", "crystals", *GEN, *SEED, "--start-time", "1", "--out", E, text="--start-time"),
    "gen-start-time-nan": C("generate", "crystals", *GEN, *SEED, "--start-time", "nan", "--out", E,
                            text="--start-time"),
    "gen-start-time-without-seed": C("generate", "crystals", *GEN, "--start-time", "0.5", "--out", E,
                                     text="start_time needs a seed structure"),
    "gen-fix-lattice-without-seed": C("generate", "crystals", *GEN, "--fix-lattice", "--out", E,
                                      text="fix_lattice needs a seed structure"),
    "gen-fix-sites-negative": C("generate", "crystals", *GEN, *SEED, "--fix-sites", "0,-1", "--out", E,
                                text="--fix-sites"),
    "gen-fix-sites-not-numbers": C("generate", "crystals", *GEN, *SEED, "--fix-sites", "a,b", "--out", E,
                                   text="--fix-sites"),
    "gen-fix-sites-out-of-range": C("generate", "crystals", *GEN, *SEED, "--fix-sites", "0,7", "--out", E,
                                    text="site 7 does not exist; the seed has 5 sites"),
    "gen-seed-missing": C("generate", "crystals", *GEN, "--seed-structure", "{root}/none.cif", "--start-time", "0.5",
                          "--out", E, text="input not found"),
    "gen-seed-unreadable": C("generate", "crystals", *GEN, "--seed-structure", "{bad_ref}/x.cif", "--start-time",
                             "0.5", "--out", E, text="CrystalConditions.seed: "),
    "gen-seed-several": C("generate", "crystals", *GEN, "--seed-structure", "{good}", "--start-time", "0.5", "--out",
                          E, text="holds 3 structures; give one"),
    "gen-seed-too-many-atoms": C("generate", "crystals", *GEN, "--seed-structure", "{tmp}/big.cif", "--fix-lattice",
                                 "--out", E, text="seed: 40 atoms, more than the 20", prepare=big_seed),
    "gen-seed-unseen-element": C("generate", "crystals", *GEN, "--model", "carbon_24", *SEED, "--start-time", "0.5",
                                 "--out", E, text="seed: the model (carbon_24) was never trained on"),
    "gen-seed-and-formula": C("generate", "crystals", *GEN, *SEED, "--formula", "BaTiO3", "--fix-lattice", "--out",
                              E, text="either a seed or a formula, not both"),
    "gen-seed-alone": C("generate", "crystals", *GEN, *SEED, "--out", E, text="say what to keep of it"),
    "gen-seed-num-atoms": C("generate", "crystals", *GEN, *SEED, "--fix-lattice", "--num-atoms", "5", "--out", E,
                            text="leave num_atoms unset"),
    "gen-target-syntax": C("generate", "crystals", *GEN, "--target", "heat_ref<<1", "--out", E, text="--target"),
    "gen-target-empty-range": C("generate", "crystals", *GEN, "--target", "dir_gap in [3,1]", "--out", E,
                                text="empty range"),
    "gen-target-without-predictor": C("generate", "crystals", *GEN, *TARGET, "--out", E, text="needs a predictor"),
    "gen-predictor-without-target": C("generate", "crystals", *GEN, "--predictor", "{tmp}/p.safetensors", "--out",
                                      E, text="give targets too", prepare=predictor_for("perov_5")),
    "gen-predictor-missing": C("generate", "crystals", *GEN, *TARGET, "--predictor", "{root}/none.safetensors",
                               "--out", E, text="is neither a file nor a shipped predictor"),
    "gen-predictor-pickle": C("generate", "crystals", *GEN, *TARGET, "--predictor", "{evil_safetensors}", "--out", E,
                              text="not a genmatch safetensors checkpoint"),
    "gen-predictor-other-dataset": C("generate", "crystals", *GEN, *TARGET, "--predictor", "{tmp}/p.safetensors",
                                     "--out", E, text="was trained on carbon_24, the model on perov_5",
                                     prepare=predictor_for("carbon_24")),
    "gen-predictor-property": C("generate", "crystals", *GEN, "--target", "band_gap<=1", "--predictor",
                                "{tmp}/p.safetensors", "--out", E, text="the predictor has no property 'band_gap'",
                                prepare=predictor_for("perov_5")),
    "gen-guidance-0": C("generate", "crystals", *GEN, "--guidance", "0", "--out", E, text="--guidance"),
    "gen-guidance-without-target": C("generate", "crystals", *GEN, "--guidance", "2", "--out", E,
                                     text="need --target or --require"),
    "gen-guidance-method": C("generate", "crystals", *GEN, "--guidance-method", "second", "--out", E,
                             text="--guidance-method"),
    "gen-guidance-corrector": C("generate", "crystals", *GEN, "--require", "Ti", "--corrector", "1", "--out", E,
                                text="guidance needs the closed-form marginal rates (KO eq. 76)"),
    "gen-into-gen-run-other-conditions": C("generate", "crystals", "--model", "perov_5", *GEN, "--formula",
                                           "BaTiO3", "--out", "{gen_run}", text="with other conditions"),
}
