"""The settings of the campaign stages that are not pipeline verbs (filter, deduplicate, rank, export) and the
columns of the score tables they read.

The score columns are those written to ``scores.csv`` by :func:`pipeline.crystals.score.score.score_structures`
(``_metrics``; with a hull ``_stability``, with ``training`` novelty / S.U.N.) and by
:func:`pipeline.proteins.score.summary` (``_table``: geometry, DSSP and ProteinMPNN records of
:func:`pipeline.proteins.score.score.score_sample`; ESMFold designability with a folding model; ``cluster`` with
diversity; novelty with a reference); in a campaign with a relax stage also :data:`RELAX_COLUMNS`. Each is
typed :data:`~workflows.design.expressions.BOOL`, ``NUM`` or ``STR`` for the static checks of filter expressions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from workflows.design.expressions import BOOL, NUM, STR, Expression

__all__ = ["CRYSTAL_COLUMNS", "EXPORT_FORMATS", "PROTEIN_COLUMNS", "RANK_METHODS", "RELAX_COLUMNS",
           "DeduplicateSettings", "ExportSettings", "FilterSettings", "RankSettings", "missing_column_hint",
           "score_columns"]

_B, _N, _S = BOOL, NUM, STR
CRYSTAL_COLUMNS: dict[str, str] = {
    "id": _S, "usable": _B, "problem": _S, "formula": _S, "n_atoms": _N, "n_elements": _N, "density": _N,
    "struct_valid": _B, "comp_valid": _B, "valid": _B, "struct_fp_ok": _B, "cov_struct_dist": _N,
    "cov_comp_dist": _N, "cov_precision_hit": _B, "in_wdist_sample": _B, "content_hash": _S}
CRYSTAL_HULL_COLUMNS: dict[str, str] = {"energy_per_atom": _N, "e_hull": _N, "e_hull_note": _S, "stable": _B,
                                        "unique": _B, "hull_covered": _B}
CRYSTAL_NOVELTY_COLUMNS: dict[str, str] = {"novel": _B, "sun": _B}
PROTEIN_COLUMNS: dict[str, str] = {
    "id": _S, "status": _S, "problem": _S, "length": _N, "radius_of_gyration": _N, "ca_ca_mean": _N,
    "n_ca_ca_outliers": _N, "n_chain_breaks": _N, "n_ca_clashes": _N, "n_atom_clashes": _N, "helix": _N,
    "strand": _N, "coil": _N, "dssp": _S, "codesigned": _B, "mpnn_sequences": _S, "mpnn_log_likelihoods": _S,
    "mpnn_log_likelihood": _N, "codesign_log_likelihood": _N, "mpnn_recovery": _N}
PROTEIN_FOLDING_COLUMNS: dict[str, str] = {"scrmsds": _S, "scrmsd": _N, "best_sequence": _S, "designable": _B,
                                           "codesign_scrmsd": _N, "codesign_designable": _B}
PROTEIN_DIVERSITY_COLUMNS: dict[str, str] = {"cluster": _N}
PROTEIN_NOVELTY_COLUMNS: dict[str, str] = {"max_tm": _N, "novelty": _N, "nearest_reference": _S}
#: columns a relax stage adds to the campaign table (joined by id after score, :func:`workflows.design.select.
#: join_relax`): ``relax_converged`` (crystals: FIRE reached fmax; proteins: no violation left, status "relaxed";
#: false for a step-limited or failed relaxation); the numbers of relax_results, NaN where the relaxation failed.
#: Crystals (CHGNet, eV/atom): final energy, its drop from the input geometry, FIRE steps, final max force (eV/A).
#: Proteins (Amber99SB, kcal/mol/residue): energy after, its drop, heavy-atom clashes, bond violations and backbone
#: clashes after, backbone RMSD to the input (A), outer iterations, unrestrained residues.
RELAX_COLUMNS: dict[str, dict[str, str]] = {
    "crystals": {"relax_converged": _B, "relax_energy_per_atom": _N, "relax_energy_drop_per_atom": _N,
                 "relax_steps": _N, "relax_fmax": _N},
    "proteins": {"relax_converged": _B, "relax_energy_per_residue": _N, "relax_energy_drop_per_residue": _N,
                 "relax_clashes_after": _N, "relax_bond_violations_after": _N, "relax_bb_clashes_after": _N,
                 "relax_backbone_rmsd": _N, "relax_outer_iterations": _N, "relax_n_unrestrained": _N}}
#: columns a rank stage adds, per method
RANK_COLUMNS: dict[str, dict[str, str]] = {"weighted": {"rank": _N, "rank_score": _N},
                                           "pareto": {"rank": _N, "pareto_front": _N}}
RANK_METHODS = ("weighted", "pareto")
EXPORT_FORMATS: dict[str, tuple[str, ...]] = {"crystals": ("cif", "poscar"), "proteins": ("pdb",)}


def missing_column_hint(material: str, name: str) -> str:
    """Why a known score column is absent from this campaign's table, and how to get it ('' if unknown)."""
    if material == "crystals":
        if name in CRYSTAL_HULL_COLUMNS:
            return f"{name} needs a hull: set hull (e.g. \"mp-elements\") in the score stage"
        if name in CRYSTAL_NOVELTY_COLUMNS:
            return f"{name} needs a hull and training structures in the score stage"
    else:
        if name in PROTEIN_FOLDING_COLUMNS:
            return f"{name} needs a folding model: set esmfold in the score stage (or $GENMATCH_ESMFOLD)"
        if name in PROTEIN_DIVERSITY_COLUMNS:
            return f"{name} needs diversity = true in the score stage"
        if name in PROTEIN_NOVELTY_COLUMNS:
            return f"{name} needs a novelty reference in the score stage"
    if name in RELAX_COLUMNS[material]:
        return f"{name} is a relax column; add a relax stage before score"
    if any(name in cols for cols in RANK_COLUMNS.values()):
        return f"{name} is added by a rank stage; put one before"
    return ""


