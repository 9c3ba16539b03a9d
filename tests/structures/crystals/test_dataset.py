"""Cached tokenised crystal data sets (CDVAE CSVs)."""

from __future__ import annotations

import lzma
import os

import numpy as np
import pandas as pd
import pytest
import torch
from pymatgen.analysis.structure_matcher import StructureMatcher
from pymatgen.core import Lattice, Structure
from torch.utils.data import DataLoader

from structures.crystals import tokens as ct
from structures.crystals.dataset import TokenizedCrystals, cache_dir
from structures.data import load_crystals, resolve_dataset


@pytest.fixture()
def small_csv(tmp_path):
    """The first 40 Carbon-24 rows plus rows that cannot be tokenised, as a CDVAE CSV."""
    df = pd.read_csv(resolve_dataset("carbon_24", "test"), nrows=40)
    bad = [
        Structure(Lattice.tetragonal(3.0, 70.0), ["C"], [[0, 0, 0]]).to(fmt="cif"),  # too long a lattice
        Structure(Lattice.cubic(3.0), ["Am"], [[0, 0, 0]]).to(fmt="cif"),  # beyond Pu
        "not a cif",
    ]
    extra = pd.DataFrame({"material_id": ["x1", "x2", "x3"], "cif": bad, "energy_per_atom": [0.0] * 3})
    path = tmp_path / "carbon_small" / "train.csv"
    path.parent.mkdir()
    pd.concat([df, extra], ignore_index=True).to_csv(path)
    return path


def test_tokenized_dataset_cache_and_batches(small_csv, tmp_path, monkeypatch):
    monkeypatch.setenv("GENMATCH_CACHE", str(tmp_path / "cache"))
    ds = TokenizedCrystals.from_csv(small_csv, max_atoms=24, progress=False)
    assert len(ds) == 40 and sorted(ds.skipped) == [40, 41, 42]
    assert "49.9" in ds.skipped[40] and "Pu" in ds.skipped[41] and "CIF" in ds.skipped[42]
    files = list((cache_dir() / "crystal_tokens").glob("*.npz"))
    assert len(files) == 1 and not list(files[0].parent.glob("*.tmp"))
    # second load comes from the cache (identical arrays), with no pickle involved
    with np.load(files[0], allow_pickle=False) as z:
        assert z["tokens"].dtype == np.int16
    again = TokenizedCrystals.from_csv(small_csv, max_atoms=24, progress=False)
    assert (again.tokens == ds.tokens).all() and again.skipped == ds.skipped
    # a different setting is a different cache entry; editing the CSV invalidates the key
    TokenizedCrystals.from_csv(small_csv, max_atoms=24, rounding="truncate", progress=False)
    assert len(list((cache_dir() / "crystal_tokens").glob("*.npz"))) == 2
    with open(small_csv, "a") as f:
        f.write("\n")
    TokenizedCrystals.from_csv(small_csv, max_atoms=24, progress=False)
    assert len(list((cache_dir() / "crystal_tokens").glob("*.npz"))) == 3

    # tokens agree with the one-by-one encoder and decode back to the CSV's crystals
    structures = load_crystals(str(small_csv), "train", limit=40).structures
    ref = ct.encode_batch(structures, max_atoms=24)
    assert (ds.tokens == ref.tokens).all()
    b = ds.batch(np.array([3, 0, 7]))
    assert b.tokens.shape == (3, 6 + 4 * 24)
    assert (b.num_atoms == [len(structures[i]) for i in (3, 0, 7)]).all()
    assert (b.token_mask.sum(1) == 6 + 4 * b.num_atoms).all()
    dec = ct.decode_batch(b.tokens)
    assert all(StructureMatcher().fit(structures[i], dec.structure(j)) for j, i in enumerate((3, 0, 7)))

    # torch DataLoader with the collate function
    loader = DataLoader(ds, batch_size=8, shuffle=True, collate_fn=ds.collate, generator=torch.Generator().manual_seed(0))
    tb = next(iter(loader))
    assert tb.tokens.dtype == torch.long and tb.tokens.shape == (8, 102)
    assert (tb.token_mask.sum(1) == 6 + 4 * tb.num_atoms).all()

    # atom-count distribution of the training set, and sampling from it
    p = ds.atom_count_distribution()
    assert p.shape == (25,) and np.isclose(p.sum(), 1.0)
    assert np.allclose(p, np.bincount([len(s) for s in structures], minlength=25) / 40)
    draws = ds.sample_num_atoms(20000, rng=0)
    assert set(np.unique(draws)) <= set(np.flatnonzero(p))
    assert np.abs(np.bincount(draws, minlength=25) / 20000 - p).max() < 0.02


