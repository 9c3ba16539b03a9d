"""The protein half of the Python API (``workflows.proteins``): the README script, results in memory that match the
run folder's files, folding from a sequence string, inverse folding from a data set chain, ids kept, bad calls
raising InputError that names the argument, the warning for lengths outside the model's training range, and
``train`` as a thin wrapper of the trainer."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from structures.data import load_proteins
from structures.errors import InputError
from structures.proteins.io import BackboneChain, read_chain
from workflows import proteins

FAST = dict(steps=4, progress=False)  # few sampler steps: shapes, ids and bookkeeping, not quality
OFFLINE = dict(mpnn={"n_sequences": 1}, reference=None, diversity=False, progress=False)


@pytest.fixture(scope="module")
def chains() -> list:
    """Two data set chains (ProteinChain) in the shipped model's 60-128 residue range."""
    ds = load_proteins()
    return [ds[7], ds[11]]  # 1AHO_A (64 residues), 1AM9_H (76)


def test_readme_script(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The README's five lines with small settings: 10 proteins of 60 residues, scored offline; nothing written."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("GENMATCH_ESMFOLD", raising=False)
    gen = proteins.generate(lengths=[60], per_length=10, steps=8, threads=1, progress=False)
    scores = proteins.score(gen, mpnn={"n_sequences": 2}, reference_limit=20, cache_dir=False, threads=1,
                            progress=False)
    table = scores.table[["id", "length", "radius_of_gyration"]]
    assert table["id"].tolist() == [f"length_60_{i:04d}" for i in range(10)] == gen.ids
    assert table["length"].eq(60).all() and table["radius_of_gyration"].between(5, 40).all()
    assert scores.summary.n_scored == 10 and scores.summary.n_reference == 20 and scores.out_dir is None
    assert list(tmp_path.iterdir()) == []


def test_in_memory_results_match_the_run_folder(tmp_path: Path) -> None:
    """``out_dir=None`` samples the same proteins as a run folder: same ids and sequences, coordinates equal up to
    the PDB files' 0.001 A; the run folder's result is what its files hold."""
    mem = proteins.generate(lengths=[60, 64], per_length=2, seed=5, **FAST)
    run = proteins.generate(lengths=[60, 64], per_length=2, seed=5, out_dir=tmp_path / "run", **FAST)
    assert mem.out_dir is None and run.out_dir == tmp_path / "run"
    assert mem.ids == run.ids == ["length_60_0000", "length_60_0001", "length_64_0000", "length_64_0001"]
    assert mem.sequences == run.sequences
    assert [len(s) for s in mem.sequences] == [60, 60, 64, 64]
    for a, b, ident in zip(mem.chains, run.chains, run.ids):
        assert a.name == b.name == ident and a.sequence == b.sequence
        assert np.abs(a.coords - b.coords).max() <= 6e-4
        assert np.array_equal(b.coords, read_chain(tmp_path / "run" / "pdb" / f"{ident}.pdb").coords)
    assert mem.summary.n == run.summary.n == 4 and mem.summary.settings == run.summary.settings


def test_folding_from_a_sequence_string() -> None:
    """A sequence string is folded (mode inferred); the given sequence is kept in every sample; a dict names them."""
    seq = "MKTAYIAKQRQISFVKSHFSRQLEERLGLIEVQAPILSRVGDGTQDNLSGAEKAVQVKVKALPDAQ"  # 66 residues
    gen = proteins.generate(sequence_in=seq, per_length=2, **FAST)
    assert gen.summary.mode == "folding" and gen.ids == ["seq0_0000", "seq0_0001"]
    assert gen.sequences == [seq, seq] and all(c.sequence == seq and len(c) == 66 for c in gen.chains)
    assert not np.allclose(gen.chains[0].coords, gen.chains[1].coords)  # two different folds of one sequence
    named = proteins.generate(sequence_in={"a": seq[:60], "b": seq[:62].lower()}, per_length=1, mode="forward-folding",
                              **FAST)
    assert named.ids == ["a_0000", "b_0000"] and named.sequences == [seq[:60], seq[:62]]


def test_inverse_folding_from_a_data_set_chain(chains: list) -> None:
    """A data set ProteinChain is converted for the user; the backbone is kept (centred), a sequence is designed;
    a BackboneChain and a previous result are taken too, with their ids."""
    given = chains[0]
    gen = proteins.generate(structure_in=[given], per_length=2, mode="inverse-folding", **FAST)
    assert gen.summary.mode == "inverse_folding" and gen.ids == [f"{given.name}_0000", f"{given.name}_0001"]
    ca = given.coords[:, 1] - given.coords[:, 1].mean(0)
    for chain, seq in zip(gen.chains, gen.sequences):
        assert np.abs(chain.coords[:, 1] - ca).max() <= 2e-3
        assert len(seq) == len(given) and set(seq) <= set("ACDEFGHIKLMNPQRSTVWY")
    again = proteins.generate(structure_in=gen, per_length=1, **FAST)  # a previous result: its ids
    assert again.ids == [f"{i}_0000" for i in gen.ids]
    backbone = BackboneChain.from_coords(given.coords, given.sequence, name="mine")
    assert proteins.generate(structure_in=backbone, per_length=1, **FAST).ids == ["mine_0000"]


def test_score_keeps_the_callers_ids(chains: list, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A dict's keys and a list's chain names name the table rows, in input order (the second call reads the
    per-sample scores from the cache: the same backbones under other ids)."""
    monkeypatch.delenv("GENMATCH_ESMFOLD", raising=False)
    by_key = proteins.score({"beta": chains[1], "alpha": chains[0]}, cache_dir=tmp_path / "cache", **OFFLINE)
    assert by_key.table["id"].tolist() == ["beta", "alpha"] and by_key.table["length"].tolist() == [76, 64]
    config = proteins.ProteinScoreConfig(cache_dir=tmp_path / "cache", **{k: v for k, v in OFFLINE.items()
                                                                          if k != "progress"})
    by_name = proteins.score(chains, config, progress=False)
    assert by_name.table["id"].tolist() == ["1AHO_A", "1AM9_H"]
    assert by_name.table["status"].eq("scored").all() and by_name.table["mpnn_log_likelihood"].lt(0).all()
    assert by_name.table["mpnn_log_likelihood"].tolist() == by_key.table["mpnn_log_likelihood"].tolist()[::-1]


def test_bad_calls_raise_input_error_naming_the_argument(tmp_path: Path) -> None:
    cases = [
        (lambda: proteins.generate(lengths="60"), r"ProteinGenerateConfig\.lengths must be a non-empty list"),
        (lambda: proteins.generate(per_length=0), r"ProteinGenerateConfig\.per_length must be an integer >= 1"),
        (lambda: proteins.generate(lenghts=[60]), r"unknown field\(s\) lenghts of ProteinGenerateConfig; valid: "
                                                  r"model, lengths, per_length"),
        (lambda: proteins.score(42), r"backbones must be a PDB/mmCIF file or folder.*got '42' \(int\)"),
        (lambda: proteins.score([1, 2]), r"backbones\[0\] must be a BackboneChain or a structures\.data\.ProteinChain"),
        (lambda: proteins.score(tmp_path / "missing"), r"input not found"),
        (lambda: proteins.score([], mpnn={"n_sequences": 1}), r"backbones is empty"),
        (lambda: proteins.score(tmp_path, tm_threshold=1.5), r"ProteinScoreConfig\.tm_threshold"),
        (lambda: proteins.generate(mode="inverse-folding"), r"ProteinGenerateConfig\.mode 'inverse-folding' needs "
                                                            r"structure_in"),
        (lambda: proteins.generate(sequence_in="MKTAYIAK", structure_in=tmp_path), r"not both"),
        (lambda: proteins.generate(sequence_in=["MKTXYZ"]), r"sequence_in\['seq0'\] must be a sequence of the "
                                                           r"one-letter codes"),
        (lambda: proteins.generate(model=3), r"ProteinGenerateConfig\.model must be a shipped model's name"),
        (lambda: proteins.generate(model=tmp_path / "nope.ckpt", **FAST), r"model: checkpoint not found"),
        (lambda: proteins.generate(proteins.ProteinScoreConfig()), r"generate\(config=\.\.\.\) must be a "
                                                                   r"ProteinGenerateConfig"),
        (lambda: proteins.generate(threads=0), r"generate\(threads=\.\.\.\) must be an integer >= 1"),
    ]
    for call, message in cases:
        with pytest.raises(InputError, match=message):
            call()
    assert issubclass(InputError, ValueError) and list(tmp_path.iterdir()) == []


def test_cli_spellings_and_config_overrides() -> None:
    """Python takes the command line's spellings; fields given with a config override it."""
    cfg = proteins.ProteinGenerateConfig(mode="forward-folding", sequence_in="MKTAYIAK", scheduler="kinetic-optimal")
    assert (cfg.resolved_mode, cfg.scheduler) == ("folding", "kinetic_optimal")
    assert proteins.ProteinGenerateConfig(mode="inverse_folding", structure_in="x.pdb").resolved_mode == \
        proteins.ProteinGenerateConfig(mode="inverse-folding", structure_in="x.pdb").resolved_mode == "inverse_folding"
    gen = proteins.generate(proteins.ProteinGenerateConfig(lengths=(64,), per_length=3), per_length=1, **FAST)
    assert gen.ids == ["length_64_0000"]


def test_lengths_outside_the_training_range_warn_once() -> None:
    """The shipped model was trained on 60-128 residues: one UserWarning names 12 and 130, not 60; threads are
    restored after the call."""
    before = torch.get_num_threads()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gen = proteins.generate(lengths=[12, 60, 130], per_length=1, threads=1, **FAST)
    user = [w for w in caught if issubclass(w.category, UserWarning)]
    assert len(user) == 1, [str(w.message) for w in user]
    assert str(user[0].message).startswith("lengths 12, 130 are outside the 60-128 residues the model was trained on")
    assert user[0].filename == __file__  # points at the caller's line
    assert len(gen) == 3 and torch.get_num_threads() == before
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning inside the range
        proteins.generate(lengths=[60, 128], per_length=1, **FAST)


def test_train_bad_calls(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"train\(out_dir=\.\.\.\) must be a folder path"):
        proteins.train(out_dir=None)
    with pytest.raises(InputError, match=r"unknown field\(s\) bogus of ProteinTrainConfig; valid: dataset"):
        proteins.train(out_dir=tmp_path / "t", bogus=1)
    assert not (tmp_path / "t").exists()


@pytest.mark.slow
def test_train_writes_a_model_that_generates(tmp_path: Path) -> None:
    """``proteins.train`` (a tiny network, 2 steps) returns the model path, which ``generate`` takes as ``model``."""
    from pipeline.proteins.network.config import IPAConfig, scaled_config

    tiny = scaled_config(16, 8, pos_emb=8, time_emb=8, feat_dim=4, dropout=0.0,
                         ipa=IPAConfig(c_hidden=4, no_heads=2, no_qk_points=2, no_v_points=2, seq_tfmr_num_heads=2,
                                       seq_tfmr_num_layers=1, num_blocks=1))
    res = proteins.train(out_dir=tmp_path / "train", network=tiny.to_dict(), min_length=60, max_length=90, crop=32,
                         max_residues=256, max_batch_size=8, limit=16, val_fraction=0.25, max_steps=2, val_every=2,
                         warmup_steps=1, val_times=1, threads=1, progress=False)
    assert res.model_path.is_file() and res.record["training"]["step"] == 2
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # chains were cropped to 32 residues: 32 is in the trained range
        gen = proteins.generate(model=res.model_path, lengths=[32], per_length=1, **FAST)
    assert len(gen.sequences[0]) == len(gen.chains[0]) == 32
    with pytest.warns(UserWarning, match=r"length 61 is outside the 32 residues the model was trained on"):
        proteins.generate(model=res.model_path, lengths=[61], per_length=1, **FAST)
