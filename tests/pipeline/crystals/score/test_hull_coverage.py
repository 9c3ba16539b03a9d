"""Hull coverage: a sample is covered when every one of its elements meets a non-elemental compound on the hull
facet beneath it; the share of covered samples, below 100 % the stable rate is an upper bound (summary keys,
text label, E_hull plot); every uncovered row says so in e_hull_note."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pymatgen.core import Composition, Lattice, Structure
from pymatgen.entries.computed_entries import ComputedEntry

from pipeline.crystals.score.hull import ReferenceHull
from pipeline.crystals.score.stability import hull_coverage
from pipeline.crystals.score.summary import ScoreSummary

def _entry(formula: str, e_per_atom: float) -> ComputedEntry:
    c = Composition(formula)
    return ComputedEntry(c, e_per_atom * c.num_atoms)


@pytest.fixture()
def tiny_hull() -> ReferenceHull:
    """Na, Cl, K, O elemental references and one compound, NaCl."""
    return ReferenceHull(entries=[_entry("Na", -1.0), _entry("Cl", -1.5), _entry("K", -0.8), _entry("O", -4.0),
                                  _entry("NaCl", -3.0)], name="tiny")


def test_hull_coverage_on_a_tiny_hand_made_hull(tiny_hull: ReferenceHull) -> None:
    comps = [Composition(f) for f in ("NaCl", "Na3Cl", "KCl", "NaClO3", "K2O", "Na")]
    covered = tiny_hull.covers(comps)
    # NaCl and Na3Cl (Na + NaCl) sit on facets with NaCl; K-Cl and K-O hold no compound; NaClO3 lies over
    # NaCl + O, where O meets no compound (a formation energy towards O); Na is its own reference
    assert covered.tolist() == [True, True, False, False, False, True]
    assert "with O " in tiny_hull.coverage_gap(Composition("NaClO3"))
    n_el = np.array([len(c.elements) for c in comps])
    cov = hull_coverage(covered, n_el)
    assert cov["n_hull_coverable"] == 5 and cov["n_hull_covered"] == 2  # the elemental sample cannot be stable
    assert cov["hull_coverage"] == pytest.approx(0.4) and cov["stable_rate_is_upper_bound"] is True
    full = hull_coverage(covered[[0, 1]], n_el[[0, 1]])
    assert full["hull_coverage"] == 1.0 and full["stable_rate_is_upper_bound"] is False


def test_a_binary_compound_does_not_cover_a_ternary_sample_it_leaves_an_element_out_of() -> None:
    """The demo's case: a ternary system holding one binary compound and no ternary one. Every facet of the
    Ba-Ti-O triangle then holds BaO, but Ti meets only its elemental reference: not covered. Two binaries that
    between them hold every element cover it (NaCl + KCl beneath Na-K-Cl), so does a ternary compound."""
    hull = ReferenceHull(entries=[_entry("Ba", -1.9), _entry("Ti", -7.8), _entry("O", -4.9), _entry("BaO", -6.0),
                                  _entry("Na", -1.3), _entry("K", -1.1), _entry("Cl", -1.8), _entry("NaCl", -3.4),
                                  _entry("KCl", -3.4)], name="binaries")
    gap = hull.coverage_gap(Composition("BaTiO3"))
    assert gap is not None and "with Ti " in gap and "lower bound" in gap
    assert hull.coverage_gap(Composition("Ba2O")) is None  # Ba + BaO: both elements meet BaO
    assert hull.coverage_gap(Composition("NaKCl2")) is None
    assert hull.coverage_gap(Composition("TiO2")) is not None  # no Ti-O compound at all
    assert "no hull" in hull.coverage_gap(Composition("FeO"))  # no Fe reference
    with_ternary = ReferenceHull(entries=hull.entries + [_entry("BaTiO3", -8.2)], name="ternary")
    assert with_ternary.coverage_gap(Composition("BaTiO3")) is None
    assert with_ternary.coverage_gap(Composition("Ba2TiO4")) is None  # beneath it: BaO + BaTiO3


def test_stability_summary_reports_coverage_and_upper_bound(tiny_hull: ReferenceHull, tmp_path: Path) -> None:
    from pipeline.common.parallel import ComputeConfig
    from pipeline.crystals.results import ScoredCrystals
    from pipeline.crystals.score.config import CrystalScoreConfig
    from pipeline.crystals.score.score import _stability
    from pipeline.crystals.score.report import plot_scores, stability_label

    def cell(species: list[str]) -> Structure:
        coords = [[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0, 0], [0, 0.5, 0]][:len(species)]
        return Structure(Lattice.cubic(5.0), species, coords)

    sts = [cell(["Na", "Cl"]), cell(["K", "Cl"]), cell(["K", "K", "O"]), cell(["Na", "Cl", "O"])]
    e = [-3.5, -5.0, -5.0, -2.0]  # NaCl below the hull; KCl, K2O far below the elements; NaClO above
    table = pd.DataFrame({"n_elements": [2, 2, 2, 3], "struct_valid": [True] * 4})
    compute = ComputeConfig(cache_dir=False, progress=False)
    st = _stability(sts, table, tiny_hull, e, CrystalScoreConfig(), None, compute)
    assert table["hull_covered"].tolist() == [True, False, False, False]
    assert table["stable"].tolist() == [True, True, True, False]
    notes = table["e_hull_note"].tolist()
    assert notes[0] == "" and all(n.startswith("not covered: ") for n in notes[1:]), notes  # every uncovered row
    assert st.stable_rate == 0.75 and st.hull_coverage == 0.25
    assert st.stable_rate_is_upper_bound is True and st.n_stable_hull_covered == 1
    assert stability_label(st) == "stable 75.0 % (upper bound: hull covers 25.0 % of samples)"
    assert stability_label(replace(st, stable_rate=0.25, hull_coverage=1.0, stable_rate_is_upper_bound=False)) \
        == "stable 25.0 %"
    assert stability_label(None) == "stable -"
    summary = ScoreSummary(n_structures=4, n_reference=2, dataset=None, struct_valid=1.0, comp_valid=1.0, valid=1.0,
                           cov_recall=0.0, cov_precision=0.0, struc_cutoff=0.1, comp_cutoff=10.0,
                           wdist_density=0.5, wdist_num_elems=0.5, n_wdist_samples=4, wdist_seed=0,
                           n_struct_fp_failed=0, stability=st)
    scores = ScoredCrystals(table=table.assign(density=[1.0, 2.0, 3.0, 4.0], in_wdist_sample=True), summary=summary,
                            reference={"density": np.array([1.5, 2.5]), "n_elements": np.array([2, 3])})
    assert (tmp_path / "e_hull.png") in plot_scores(scores, tmp_path)


def test_uniqueness_and_novelty_are_computed_for_unstable_rows_too(tiny_hull: ReferenceHull) -> None:
    """Stability is a column to filter on, not a gate: ``unique`` and ``novel`` are set for every row; S.U.N.
    keeps the protocol's uniqueness among the stable rows."""
    from pipeline.common.parallel import ComputeConfig
    from pipeline.crystals.score.config import CrystalScoreConfig
    from pipeline.crystals.score.score import _stability

    nacl = Structure(Lattice.cubic(5.0), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    kcl = Structure(Lattice.cubic(5.2), ["K", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    sts = [nacl, nacl.copy(), kcl]
    table = pd.DataFrame({"n_elements": [2, 2, 2], "struct_valid": [True] * 3})
    st = _stability(sts, table, tiny_hull, [-1.0, -3.5, -5.0], CrystalScoreConfig(), [kcl],
                    ComputeConfig(cache_dir=False, progress=False))
    assert table["stable"].tolist() == [False, True, True]
    assert table["unique"].tolist() == [True, False, True]  # the unstable first NaCl is unique
    assert table["novel"].tolist() == [True, True, False]  # novelty of the unstable row too
    assert table["sun"].tolist() == [False, True, False]  # the first *stable* NaCl counts for S.U.N.
    assert st.unique_rate == pytest.approx(2 / 3) and st.novel_rate == pytest.approx(2 / 3)
    assert st.unique_among_stable == 1.0 and st.n_sun == 1
