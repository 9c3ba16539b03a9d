"""The crystal half of the Python API (``workflows.crystals``): the README script, every kind of input, the
caller's ids, the config rules (validated once, CLI spellings, unknown fields) and bad arguments."""

from __future__ import annotations

import builtins
import re
import types
import warnings
from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

from helpers import REPO_ROOT, tiny_config
from structures.data import load_crystals
from structures.errors import InputError
from workflows import crystals
from workflows.crystals import (CrystalGenerateConfig, CrystalRelaxConfig, CrystalScoreConfig, CrystalTrainConfig,
                                GeneratedCrystals, RelaxedCrystals, ScoredCrystals, TrainedModel)

torch.set_num_threads(1)  # small structures: more threads only contend on a shared machine


@pytest.fixture(scope="module")
def perov() -> list[Any]:
    return load_crystals("perov_5", "val", limit=4).structures


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cache")


def _script(n: int, steps: int, max_steps: int, cache: Path) -> tuple[GeneratedCrystals, RelaxedCrystals,
                                                                           ScoredCrystals]:
    gen = crystals.generate(n=n, model="perov_5", steps=steps, seed=1, progress=False)
    rel = crystals.relax(gen, max_steps=max_steps, progress=False)
    scores = crystals.score(rel, reference="perov_5:test", reference_limit=30, hull="mp-elements", n_samples=5,
                            cache_dir=cache, progress=False)
    return gen, rel, scores


def _check_chain(gen: GeneratedCrystals, rel: RelaxedCrystals, scores: ScoredCrystals, n: int) -> None:
    assert len(gen.structures) + len(gen.failures) == n and gen.out_dir is None
    assert rel.ids == gen.ids and len(rel.structures) == len(gen.structures)
    assert list(scores.table["id"]) == gen.ids  # the caller's ids, in input order
    s = scores.summary
    assert s.n_input == len(gen.ids) and s.dataset == "perov_5" and s.n_reference == 30
    assert s.n_unusable == int((~rel.relaxed_mask()).sum())
    # the relaxation's CHGNet energies are the ones E_hull is taken from (no second CHGNet pass)
    assert s.stability is not None and s.stability.energy_source == "given"
    ok = scores.table["usable"].to_numpy(dtype=bool)
    np.testing.assert_allclose(scores.table.loc[ok, "energy_per_atom"].to_numpy(dtype=float),
                               rel.energies_per_atom()[ok])


def test_generate_relax_score_in_memory(cache: Path) -> None:
    """The README script with small settings (8 crystals, 10 sampler steps, 3 FIRE steps, 30 references)."""
    gen, rel, scores = _script(8, 10, 3, cache)
    _check_chain(gen, rel, scores, 8)
    assert set(rel.table["status"]) <= {"converged", "step_limit", "failed"} and (rel.table["n_steps"] <= 3).all()


def _readme_crystal_script() -> str:
    text = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    script = next(b for b in blocks if "from workflows import crystals" in b)
    assert 5 <= len(script.strip().splitlines()) <= 10, "the README's crystal script is 5-10 lines"
    return script


