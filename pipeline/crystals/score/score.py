"""Score a set of crystals against a reference set: every per-structure quantity in one table
and the aggregate metrics (CDVAE validity / COV / property distances; stability; S.U.N.)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Sequence

import numpy as np

from pipeline.common.hashing import structure_hash
from pipeline.common.parallel import ComputeConfig
from pipeline.crystals.score.coverage import coverage, cutoffs_for
from pipeline.crystals.score.fingerprints import compute_fingerprints
from pipeline.crystals.score.properties import N_SAMPLES, density, n_elements, property_wdists, sample_valid
from pipeline.crystals.score.summary import ScoreSummary, StabilitySummary
from pipeline.crystals.score.validity import compositional_validity, structural_validity
from structures.errors import InputError

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    from pymatgen.core import Structure

    from pipeline.crystals.score.hull import ReferenceHull


@dataclass
class CrystalScores:
    """``table``: one row per scored structure; ``summary``: aggregate metrics (:class:`ScoreSummary`);
    ``reference``: density and N_el of the reference set (for plots)."""

    table: "pd.DataFrame"
    summary: ScoreSummary
    reference: dict[str, np.ndarray] = field(default_factory=dict)


def basic_properties(structures: Sequence["Structure"]) -> dict[str, np.ndarray]:
    """Validity flags, density (g/cm^3), number of elements, atoms per cell: [N] each."""
    sv = np.array([structural_validity(s) for s in structures], dtype=bool)
    cv = np.array([compositional_validity(s) for s in structures], dtype=bool)
    return {"struct_valid": sv, "comp_valid": cv, "valid": sv & cv,
            "density": np.array([density(s) for s in structures], dtype=float),
            "n_elements": np.array([n_elements(s) for s in structures], dtype=int),
            "n_atoms": np.array([len(s) for s in structures], dtype=int)}


def add_rates_over_all(summary: ScoreSummary, n_decoded: int, n_samples: int) -> ScoreSummary:
    """Set the ``<rate>_all`` fields of a :func:`score_crystals` summary of the ``n_decoded`` crystals decoded
    from ``n_samples`` generated ones: validity and COV-P over *all* samples, a decode failure counting as
    invalid and as a miss (the CDVAE protocol's denominator). Returns ``summary``
    (:meth:`ScoreSummary.add_rates_over_all`)."""
    return summary.add_rates_over_all(n_decoded, n_samples)


@dataclass(frozen=True)
class ScoreConfig:
    """What is measured (CDVAE protocol + stability).

    ``dataset`` picks the CDVAE coverage cutoffs (perov_5, carbon_24, mp_20) unless both cutoffs are
    given; ``n_samples`` valid crystals are drawn (``seed``) for the Wasserstein distances (CDVAE:
    1,000); stable means E_hull <= ``e_hull_threshold`` (eV/atom); ``energy_model`` is the CHGNet
    version for energies that are not given.
    """

    dataset: str | None = None
    struc_cutoff: float | None = None
    comp_cutoff: float | None = None
    n_samples: int = N_SAMPLES
    seed: int = 0
    e_hull_threshold: float = 0.0
    energy_model: str = "0.3.0"

    def validate(self) -> None:
        for name in ("struc_cutoff", "comp_cutoff"):
            v = getattr(self, name)
            if v is not None and not (np.isfinite(v) and v > 0):
                raise InputError(f"{name} must be a finite positive number, got {v}")
        if not np.isfinite(self.e_hull_threshold):
            raise InputError(f"e_hull_threshold must be a finite number, got {self.e_hull_threshold}")
        if self.n_samples < 1:
            raise InputError(f"n_samples must be >= 1, got {self.n_samples}")
        try:
            cutoffs_for(self.dataset, self.struc_cutoff, self.comp_cutoff)
        except (KeyError, ValueError) as exc:
            raise InputError(str(exc).strip("'\"")) from None


def score_crystals(structures: Sequence["Structure"], reference: Sequence["Structure"], *,
                   config: ScoreConfig = ScoreConfig(), compute: ComputeConfig = ComputeConfig(),
                   hull: "ReferenceHull | None" = None, energies: Sequence[float] | None = None,
                   training: Sequence["Structure"] | None = None, ids: Sequence[str] | None = None) -> CrystalScores:
    """Score ``structures`` (as if generated) against ``reference`` (the test set).

    Args:
        config: the metrics' settings (:class:`ScoreConfig`).
        compute: fan-out of the fingerprints and the cache (:class:`ComputeConfig`).
        hull: reference hull for E_hull (None: no stability metrics).
        energies: CHGNet energies per atom of ``structures`` (e.g. from ``relax``); when None and
            a hull is given, static CHGNet energies of the given geometries are computed.
        training: structures for novelty (None: novelty and S.U.N. not reported).
    """
    config.validate()
    dataset, n_samples, seed = config.dataset, config.n_samples, config.seed
    workers, scheduler, backend = compute.workers, compute.dask_scheduler, compute.backend
    cache_dir, progress = compute.cache_dir, compute.progress
    energy_model, e_hull_threshold = config.energy_model, config.e_hull_threshold
    import pandas as pd

    s_cut, c_cut = cutoffs_for(dataset, config.struc_cutoff, config.comp_cutoff)
    n = len(structures)
    ids = list(ids) if ids is not None else [str(i) for i in range(n)]
    gen = basic_properties(structures)
    ref_density = np.array([density(s) for s in reference], dtype=float)
    ref_nel = np.array([n_elements(s) for s in reference], dtype=int)

    keys = [structure_hash(s) for s in list(structures) + list(reference)]
    fps = compute_fingerprints(list(structures) + list(reference), workers=workers, scheduler=scheduler,
                               backend=backend, cache_dir=cache_dir, keys=keys, progress=progress)
    cov = coverage(fps.struct[:n], fps.comp[:n], fps.struct[n:], fps.comp[n:], s_cut, c_cut,
                   gen_ok=fps.struct_ok[:n], ref_ok=fps.struct_ok[n:], n_generated=n)
    sample = sample_valid(gen["valid"], n_samples, seed)
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
    summary = ScoreSummary(
        n_structures=n, n_reference=len(reference), dataset=dataset,
        struct_valid=float(gen["struct_valid"].mean()) if n else float("nan"),
        comp_valid=float(gen["comp_valid"].mean()) if n else float("nan"),
        valid=float(gen["valid"].mean()) if n else float("nan"),
        cov_recall=cov.cov_recall, cov_precision=cov.cov_precision,
        struc_cutoff=s_cut, comp_cutoff=c_cut,
        wdist_density=wd["wdist_density"], wdist_num_elems=wd["wdist_num_elems"],
        n_wdist_samples=int(len(sample)), wdist_seed=seed,
        n_struct_fp_failed=int((~fps.struct_ok[:n]).sum()),
    )
    if len(sample) < n_samples:
        summary.note = (f"only {len(sample)} valid structures (< {n_samples}); "
                        "property distances use all of them")
    if hull is not None:
        summary.stability = _stability(structures, table, hull, energies, energy_model, e_hull_threshold,
                                       training, cache_dir, progress)
    return CrystalScores(table=table, summary=summary,
                         reference={"density": ref_density, "n_elements": ref_nel})


def _stability(structures: Sequence["Structure"], table: "pd.DataFrame",
               hull: "ReferenceHull", energies: Sequence[float] | None, energy_model: str,
               threshold: float, training: Sequence["Structure"] | None,
               cache_dir: str | os.PathLike | None | bool, progress: bool) -> StabilitySummary:
    """E_hull, stable / unique (/ novel, S.U.N. with ``training``) columns added to ``table``; their summary."""
    from pipeline.crystals.score.energies import chgnet_energies
    from pipeline.crystals.score.stability import hull_coverage, novel_mask, stable_mask, unique_mask

    if energies is None:
        e = chgnet_energies(structures, model=energy_model, relax=False, cache_dir=cache_dir, progress=progress)
        source = f"CHGNet {energy_model} static (given geometries)"
    else:
        e = np.asarray(energies, dtype=float)
        if len(e) != len(structures):
            raise ValueError(f"{len(e)} energies for {len(structures)} structures")
        source = "given"
    e_hull, why = hull.e_above_hull([s.composition for s in structures], e)
    invalid = ~table["struct_valid"].to_numpy(dtype=bool)  # atoms too close: no energy is meaningful
    e_hull = np.where(invalid, np.nan, e_hull)
    why = np.where(invalid, "structurally invalid (atoms < 0.5 A apart): no E_hull", np.asarray(why, dtype=object))
    stable = stable_mask(e_hull, table["n_elements"].to_numpy(), threshold)
    unique = unique_mask(structures, stable, progress=progress)
    table["energy_per_atom"] = e
    table["e_hull"] = e_hull
    table["e_hull_note"] = why
    table["stable"] = stable
    table["unique"] = unique
    covered = hull.covers([s.composition for s in structures])
    table["hull_covered"] = covered  # a compound of the hull lies in the chemical system (else E_hull is a lower bound)
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
        unique_among_stable=float(unique.sum() / stable.sum()) if stable.any() else float("nan"),
        hull_coverage=float(cov["hull_coverage"]), n_hull_covered=int(cov["n_hull_covered"]),
        n_hull_coverable=int(cov["n_hull_coverable"]),
        stable_rate_is_upper_bound=bool(cov["stable_rate_is_upper_bound"]),
        n_stable_hull_covered=int((stable & covered).sum()),
    )
    if training is not None:
        novel = novel_mask(structures, training, stable & unique, progress=progress)
        sun = stable & unique & novel
        table["novel"] = novel
        table["sun"] = sun
        summary.sun_rate = float(sun.sum() / n) if n else float("nan")
        summary.n_sun = int(sun.sum())
    return summary
