"""Crystal scoring on real structures: CDVAE validity / fingerprints / coverage / wdist, caching,
fan-out, reference hulls, stability, uniqueness, novelty."""

from __future__ import annotations

import gzip
import json
import pickle
from pathlib import Path

import numpy as np
import pytest
from pymatgen.core import Composition, Lattice, Structure
from pymatgen.entries.computed_entries import ComputedEntry

from helpers import fixture_path
from pipeline.crystals.score import (
    ReferenceHull,
    composition_fingerprint,
    compositional_validity,
    compute_fingerprints,
    coverage,
    structural_validity,
    structure_fingerprint,
)
from pipeline.crystals.score.coverage import cutoffs_for, standardize_comp
from pipeline.crystals.score.config import CrystalScoreConfig
from pipeline.crystals.score.score import score_structures
from pipeline.common.hashing import structure_hash
from pipeline.common.parallel import ComputeConfig
from pipeline.crystals.score.stability import novel_mask, stable_mask, unique_mask

def test_comp_scaler_constants_match_cdvae_fixture() -> None:
    from pipeline.crystals.score.cdvae_constants import COMP_SCALER_MEANS, COMP_SCALER_STDS

    path = fixture_path("cdvae", "comp_scaler.json")
    d = json.loads(path.read_text())
    assert COMP_SCALER_MEANS == d["CompScalerMeans"] and COMP_SCALER_STDS == d["CompScalerStds"]
    assert cutoffs_for("perov_5") == (0.2, 4.0) and cutoffs_for("mp_20") == (0.4, 10.0)
    with pytest.raises(ValueError, match="cutoffs"):
        cutoffs_for("unknown_set")


def test_validity_on_real_and_broken_structures(perov_test, carbon_test) -> None:
    assert all(structural_validity(s) for s in perov_test[:20] + carbon_test[:5])
    assert all(compositional_validity(s) for s in carbon_test[:5])  # single element
    close = Structure(Lattice.cubic(4.0), ["Na", "Cl"], [[0, 0, 0], [0.1, 0, 0]])  # 0.4 A apart
    assert not structural_validity(close)
    assert compositional_validity(Structure(Lattice.cubic(5.6), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]]))
    assert not compositional_validity(Structure(Lattice.cubic(5.6), ["Na", "Na", "O", "O", "O"],
                                                [[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0, 0], [0, 0.5, 0], [0, 0, 0.5]]))
    assert compositional_validity(Structure(Lattice.cubic(3.0), ["Fe", "Ni"], [[0, 0, 0], [0.5, 0.5, 0.5]]))  # alloy


def test_fingerprints_equal_direct_matminer_and_cache(perov_test, tmp_path: Path, monkeypatch) -> None:
    from matminer.featurizers.composition.composite import ElementProperty
    from matminer.featurizers.site.fingerprint import CrystalNNFingerprint

    sts = perov_test[:4]
    cnn = CrystalNNFingerprint.from_preset("ops")
    ep = ElementProperty.from_preset("magpie")
    direct = np.array([np.mean([cnn.featurize(s, i) for i in range(len(s))], axis=0) for s in sts])
    direct_c = np.array([ep.featurize(s.composition) for s in sts])
    np.testing.assert_array_equal(np.array([structure_fingerprint(s) for s in sts]), direct)
    np.testing.assert_allclose(np.array([composition_fingerprint(s) for s in sts]), direct_c, rtol=1e-12)
    monkeypatch.setenv("GENMATCH_REFERENCE_DATA", "off")  # the disk cache itself, not the shipped test-set values
    cold = compute_fingerprints(sts, cache_dir=tmp_path, progress=False)
    assert (tmp_path / "cdvae_fp_v1.sqlite").is_file()
    warm = compute_fingerprints(sts, cache_dir=tmp_path, progress=False)
    np.testing.assert_array_equal(cold.struct, direct)
    np.testing.assert_array_equal(warm.struct, cold.struct)
    np.testing.assert_array_equal(warm.comp, cold.comp)
    assert warm.struct_ok.all()


