"""benchmarks/csp.py and its helper benchmarks/csp_match.py: the seeded subsets, the DiffCSP / FlowMM matching and
its summary, the CSP start state of the direct path, and the command line's refusals."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

import csp_match  # noqa: E402


def perovskite(a: float = 4.0, b_site: str = "Ti", a_site: str = "Ba", shift: float = 0.0):
    """Cubic ABO3 with ``b_site`` octahedral (body centre) and ``a_site`` at the corner; ``shift`` moves the B
    cation along x (fractional)."""
    from pymatgen.core import Lattice, Structure

    return Structure(Lattice.cubic(a), [a_site, b_site, "O", "O", "O"],
                     [[0, 0, 0], [0.5 + shift, 0.5, 0.5], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]])


def test_subsets_are_seeded_and_disjoint() -> None:
    rep, tune = csp_match.subsets(1000, 100, seed=0)
    assert len(rep) == len(tune) == 100
    assert not set(rep) & set(tune)
    again, _ = csp_match.subsets(1000, 100, seed=0)
    assert np.array_equal(rep, again)
    other, _ = csp_match.subsets(1000, 100, seed=1)
    assert not np.array_equal(rep, other)
    # a larger reported subset keeps the smaller one's crystals (the prefix of one permutation)
    bigger, _ = csp_match.subsets(1000, 200, seed=0)
    assert set(rep) <= set(bigger)


def test_match_rms_of_the_protocol() -> None:
    from pymatgen.analysis.structure_matcher import StructureMatcher

    m = StructureMatcher(**csp_match.MATCHER)
    truth = perovskite(shift=0.05)
    assert csp_match.match_rms(m, truth.copy(), truth) == pytest.approx(0.0, abs=1e-6)
    # a uniformly scaled cell matches exactly (the matcher scales volumes); a displaced cation costs RMSE
    assert csp_match.match_rms(m, perovskite(4.4, shift=0.05), truth) == pytest.approx(0.0, abs=1e-6)
    rms = csp_match.match_rms(m, perovskite(shift=0.0), truth)
    assert 0.0 < rms < 0.05
    # the other polymorph of the composition (cations swapped between A and B sites) does not match
    assert np.isnan(csp_match.match_rms(m, perovskite(b_site="Ba", a_site="Ti"), truth))
    # invalid samples never count: a decode failure (falsy) and two atoms 0.2 A apart
    assert np.isnan(csp_match.match_rms(m, None, truth))
    crowded = perovskite()
    crowded.replace(2, "O", [0.05, 0.0, 0.0])
    assert not csp_match.valid_sample(crowded)
    assert np.isnan(csp_match.match_rms(m, crowded, truth))


def test_summary_takes_the_best_of_the_first_k() -> None:
    nan = np.nan
    rms = np.array([[0.1, 0.02, nan], [nan, nan, 0.3], [nan, nan, nan], [0.05, nan, 0.01]])
    one = csp_match.summarize(rms, 1)
    assert one["match_rate"] == 0.5 and one["rmse"] == pytest.approx(0.075) and one["n_matched"] == 2
    two = csp_match.summarize(rms, 2)
    assert two["match_rate"] == 0.5 and two["rmse"] == pytest.approx((0.02 + 0.05) / 2)
    three = csp_match.summarize(rms)
    assert three["match_rate"] == 0.75 and three["rmse"] == pytest.approx((0.02 + 0.3 + 0.01) / 3)
    picked = csp_match.pick_rows(rms, np.array([1, -1, 0, 2]))
    assert csp_match.summarize(picked)["match_rate"] == 0.5
    assert csp_match.summarize(picked)["rmse"] == pytest.approx(0.015)


def test_lowest_energy_skips_invalid_samples() -> None:
    good, crowded = perovskite(), perovskite()
    crowded.replace(2, "O", [0.05, 0.0, 0.0])
    samples = [[good, crowded, good], [None, crowded, None]]
    energies = np.array([[-5.0, -9.0, -6.0], [-1.0, -2.0, -3.0]])
    assert csp_match.lowest_energy(energies, samples).tolist() == [2, -1]


def test_training_overlap_tells_polymorphs_from_duplicates() -> None:
    truth = perovskite()
    cats = csp_match.training_overlap([truth, perovskite(b_site="Zr")],
                                      [perovskite(b_site="Ba", a_site="Ti"), perovskite(4.2)])
    assert cats == ["same_structure", "new"]
    assert csp_match.training_overlap([truth], [perovskite(b_site="Ba", a_site="Ti")]) == ["same_composition"]


@pytest.mark.parametrize("dataset", ["perov_5", "carbon_24"])
def test_composition_template_reveals_only_the_elements(dataset: str) -> None:
    import torch

    from pipeline.crystals.flow import FRAC_OFFSET, N_RING, load_crystal_model
    from structures.crystals.tokens import (
        MASK,
        PAD,
        TokenKind,
        encode_batch,
        position_kinds,
    )

    model = load_crystal_model(dataset)
    if dataset == "perov_5":
        truths = [perovskite(), perovskite(b_site="Zr", a_site="Sr")]
    else:
        from pymatgen.core import Lattice, Structure

        truths = [Structure(Lattice.cubic(3.57), ["C"] * 8, [[0, 0, 0], [0, .5, .5], [.5, 0, .5], [.5, .5, 0],
                                                             [.25, .25, .25], [.25, .75, .75], [.75, .25, .75],
                                                             [.75, .75, .25]]),
                  Structure(Lattice.hexagonal(2.46, 6.7), ["C"] * 4,
                            [[0, 0, .25], [0, 0, .75], [1 / 3, 2 / 3, .25], [2 / 3, 1 / 3, .75]])]
    x0, fixed, atom_mask = csp_match.composition_template(model, truths, torch.Generator().manual_seed(0))
    ref = torch.as_tensor(encode_batch(truths).tokens)
    kinds = torch.as_tensor(position_kinds(atom_mask.shape[1]))
    real = torch.cat([torch.ones(len(truths), 6, dtype=torch.bool), atom_mask.repeat_interleave(4, 1)], 1)
    element = (kinds == int(TokenKind.ELEMENT))[None] & real
    assert torch.equal(x0[element], ref[element])
    assert bool((x0[~real] == PAD).all()) and bool(fixed[~real].all())
    assert bool(fixed[element].all()) and not bool(fixed[real & ~element].any())
    assert bool((x0[:, :6] == MASK).all())
    coords = x0[(kinds == int(TokenKind.FRAC))[None] & real]
    if model.coords.metric:  # the metric path's source: uniform on the ring
        assert bool(((coords >= FRAC_OFFSET) & (coords < FRAC_OFFSET + N_RING)).all())
    else:
        assert bool((coords == MASK).all())


@pytest.mark.parametrize("argv", [["--dataset", "perov_5", "--k", "0"], ["--dataset", "perov_5", "--k", "a"],
                                  ["--dataset", "perov_5", "--rank", "relaxed"],
                                  ["--dataset", "perov_5", "--temperature", "0"]])
def test_bad_arguments_exit_2_before_writing(argv: list[str], tmp_path: Path) -> None:
    out = tmp_path / "csp.json"
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "csp.py"), *argv, "--out", str(out)],
                       capture_output=True, text=True, timeout=120, check=False)
    assert r.returncode == 2, r.stderr
    assert "error" in r.stderr.splitlines()[-1]
    assert not out.exists()