@pytest.mark.slow
def test_readme_script_runs(cache: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The README's crystal script, run as written: its calls reach the real verbs, with the settings made small
    (20 sampler steps, at most 50 FIRE steps, the first 100 reference crystals) so that it runs in minutes."""
    calls: list[str] = []

    def small(verb: str, **extra: Any) -> Any:
        def call(*args: Any, **kw: Any) -> Any:
            calls.append(verb)
            kw.update({k: v(kw.get(k)) if callable(v) else v for k, v in extra.items()})
            return getattr(crystals, verb)(*args, progress=False, **kw)
        return call

    shim = types.SimpleNamespace(generate=small("generate", steps=20, seed=1),
                                 relax=small("relax", max_steps=lambda m: min(m or 50, 50)),
                                 score=small("score", reference_limit=100, cache_dir=cache))

    def imports(name: str, *args: Any, **kw: Any) -> Any:
        return types.SimpleNamespace(crystals=shim) if name == "workflows" else builtins.__import__(name, *args, **kw)

    namespace: dict[str, Any] = {"__builtins__": {**vars(builtins), "__import__": imports}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exec(compile(_readme_crystal_script(), "README.md", "exec"), namespace)  # noqa: S102 - our own README
    assert calls == ["generate", "relax", "score"]
    gen, rel, scores = namespace["gen"], namespace["rel"], namespace["scores"]
    assert len(gen.structures) + len(gen.failures) == 50 and rel.ids == gen.ids
    assert list(scores.table["id"]) == gen.ids and scores.summary.n_reference == 100
    assert "cov_recall" in capsys.readouterr().out  # print(scores.summary)


def _frame(scores: ScoredCrystals) -> pd.DataFrame:
    return scores.table.drop(columns=["id", "content_hash"]).reset_index(drop=True)


def test_inputs_as_atoms_dict_and_files_score_like_structures(perov: list[Any], cache: Path,
                                                               tmp_path: Path) -> None:
    from pymatgen.io.ase import AseAtomsAdaptor

    kw: dict[str, Any] = dict(reference="perov_5:test", reference_limit=20, n_samples=3, cache_dir=cache,
                              progress=False)
    base = crystals.score(perov, **kw)
    assert list(base.table["id"]) == [f"s{i:06d}" for i in range(4)]
    atoms = [AseAtomsAdaptor.get_atoms(s) for s in perov]
    as_atoms = crystals.score(atoms, **kw)
    named = {f"x{i}": s for i, s in enumerate(perov)}
    as_dict = crystals.score(named, **kw)
    assert list(as_dict.table["id"]) == list(named)
    mixed = crystals.score({"a": atoms[0], "b": perov[1]}, **kw)
    assert list(mixed.table["id"]) == ["a", "b"]
    folder = tmp_path / "cifs"
    folder.mkdir()
    for i, s in enumerate(perov):
        (folder / f"m{i}.cif").write_text(s.to(fmt="cif"))
    from_files = crystals.score(folder, **kw)
    one_file = crystals.score(folder / "m2.cif", **kw)
    assert list(from_files.table["id"]) == ["m0", "m1", "m2", "m3"] and list(one_file.table["id"]) == ["m2"]
    for other in (as_atoms, as_dict):
        pd.testing.assert_frame_equal(_frame(other), _frame(base))
    # a CIF stores coordinates to a few decimals: the same crystals, fingerprint distances to within rounding
    pd.testing.assert_frame_equal(_frame(from_files), _frame(base), check_exact=False, rtol=1e-4, atol=1e-4)
    assert from_files.summary.cov_recall == base.summary.cov_recall
    assert (as_atoms.summary.cov_precision, as_dict.summary.cov_precision) == (base.summary.cov_precision,) * 2


def test_relax_keeps_ids_and_takes_atoms(perov: list[Any], tmp_path: Path) -> None:
    from pymatgen.io.ase import AseAtomsAdaptor

    named = {"first": perov[0], "second": AseAtomsAdaptor.get_atoms(perov[1])}
    rel = crystals.relax(named, max_steps=0, out_dir=tmp_path / "run", threads=1, progress=False)
    assert rel.ids == ["first", "second"] and list(rel.table["id"]) == ["first", "second"]
    assert sorted(p.name for p in (tmp_path / "run" / "relaxed").iterdir()) == ["first.cif", "second.cif"]
    again = crystals.relax([perov[0], perov[1]], CrystalRelaxConfig(max_steps=0), progress=False)
    np.testing.assert_allclose(again.energies_per_atom(), rel.energies_per_atom(), rtol=1e-6)
    # a previous result is an input too: its ids and relaxed structures
    scores = crystals.score(rel, reference=[perov[2], perov[3]], dataset="perov_5", n_samples=2, cache_dir=False,
                            progress=False)
    assert list(scores.table["id"]) == ["first", "second"] and scores.summary.n_reference == 2


def test_threads_apply_to_the_call_only(tmp_path: Path) -> None:
    before = torch.get_num_threads()
    gen = crystals.generate(n=2, steps=2, num_atoms=5, threads=before + 1, progress=False)
    assert torch.get_num_threads() == before and len(gen.structures) + len(gen.failures) == 2


def test_train_then_generate_with_the_trained_model(tmp_path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = crystals.train(tiny_config(max_steps=2, val_every=2), out_dir=tmp_path / "run", threads=1,
                             progress=False)
    assert isinstance(res, TrainedModel) and res.model_path.is_file() and res.out_dir == tmp_path / "run"
    assert res.record["training"]["step"] == 2
    gen = crystals.generate(n=3, model=res.model_path, num_atoms=5, steps=3, progress=False)
    assert len(gen.structures) + len(gen.failures) == 3
    with pytest.raises(InputError, match=r"train\(out_dir=\.\.\.\)"):
        crystals.train(tiny_config(), out_dir=None)


def test_configs_accept_cli_spellings_and_fields_override() -> None:
    assert CrystalGenerateConfig(scheduler="kinetic-optimal").scheduler == "kinetic_optimal"
    assert CrystalTrainConfig(scheduler="Kinetic-Optimal").scheduler == "kinetic_optimal"
    assert CrystalScoreConfig(hull="mp_elements").hull == "mp-elements"
    base = CrystalRelaxConfig(fmax=0.05)
    merged = crystals.make_config(CrystalRelaxConfig, base, {"max_steps": 7}, "relax")
    assert (merged.fmax, merged.max_steps) == (0.05, 7)
    assert crystals.make_config(CrystalRelaxConfig, base, {}, "relax") is base  # not made (nor validated) again
    assert CrystalScoreConfig(reference="mp_20:test").cutoffs() == (0.4, 10.0)  # the reference's data set: CDVAE's


@pytest.mark.parametrize("call, names", [
    (lambda: CrystalGenerateConfig(steps="ten"), "CrystalGenerateConfig.steps"),
    (lambda: CrystalGenerateConfig(n=3, num_atoms=[5, 5]), "CrystalGenerateConfig.num_atoms"),
    (lambda: CrystalGenerateConfig(temperature=0), "CrystalGenerateConfig.temperature"),
    (lambda: CrystalGenerateConfig(model=3), "CrystalGenerateConfig.model"),
    (lambda: CrystalGenerateConfig(scheduler="quartic"), "CrystalGenerateConfig.scheduler"),
    (lambda: CrystalRelaxConfig(chgnet="9.9"), "CrystalRelaxConfig.chgnet"),
    (lambda: CrystalRelaxConfig(fmax=float("nan")), "CrystalRelaxConfig.fmax"),
    (lambda: CrystalScoreConfig(reference="perov_5:test", n_samples=0), "CrystalScoreConfig.n_samples"),
    (lambda: CrystalScoreConfig(reference="some/folder"), "CrystalScoreConfig.dataset"),
    (lambda: CrystalScoreConfig(hull="hull.xyz"), "CrystalScoreConfig.hull"),
    (lambda: CrystalScoreConfig(energies={"a": 1.0}), "CrystalScoreConfig.energies"),
    (lambda: CrystalTrainConfig(lr=0), "CrystalTrainConfig.lr"),
    (lambda: CrystalTrainConfig(coord_path="metric", loss="elbo"), "CrystalTrainConfig.loss"),
    (lambda: CrystalTrainConfig(network={"hidden": 48, "heads": 5}), "CrystalTrainConfig.network"),
    (lambda: crystals.score([1, 2]), r"score\(structures=\.\.\.\)\[0\]"),
    (lambda: crystals.score(3.5, reference="perov_5:test"), r"score\(structures=\.\.\.\)"),
    (lambda: crystals.score({1: None}, reference="perov_5:test"), r"score\(structures=\.\.\.\)"),
    (lambda: crystals.relax("/no/such/folder"), r"relax\(structures=\.\.\.\): input not found"),
    (lambda: crystals.relax([], max_steps=1), r"relax\(structures=\.\.\.\) holds no structures"),
    (lambda: crystals.generate(stepz=10), "unknown field.*stepz.*valid: n, model, num_atoms, steps"),
    (lambda: crystals.generate(CrystalRelaxConfig()), r"generate\(config=\.\.\.\) must be a CrystalGenerateConfig"),
    (lambda: crystals.generate(n=1, steps=1, threads="2"), r"generate\(threads=\.\.\.\)"),
    (lambda: crystals.relax([], out_dir=5), r"relax\(out_dir=\.\.\.\)"),
])
def test_bad_arguments_raise_input_error_naming_them(call: Any, names: str) -> None:
    with pytest.raises(InputError, match=names):
        call()


def test_score_needs_a_reference_and_names_it(perov: list[Any]) -> None:
    with pytest.raises(InputError, match=r"score\(reference=\.\.\.\) is required"):
        crystals.score(perov)
    with pytest.raises(InputError, match="CrystalScoreConfig.reference"):
        crystals.score(perov, reference=[1], dataset="perov_5")


def test_one_import_gives_every_verb_config_and_result() -> None:
    import workflows

    assert {"generate", "relax", "score", "train"} <= set(crystals.__all__)
    for name in crystals.__all__:
        value = getattr(crystals, name)
        assert callable(value), name
        if name[0].isupper():
            assert getattr(workflows, name) is value, name  # workflows re-exports the configs and results
    assert [f.name for f in fields(CrystalGenerateConfig)] == ["n", "model", "num_atoms", "steps", "temperature",
                                                               "corrector", "scheduler", "seed", "batch_size",
                                                               "conditions"]