@pytest.mark.parametrize("backend", [
    "processes",
    pytest.param("dask", marks=pytest.mark.slow),  # LocalCluster start-up: ~10-35 s on 2 shared cores
])
def test_fanout_equals_serial(perov_test, backend: str) -> None:
    sts = perov_test[:6]
    a = compute_fingerprints(sts, workers=1, cache_dir=False, progress=False)
    b = compute_fingerprints(sts, workers=2, backend=backend, cache_dir=False, progress=False)
    np.testing.assert_array_equal(a.struct, b.struct)
    np.testing.assert_array_equal(a.comp, b.comp)


def _plain_cov(gs, gc, rs, rc, s_cut, c_cut):  # noqa: ANN001, ANN202 - CDVAE compute_cov, loops
    gc, rc = standardize_comp(gc), standardize_comp(rc)
    sd = np.array([[np.linalg.norm(a - b) for b in rs] for a in gs])
    cd = np.array([[np.linalg.norm(a - b) for b in rc] for a in gc])
    rec = np.mean((sd.min(0) <= s_cut) & (cd.min(0) <= c_cut))
    prec = np.sum((sd.min(1) <= s_cut) & (cd.min(1) <= c_cut)) / len(gs)
    return rec, prec


def test_coverage_matches_plain_definition(perov_test, perov_val) -> None:
    gen = compute_fingerprints(perov_val[:15], cache_dir=False, progress=False)
    ref = compute_fingerprints(perov_test[:25], cache_dir=False, progress=False)
    for s_cut, c_cut in ((0.2, 4.0), (0.05, 1.0)):
        cov = coverage(gen, ref, s_cut, c_cut)
        rec, prec = _plain_cov(gen.struct, gen.comp, ref.struct, ref.comp, s_cut, c_cut)
        assert cov.cov_recall == pytest.approx(rec, abs=1e-12)
        assert cov.cov_precision == pytest.approx(prec, abs=1e-12)
    self_cov = coverage(ref, ref, 0.2, 4.0)
    assert self_cov.cov_recall == 1.0 and self_cov.cov_precision == 1.0


def test_hull_from_entries_json_and_pickle_flag(tmp_path: Path) -> None:
    refs = ReferenceHull.mp_elemental()
    na, cl = (next(e for e in refs.entries if e.composition.reduced_formula == x) for x in ("Na", "Cl2"))
    e_nacl = na.energy_per_atom + cl.energy_per_atom - 2 * 2.0  # formation -2 eV/atom
    entries = [na, cl, ComputedEntry("NaCl", e_nacl)]
    path = tmp_path / "entries.json.gz"
    with gzip.open(path, "wt") as f:
        json.dump([e.as_dict() for e in entries], f)
    hull = ReferenceHull.from_entries_json(path)
    eh, why = hull.e_above_hull([Composition("NaCl"), Composition("NaCl"), Composition("Na3Cl"), Composition("KCl")],
                                [e_nacl / 2 - 0.1, e_nacl / 2 + 0.05, 0.0, -3.0])
    assert eh[0] == pytest.approx(-0.1, abs=1e-9) and eh[1] == pytest.approx(0.05, abs=1e-9)
    assert np.isfinite(eh[2]) and np.isnan(eh[3]) and "K" in why[3]
    from pymatgen.analysis.phase_diagram import PhaseDiagram

    pkl = tmp_path / "pd.pkl"
    pkl.write_bytes(pickle.dumps(PhaseDiagram(entries)))
    with pytest.raises(ValueError, match="trusted"):
        ReferenceHull.from_ppd_pickle(pkl)
    ppd = ReferenceHull.from_ppd_pickle(pkl, trusted=True)
    assert ppd.e_above_hull([Composition("NaCl")], [e_nacl / 2 - 0.1])[0][0] == pytest.approx(-0.1, abs=1e-9)


def test_stability_uniqueness_novelty(perov_test) -> None:
    a, b = perov_test[0], perov_test[1]
    sts = [a, a.copy(), b, Structure(Lattice.cubic(3.0), ["Fe"], [[0, 0, 0]])]
    st = stable_mask(np.array([-0.1, 0.0, 0.05, -1.0]), np.array([3, 3, 3, 1]))
    assert st.tolist() == [True, True, False, False]
    assert unique_mask(sts, st).tolist() == [True, False, False, False]
    assert novel_mask(sts, [b], np.ones(4, bool)).tolist() == [True, True, False, True]
    assert novel_mask(sts, [a], np.ones(4, bool)).tolist() == [False, False, True, True]