def test_corrupt_cache_is_rebuilt(small_csv, tmp_path, monkeypatch):
    monkeypatch.setenv("GENMATCH_CACHE", str(tmp_path / "c"))
    ds = TokenizedCrystals.from_csv(small_csv, max_atoms=24, progress=False)
    (f,) = (tmp_path / "c" / "crystal_tokens").glob("*.npz")
    f.write_bytes(b"garbage")
    again = TokenizedCrystals.from_csv(small_csv, max_atoms=24, progress=False)
    assert (again.tokens == ds.tokens).all()


def test_named_dataset_perov_xz_and_missing(tmp_path, monkeypatch):
    """Reads a named split (.csv.xz) through the data root; perov_5 always has 5 atoms."""
    monkeypatch.setenv("GENMATCH_CACHE", str(tmp_path / "c"))
    # a small perov_5 data root: first 30 rows of the real test split, xz-compressed
    root = tmp_path / "data"
    (root / "crystals" / "perov_5").mkdir(parents=True)
    df = pd.read_csv(resolve_dataset("perov_5", "test"), nrows=30)
    with lzma.open(root / "crystals" / "perov_5" / "train.csv.xz", "wt") as f:
        df.to_csv(f)
    monkeypatch.setenv("GENMATCH_DATA", str(root))
    ds = TokenizedCrystals.from_name("perov_5", "train", progress=False)
    assert ds.max_atoms == 20 and len(ds) == 30 and (ds.num_atoms == 5).all()
    assert ds.atom_count_distribution()[5] == 1.0
    with pytest.raises(FileNotFoundError, match="mp_20"):
        TokenizedCrystals.from_name("mp_20", "train")
    # an MP-20-format CSV (its own column set) is read the same way
    mp = root / "crystals" / "mp_20"
    mp.mkdir()
    pd.DataFrame({"material_id": df["material_id"], "formation_energy_per_atom": df["heat_ref"],
                  "band_gap": df["dir_gap"], "pretty_formula": df["formula"], "e_above_hull": 0.0,
                  "elements": "[]", "cif": df["cif"], "spacegroup.number": 221}).to_csv(mp / "val.csv", index=False)
    mp20 = TokenizedCrystals.from_name("mp_20", "val", progress=False)
    assert mp20.max_atoms == 20 and (mp20.tokens == ds.tokens).all()
    with pytest.raises(ValueError, match="cif"):
        bad = tmp_path / "bad.csv"
        pd.DataFrame({"a": [1]}).to_csv(bad)
        TokenizedCrystals.from_csv(bad, cache=False)
    assert os.environ["GENMATCH_DATA"] == str(root)


@pytest.mark.slow
@pytest.mark.parametrize("name, n_rows", [("perov_5", 3787), ("carbon_24", 2032)])
def test_full_validation_splits_tokenise(name, n_rows, tmp_path, monkeypatch):
    monkeypatch.setenv("GENMATCH_CACHE", str(tmp_path))
    ds = TokenizedCrystals.from_name(name, "val", progress=False)
    assert len(ds) + len(ds.skipped) == n_rows and not ds.skipped
    p = ds.atom_count_distribution()
    assert (p[5] == 1.0) if name == "perov_5" else (p[:6].sum() == 0 and p[6:25].sum() == pytest.approx(1.0))
    dec = ct.decode_batch(ds.batch(np.arange(len(ds))).tokens)
    assert dec.valid.all()
