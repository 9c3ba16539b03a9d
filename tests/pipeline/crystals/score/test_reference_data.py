"""Shipped reference data (pipeline/score/reference_data, made by tools/make_reference_data.py): found by
cache key without computing, keyed by content hash, equal to a recomputation (slow)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import pipeline.crystals.score.reference_data as rd
from pipeline.common.hashing import structure_hash


def _fp_sets() -> list[str]:
    """The test splits with shipped fingerprints, in the order of the manifest's sources."""
    return [s["dataset"].split(":")[0] for s in rd.read_manifest()[rd.FINGERPRINTS]["sources"]]


def _no_compute(*args, **kwargs):  # noqa: ANN002, ANN003
    raise AssertionError("computed although the value is shipped")


def test_shipped_files_are_small_and_described() -> None:
    man = rd.read_manifest()
    for name in (rd.FINGERPRINTS, rd.ENERGIES):
        path = rd.data_dir() / name
        assert path.is_file() and name in man
        assert path.stat().st_size < 10e6
    fp = man[rd.FINGERPRINTS]
    assert [s["dataset"] for s in fp["sources"]][:1] == ["perov_5:test"]  # the demo's reference set
    assert fp["n"] >= 3785 and len(rd.fingerprint_layer()) == fp["n"]
    en = man[rd.ENERGIES]
    assert en["settings"]["model"] == "0.3.0" and en["key"].startswith("0.3.0:relax-f0.1-s1500:")
    assert en["n"] >= 257 and len(rd.energy_layer()) == en["n"]  # at least the 257 the default demo needs


def test_shipped_fingerprints_are_found_by_key_without_computing(monkeypatch, tmp_path: Path) -> None:
    import pipeline.crystals.score.fingerprints as fpm
    from structures.data import load_crystals

    monkeypatch.setattr(fpm, "parallel_map", _no_compute)
    layer = rd.fingerprint_layer()
    assert len(layer) == rd.read_manifest()[rd.FINGERPRINTS]["n"]  # the whole shipped layer
    for d, name in enumerate(_fp_sets()):
        sts = load_crystals(name, "test", limit=5).structures
        got = fpm.compute_fingerprints(sts, cache_dir=tmp_path, progress=False)
        assert got.struct_ok.all() and np.isfinite(got.comp).all()
        rows = [layer.row[structure_hash(s)] for s in sts]  # keyed by content hash ...
        assert (layer.source[rows] == d).all() and layer.index[rows].tolist() == list(range(5))  # ... of these rows
        np.testing.assert_array_equal(got.struct, layer.struct[rows].astype(np.float64))
    # nothing was written to the disk cache: every value came from the shipped layer
    from pipeline.common.cache import DiskCache

    assert DiskCache(tmp_path, rd.FP_NAMESPACE)._get([f"s:{structure_hash(sts[0])}"]) == {}


def test_shipped_relaxed_energies_are_found_by_key_without_computing(monkeypatch, tmp_path: Path) -> None:
    import pipeline.crystals.relax as relax
    from pipeline.crystals.score.energies import chgnet_energies
    from structures.data import load_crystals

    monkeypatch.setattr(relax, "load_chgnet", _no_compute)
    layer = rd.energy_layer()
    assert len(layer) == rd.read_manifest()[rd.ENERGIES]["n"]  # the whole shipped layer
    rows = np.sort(layer.index)[:5]
    val = load_crystals("perov_5", "val", limit=int(rows[-1]) + 1).structures
    sts = [val[i] for i in rows]
    st = rd.read_manifest()[rd.ENERGIES]["settings"]
    e = chgnet_energies(sts, model=st["model"], relax=True, fmax=st["fmax"], max_steps=st["max_steps"],
                        cache_dir=tmp_path, progress=False)
    want = [layer.value[f"{st['model']}:relax-f{st['fmax']}-s{st['max_steps']}:{structure_hash(s)}"] for s in sts]
    np.testing.assert_array_equal(e, np.array(want, dtype=float))
    # other settings are other keys: not served from the shipped layer
    with pytest.raises(AssertionError, match="shipped"):
        chgnet_energies(sts[:1], relax=True, max_steps=7, cache_dir=tmp_path, progress=False)


def test_shipped_layer_switch_and_disabled_cache(monkeypatch) -> None:
    monkeypatch.setenv(rd.SWITCH, "off")
    assert rd.fingerprint_layer() is None and rd.energy_layer() is None
    monkeypatch.delenv(rd.SWITCH)
    assert len(rd.fingerprint_layer()) == rd.read_manifest()[rd.FINGERPRINTS]["n"]


@pytest.mark.slow
def test_shipped_values_equal_a_recomputation() -> None:
    """10 random shipped fingerprints per shipped test split and 20 shipped relaxed energies, recomputed
    with caching off: fingerprints to float32 precision, energies within 1 meV/atom."""
    import torch

    from pipeline.crystals.score.energies import chgnet_energies
    from pipeline.crystals.score.fingerprints import compute_fingerprints
    from structures.data import load_crystals

    rng = np.random.default_rng(0)
    fl = rd.fingerprint_layer()
    for d, name in enumerate(_fp_sets()):
        sts = load_crystals(name, "test").structures
        rows = rng.choice(np.flatnonzero(fl.source == d), 10, replace=False)
        sub = [sts[fl.index[r]] for r in rows]
        assert [structure_hash(s) for s in sub] == [fl.hashes[r] for r in rows]
        fresh = compute_fingerprints(sub, cache_dir=False, progress=False)
        shipped = fl.struct[rows].astype(np.float64)
        assert (fresh.struct_ok == np.isfinite(shipped).all(axis=1)).all()
        np.testing.assert_allclose(fresh.struct[fresh.struct_ok], shipped[fresh.struct_ok], rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(fresh.comp, fl.comp[fl.comp_index[rows]], rtol=1e-6, atol=1e-6)

    el = rd.energy_layer()
    st = rd.read_manifest()[rd.ENERGIES]["settings"]
    val = load_crystals("perov_5", "val").structures
    pick = rng.choice(len(el.keys), 20, replace=False)
    sub = [val[el.index[p]] for p in pick]
    assert [k.rsplit(":", 1)[1] for k in np.array(el.keys)[pick]] == [structure_hash(s) for s in sub]
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        fresh = chgnet_energies(sub, model=st["model"], relax=True, fmax=st["fmax"], max_steps=st["max_steps"],
                                batch_size=st["batch_size"], cache_dir=False, progress=False)
    finally:
        torch.set_num_threads(before)
    shipped = el.e_per_atom[pick]
    assert (np.isnan(fresh) == np.isnan(shipped)).all()
    ok = np.isfinite(shipped)
    # A relaxation is not bit-reproducible across machines and batch compositions: FIRE on a flat landscape can
    # end in another nearby minimum. Measured (issue 16 session, another CPU than the one that made the data):
    # 16 of these 20 within 1e-3 eV/atom (most within 1e-5), 4 off by 0.006-0.21 eV/atom. Most must agree tightly,
    # none may be far off.
    diff = np.abs(fresh[ok] - shipped[ok])
    assert np.mean(diff <= 1e-3) >= 0.75 and diff.max() <= 0.25, diff