def score_columns(material: str, config: Any, relax: bool = False) -> dict[str, str]:
    """The columns (name -> type) of the score table that ``config`` (a CrystalScoreConfig or ProteinScoreConfig)
    produces for ``material``; with ``relax`` (the campaign has a relax stage) also :data:`RELAX_COLUMNS`, which
    the campaign joins to it."""
    extra = RELAX_COLUMNS[material] if relax else {}
    if material == "crystals":
        out = dict(CRYSTAL_COLUMNS)
        if config.hull is not None and config.hull != "none":
            out |= CRYSTAL_HULL_COLUMNS
            if config.training is not None:
                out |= CRYSTAL_NOVELTY_COLUMNS
        return out | extra
    out = dict(PROTEIN_COLUMNS)
    if config.esmfold_path() is not None:
        out |= PROTEIN_FOLDING_COLUMNS
    if config.diversity:
        out |= PROTEIN_DIVERSITY_COLUMNS
    if config.reference is not None:
        out |= PROTEIN_NOVELTY_COLUMNS
    return out | extra


@dataclass(frozen=True)
class FilterSettings:
    """``expr``: the rows to keep (:mod:`workflows.design.expressions`)."""

    expr: Expression


@dataclass(frozen=True)
class DeduplicateSettings:
    """Crystals: pymatgen ``StructureMatcher`` tolerances (``ltol`` fractional length, ``stol`` site, ``angle_tol``
    degrees; pymatgen's defaults 0.2, 0.3, 5); proteins: two chains are duplicates when their TM-score (TM-align,
    Zhang & Skolnick 2005, mean of both normalisations) is at least ``tm_threshold``. The first row of each group,
    in table order (the best after a rank stage), is kept."""

    ltol: float = 0.2
    stol: float = 0.3
    angle_tol: float = 5.0
    tm_threshold: float = 0.5


@dataclass(frozen=True)
class RankSettings:
    """``method`` "weighted": score = sum_j w_j s_j z_j, z_j the column's z-score over the rows (NaN -> the worst,
    rank last), s_j = -1 where ``ascending`` (smaller is better) else +1; rows by descending score. "pareto":
    non-dominated sorting (Deb et al. 2002, NSGA-II) over ``columns`` with their directions; rows by front, then
    table order. Either adds ``rank`` (1 = best)."""

    method: str
    columns: tuple[str, ...]
    weights: tuple[float, ...]
    ascending: tuple[bool, ...]


@dataclass(frozen=True)
class ExportSettings:
    """The first ``top_k`` rows of the table (ranked if a rank stage came before): their structures in each of
    ``formats`` and one ``top.csv``; with ``plots``, the PNGs of :mod:`workflows.design.report`."""

    top_k: int
    formats: tuple[str, ...]
    plots: bool = True


def finite(value: float) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
