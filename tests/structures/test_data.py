"""Data access (structures.data): resolution order, clear errors, real data set sizes."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from structures import data as D


def test_default_root_is_the_embedded_copy(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without GENMATCH_DATA the data root is inside the installed package (structures/embedded), with every
    data set the demo and the tests need."""
    monkeypatch.delenv(D.DATA_ENV, raising=False)
    root = D.data_root()
    assert root == D.DEFAULT_DATA_ROOT == Path(D.__file__).resolve().parent / "embedded"
    assert D.resolve_dataset("perov_5", "val") == root / "crystals" / "perov_5" / "val.csv.xz"
    assert D.available_datasets() == {"perov_5": ["val", "test"], "carbon_24": ["val", "test"], "proteins": [""]}
    assert (root / "mp" / "2023-02-07-mp-elemental-reference-entries.json.gz").is_file()


def test_env_variable_takes_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "crystals" / "perov_5").mkdir(parents=True)
    src = D.DEFAULT_DATA_ROOT / "crystals" / "perov_5" / "test.csv.xz"
    shutil.copy(src, tmp_path / "crystals" / "perov_5" / "test.csv.xz")
    monkeypatch.setenv(D.DATA_ENV, str(tmp_path))
    assert D.resolve_dataset("perov_5", "test").parent == tmp_path / "crystals" / "perov_5"
    assert D.available_datasets() == {"perov_5": ["test"]}


def test_missing_dataset_error_says_where_and_public_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(D.DATA_ENV, str(tmp_path))
    with pytest.raises(D.DataNotFoundError) as e:
        D.resolve_dataset("mp_20", "train")
    msg = str(e.value)
    assert str(tmp_path / "crystals" / "mp_20") in msg and "CDVAE" in msg and D.DATA_ENV in msg
    with pytest.raises(D.DataNotFoundError, match="proteins"):
        D.load_proteins()


def test_bad_env_and_bad_names(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="unknown data set"):
        D.resolve_dataset("qm9", "val")
    with pytest.raises(ValueError, match="needs a split"):
        D.resolve_dataset("perov_5")
    monkeypatch.setenv(D.DATA_ENV, "/definitely/not/here")
    with pytest.raises(D.DataNotFoundError, match="not a directory"):
        D.data_root()


@pytest.mark.slow  # reads two whole splits (26 s)
def test_perov5_val_and_carbon24_test_sizes() -> None:
    perov = D.load_crystals("perov_5", "val")
    assert len(perov) == 3787
    assert all(len(s) == 5 for s in perov.structures[:100])
    assert {"material_id", "heat_ref"} <= set(perov.properties.columns)
    assert "cif" not in perov.properties.columns
    carbon = D.load_crystals("carbon_24", "test")
    assert len(carbon) == 2030
    assert {el.symbol for s in carbon.structures[:50] for el in s.composition.elements} == {"C"}


def test_read_any_cdvae_csv_plain_and_bad(tmp_path: Path) -> None:
    import pandas as pd

    df = pd.read_csv(D.resolve_dataset("carbon_24", "val"), nrows=3)
    df.to_csv(tmp_path / "val.csv")
    ds = D.load_crystals(str(tmp_path / "val.csv"), "val")
    assert len(ds) == 3 and "energy_per_atom" in ds.properties.columns
    df.drop(columns=["cif"]).to_csv(tmp_path / "nocif.csv")
    with pytest.raises(ValueError, match="no 'cif' column"):
        D.read_cdvae_csv(tmp_path / "nocif.csv")
    df.loc[0, "cif"] = "not a cif"
    df.to_csv(tmp_path / "badcif.csv")
    with pytest.raises(ValueError, match="row 0"):
        D.read_cdvae_csv(tmp_path / "badcif.csv")


def test_protein_set_3000_chains_in_angstrom() -> None:
    ps = D.load_proteins()
    assert len(ps) == 3000
    assert int(ps.lengths.sum()) == 446732
    ch = ps[0]
    assert ch.coords.shape == (len(ch), 4, 3) and ch.coords.dtype == np.float32
    assert len(ch.sequence) == len(ch.dssp) == len(ch)
    d = np.linalg.norm(np.diff(ch.ca, axis=0), axis=1)
    assert 3.6 < float(np.median(d)) < 4.0  # CA-CA ~3.8 A: units are Angstrom
    assert ps[-1].name == f"{ps.pdb_id[-1]}_{ps.chain_id[-1]}"
    with pytest.raises(IndexError):
        ps[3000]


def test_dataset_size_without_parsing() -> None:
    assert D.dataset_size("perov_5", "test") == 3785
    assert D.dataset_size("proteins") == 3000
