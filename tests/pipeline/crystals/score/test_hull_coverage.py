"""Hull coverage: the share of samples whose chemical system holds a non-elemental reference entry; below
100 % the stable rate is an upper bound (summary keys, text label, E_hull plot)."""

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
    # NaCl lies in Na-Cl and in Na-Cl-O; K-Cl and K-O hold no compound; Na is elemental
    assert covered.tolist() == [True, True, False, True, False, False]
    n_el = np.array([len(c.elements) for c in comps])
    cov = hull_coverage(covered, n_el)
    assert cov["n_hull_coverable"] == 5 and cov["n_hull_covered"] == 3  # the elemental sample cannot be stable
    assert cov["hull_coverage"] == pytest.approx(0.6) and cov["stable_rate_is_upper_bound"] is True
    full = hull_coverage(covered[[0, 1, 3]], n_el[[0, 1, 3]])
    assert full["hull_coverage"] == 1.0 and full["stable_rate_is_upper_bound"] is False


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
    assert table["hull_covered"].tolist() == [True, False, False, True]
    assert table["stable"].tolist() == [True, True, True, False]
    assert st.stable_rate == 0.75 and st.hull_coverage == 0.5
    assert st.stable_rate_is_upper_bound is True and st.n_stable_hull_covered == 1
    assert stability_label(st) == "stable 75.0 % (upper bound: hull covers 50.0 % of samples)"
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
