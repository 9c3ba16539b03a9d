"""Score a set of crystals against a reference set: every per-structure quantity in one table
and the aggregate metrics (CDVAE validity / COV / property distances; stability; S.U.N.).

:func:`score_structures` works on structures in memory; :func:`pipeline.crystals.score.run.score_crystals`
reads the inputs, builds the hull and writes the run folder around it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from pipeline.common.hashing import structure_hash
from pipeline.common.io import CrystalInput
from pipeline.common.parallel import ComputeConfig
from pipeline.crystals.results import ScoredCrystals
from pipeline.crystals.score.config import CrystalScoreConfig
from pipeline.crystals.score.coverage import coverage
from pipeline.crystals.score.fingerprints import Fingerprints, compute_fingerprints
from pipeline.crystals.score.properties import density, n_elements, property_wdists, sample_valid
from pipeline.crystals.score.summary import ScoreSummary, StabilitySummary
from pipeline.crystals.score.validity import compositional_validity, structural_validity
from structures.errors import InputError

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    from pymatgen.core import Structure

    from pipeline.crystals.score.hull import ReferenceHull

__all__ = ["ScoredCrystals", "add_rates_over_all", "basic_properties", "score_structures"]


def basic_properties(structures: Sequence["Structure"]) -> dict[str, np.ndarray]:
    """Validity flags, density (g/cm^3), number of elements, atoms per cell: [N] each."""
    sv = np.array([structural_validity(s) for s in structures], dtype=bool)
    cv = np.array([compositional_validity(s) for s in structures], dtype=bool)
    return {"struct_valid": sv, "comp_valid": cv, "valid": sv & cv,
            "density": np.array([density(s) for s in structures], dtype=float),
            "n_elements": np.array([n_elements(s) for s in structures], dtype=int),
            "n_atoms": np.array([len(s) for s in structures], dtype=int)}


def add_rates_over_all(summary: ScoreSummary, n_decoded: int, n_samples: int) -> ScoreSummary:
    """Set the ``<rate>_all`` fields of a :func:`score_structures` summary of the ``n_decoded`` crystals decoded
    from ``n_samples`` generated ones: validity and COV-P over *all* samples, a decode failure counting as
    invalid and as a miss (the CDVAE protocol's denominator). Returns ``summary``
    (:meth:`ScoreSummary.add_rates_over_all`)."""
    return summary.add_rates_over_all(n_decoded, n_samples)


def _as_input(value: Any, name: str) -> CrystalInput:
    from pipeline.crystals.inputs import as_crystal_input

    return as_crystal_input(value, name)


def score_structures(structures: "CrystalInput | Sequence[Structure]", reference: "CrystalInput | Sequence[Structure]",
                     config: CrystalScoreConfig, *, hull: "ReferenceHull | None" = None,
                     energies: Sequence[float] | None = None, training: Sequence["Structure"] | None = None,
                     compute: ComputeConfig | None = None) -> ScoredCrystals:
    """Score ``structures`` (as if generated) against ``reference`` (the test set); ``config`` says what is
    measured (:class:`CrystalScoreConfig`; its ``reference``, ``hull`` and ``energies`` fields are read by the run
    around this function, which passes them in here).

    Args:
        structures: a :class:`CrystalInput` (ids; unusable items become rows with ``usable`` False and their
            ``problem``) or structures (ids ``s000000``...). Metrics are over the usable ones; the ``<rate>_all``
            fields of the summary over all inputs.
        reference: the reference structures (its unusable items are left out).
        hull: the reference hull for E_hull (None: no stability metrics).
        energies: CHGNet energies per atom, one per input (NaN where none); when None and a hull is given,
            static CHGNet energies (``config.chgnet``) of the given geometries are computed.
        training: structures for novelty (None: novelty and S.U.N. not reported).
        compute: fan-out of the fingerprints and the cache (default: ``config.compute()``).
    """
    inp = _as_input(structures, "score(structures=...)")
    ref = _as_input(reference, "CrystalScoreConfig.reference")
    compute = compute or config.compute()
    ok = [i for i, p in enumerate(inp.problems) if p is None]
    if not ok:
        raise InputError(f"{inp.source}: none of the {len(inp)} structures can be scored "
                         f"(e.g. {inp.ids[0]}: {inp.problems[0]})" if len(inp) else f"{inp.source}: no structures")
    if energies is not None and len(energies) != len(inp):
        raise InputError(f"CrystalScoreConfig.energies: {len(energies)} energies for {len(inp)} structures")
    usable = [inp.structures[i] for i in ok]
    ref_structures = [s for s in ref.structures if s is not None]
    table, metrics, ref_props = _metrics(usable, [inp.ids[i] for i in ok], ref_structures, config, compute)
    stability = None
    if hull is not None:
        e = None if energies is None else np.asarray(energies, dtype=float)[ok]
        stability = _stability(usable, table, hull, e, config, training, compute)
    summary = ScoreSummary(**metrics, stability=stability, n_input=len(inp), n_unusable=len(inp) - len(ok),
                           input=inp.source, reference_source=ref.source)
    summary.add_rates_over_all(len(ok), len(inp))
    return ScoredCrystals(table=_with_unusable(table, inp), summary=summary, reference=ref_props)


def _metrics(structures: list["Structure"], ids: list[str], reference: list["Structure"],
             config: CrystalScoreConfig, compute: ComputeConfig
             ) -> tuple["pd.DataFrame", dict[str, Any], dict[str, np.ndarray]]:
    """The per-structure table of the usable structures, the CDVAE metrics (ScoreSummary fields) and the
    reference's density and N_el."""
    import pandas as pd

    s_cut, c_cut = config.cutoffs()
    n = len(structures)
    gen = basic_properties(structures)
    ref_density = np.array([density(s) for s in reference], dtype=float)
    ref_nel = np.array([n_elements(s) for s in reference], dtype=int)

    keys = [structure_hash(s) for s in list(structures) + list(reference)]
    fps = compute_fingerprints(list(structures) + list(reference), workers=compute.workers,
                               scheduler=compute.dask_scheduler, backend=compute.backend,
                               cache_dir=compute.cache_dir, keys=keys, progress=compute.progress)
    cov = coverage(Fingerprints(fps.struct[:n], fps.comp[:n], fps.struct_ok[:n]),
                   Fingerprints(fps.struct[n:], fps.comp[n:], fps.struct_ok[n:]), s_cut, c_cut, n_generated=n)
    sample = sample_valid(gen["valid"], config.n_samples, config.seed)
    wd = property_wdists(gen["density"], gen["n_elements"], ref_density, ref_nel, sample)
    in_sample = np.zeros(n, dtype=bool)
    in_sample[sample] = True

    table = pd.DataFrame({
        "id": ids, "formula": [s.composition.reduced_formula for s in structures],
        "n_atoms": gen["n_atoms"], "n_elements": gen["n_elements"], "density": gen["density"],
        "struct_valid": gen["struct_valid"], "comp_valid": gen["comp_valid"], "valid": gen["valid"],
        "struct_fp_ok": fps.struct_ok[:n], "cov_struct_dist": cov.struct_precision_dist,
        "cov_comp_dist": cov.comp_precision_dist,
        "cov_precision_hit": (np.nan_to_num(cov.struct_precision_dist, nan=np.inf) <= s_cut)
        & (np.nan_to_num(cov.comp_precision_dist, nan=np.inf) <= c_cut),
        "in_wdist_sample": in_sample, "content_hash": keys[:n],
    })
    metrics = dict(
        n_structures=n, n_reference=len(reference), dataset=config.cutoff_dataset(),
        struct_valid=float(gen["struct_valid"].mean()) if n else float("nan"),
        comp_valid=float(gen["comp_valid"].mean()) if n else float("nan"),
        valid=float(gen["valid"].mean()) if n else float("nan"),
        cov_recall=cov.cov_recall, cov_precision=cov.cov_precision,
        struc_cutoff=s_cut, comp_cutoff=c_cut,
        wdist_density=wd["wdist_density"], wdist_num_elems=wd["wdist_num_elems"],
        n_wdist_samples=int(len(sample)), wdist_seed=config.seed,
        n_struct_fp_failed=int((~fps.struct_ok[:n]).sum()),
        note=(f"only {len(sample)} valid structures (< {config.n_samples}); property distances use all of them"
              if len(sample) < config.n_samples else None),
    )
    return table, metrics, {"density": ref_density, "n_elements": ref_nel}


def _with_unusable(table: "pd.DataFrame", inp: CrystalInput) -> "pd.DataFrame":
    """``table`` (the usable inputs) with the ``usable`` / ``problem`` columns and one row per unusable input,
    in input order."""
    import pandas as pd

    table.insert(1, "usable", True)
    table.insert(2, "problem", "")
    bad = [i for i, p in enumerate(inp.problems) if p is not None]
    if not bad:
        return table
    rows = pd.DataFrame({"id": [inp.ids[i] for i in bad], "usable": False, "problem": [inp.problems[i] for i in bad]})
    table = pd.concat([table, rows], ignore_index=True)
    order = {n: k for k, n in enumerate(inp.ids)}
    return table.sort_values("id", key=lambda c: c.map(order)).reset_index(drop=True)


def _stability(structures: Sequence["Structure"], table: "pd.DataFrame", hull: "ReferenceHull",
               energies: Sequence[float] | None, config: CrystalScoreConfig, training: Sequence["Structure"] | None,
               compute: ComputeConfig) -> StabilitySummary:
    """E_hull, stable, hull coverage and unique (/ novel, S.U.N. with ``training``) columns added to ``table``;
    their summary. Uniqueness and novelty are computed for every row, stable or not (stability is a column to
    filter on); S.U.N. keeps the protocol's uniqueness among the stable rows. ``e_hull_note`` says why E_hull is
    missing and, for every row the hull does not cover, that it is not covered."""
    from pipeline.crystals.score.energies import chgnet_energies
    from pipeline.crystals.score.stability import first_of_class, hull_coverage, match_classes, novel_mask, stable_mask

    progress, threshold = compute.progress, config.e_hull_threshold
    if energies is None:
        e = chgnet_energies(structures, model=config.chgnet, relax=False, cache_dir=compute.cache_dir,
                            progress=progress)
        source = f"CHGNet {config.chgnet} static (given geometries)"
    else:
        e = np.asarray(energies, dtype=float)
        if len(e) != len(structures):
            raise InputError(f"CrystalScoreConfig.energies: {len(e)} energies for {len(structures)} structures")
        source = "given"
    comps = [s.composition for s in structures]
    e_hull, why = hull.e_above_hull(comps, e)
    invalid = ~table["struct_valid"].to_numpy(dtype=bool)  # atoms too close: no energy is meaningful
    e_hull = np.where(invalid, np.nan, e_hull)
    why = ["structurally invalid (atoms < 0.5 A apart): no E_hull" if bad else w for w, bad in zip(why, invalid)]
    gaps = [hull.coverage_gap(c) for c in comps]
    covered = np.array([g is None for g in gaps], dtype=bool)
    stable = stable_mask(e_hull, table["n_elements"].to_numpy(), threshold)
    every = np.ones(len(structures), dtype=bool)
    classes = match_classes(structures, every, progress=progress)
    unique = first_of_class(classes, every)
    unique_stable = first_of_class(classes, stable)
    table["energy_per_atom"] = e
    table["e_hull"] = e_hull
    table["e_hull_note"] = ["; ".join(x for x in (w, g) if x) for w, g in zip(why, gaps)]
    table["stable"] = stable
    table["unique"] = unique  # among every scored row
    table["hull_covered"] = covered  # every element meets a hull compound beneath the sample (else a lower bound)
    n = len(structures)
    finite = e_hull[np.isfinite(e_hull)]
    cov = hull_coverage(covered, table["n_elements"].to_numpy())
    summary = StabilitySummary(
        hull=hull.name, energy_source=source, e_hull_threshold=threshold,
        n_e_hull=int(len(finite)),
        e_hull_quantiles={q: float(np.quantile(finite, float(q))) for q in ("0.05", "0.25", "0.5", "0.75", "0.95")}
        if len(finite) else {},
        stable_rate=float(stable.sum() / n) if n else float("nan"),
        n_stable=int(stable.sum()),
        unique_among_stable=float(unique_stable.sum() / stable.sum()) if stable.any() else float("nan"),
        hull_coverage=float(cov["hull_coverage"]), n_hull_covered=int(cov["n_hull_covered"]),
        n_hull_coverable=int(cov["n_hull_coverable"]),
        stable_rate_is_upper_bound=bool(cov["stable_rate_is_upper_bound"]),
        n_stable_hull_covered=int((stable & covered).sum()),
        unique_rate=float(unique.sum() / n) if n else float("nan"),
    )
    if training is not None:
        novel = novel_mask(structures, training, every, progress=progress)
        sun = stable & unique_stable & novel
        table["novel"] = novel
        table["sun"] = sun
        summary.sun_rate = float(sun.sum() / n) if n else float("nan")
        summary.n_sun = int(sun.sum())
        summary.novel_rate = float(novel.sum() / n) if n else float("nan")
    return summary