def test_score_crystals_end_to_end(perov_val, perov_test, tmp_path: Path) -> None:
    from pipeline.crystals.score.report import write_scores

    hull = ReferenceHull.embedded_default(perov_val[:10], relax=False, cache_dir=tmp_path, progress=False)
    res = score_structures(perov_val[:12], perov_test[:30], CrystalScoreConfig(dataset="perov_5", n_samples=8),
                           compute=ComputeConfig(cache_dir=tmp_path, progress=False), hull=hull,
                           training=perov_val[:3])
    s = res.summary
    assert s.struct_valid == 1.0 and s.n_wdist_samples == 8
    # CDVAE coverage of 12 Perov-5 val crystals against 30 test ones: 2 of the 30 references and 2 of the 12 hit
    assert (s.cov_recall, s.cov_precision) == (pytest.approx(2 / 30), pytest.approx(2 / 12))
    assert s.cov_precision == pytest.approx(res.table["cov_precision_hit"].mean())
    assert s.wdist_density >= 0 and np.isfinite(s.wdist_num_elems)
    assert s.stability.hull == hull.name and s.stability.n_sun == int(res.table["sun"].sum())
    assert type(s).from_json(s.to_json()).to_json() == s.to_json()
    t = res.table
    assert len(t) == 12 and {"e_hull", "stable", "unique", "novel", "sun", "cov_struct_dist"} <= set(t.columns)
    # the first 10 are in the hull with their own (static CHGNet) energies: on or above it, never below
    assert (t["e_hull"].to_numpy()[:10] >= -1e-6).all()
    assert not t["novel"].to_numpy()[:3].any()
    paths = write_scores(res, tmp_path / "out")
    import pandas as pd

    written_table = pd.read_csv(paths["csv"], dtype={"id": str})
    assert len(written_table) == 12 and list(pd.read_parquet(paths["parquet"])["id"]) == list(written_table["id"])
    for k in ("density", "n_elements", "e_hull"):
        assert paths[k].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", k  # a PNG image, not an empty file
    written = json.loads(paths["summary"].read_text())
    assert written["n_structures"] == 12 and written["stable_rate"] == s.stability.stable_rate  # flat layout



def test_relaxed_reference_energies_are_cached_as_they_finish(perov_val, tmp_path: Path) -> None:
    from pipeline.common.cache import DiskCache
    from pipeline.crystals.score.energies import chgnet_energies

    first = chgnet_energies(perov_val[:3], relax=True, max_steps=5, cache_dir=tmp_path, progress=False)
    assert np.isfinite(first).all()
    stored = DiskCache(tmp_path, "chgnet_energy_v1").get_json(
        [f"0.3.0:relax-f0.1-s5:{structure_hash(s)}" for s in perov_val[:3]])
    assert len(stored) == 3
    again = chgnet_energies(perov_val[:3], relax=True, max_steps=5, cache_dir=tmp_path, progress=False)
    np.testing.assert_array_equal(first, again)


def test_default_hull_for_given_queries_computes_only_what_can_matter(perov_val, tmp_path: Path) -> None:
    """E_hull of a composition depends only on entries inside its chemical system: the query-restricted
    default hull computes fewer reference energies and gives the same E_hull as the full one."""
    refs, queries = perov_val[:40], perov_val[:6]
    full = ReferenceHull.embedded_default(refs, relax=False, cache_dir=tmp_path, progress=False)
    part = ReferenceHull.embedded_default(refs, relax=False, cache_dir=tmp_path, progress=False,
                                          queries=[s.composition for s in queries])
    assert 6 <= len(part.entries) - len(ReferenceHull.mp_elemental().entries) < 40
    comps = [s.composition for s in queries]
    e = np.linspace(-3.0, -1.0, len(comps))
    np.testing.assert_allclose(part.e_above_hull(comps, e)[0], full.e_above_hull(comps, e)[0], atol=1e-9)
